"""The aiodocker adapter: the Docker engine the server runs task containers on."""
