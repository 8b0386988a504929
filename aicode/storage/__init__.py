"""Where the server keeps its files on the host, and as whom it touches them."""
