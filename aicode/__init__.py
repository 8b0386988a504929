"""aicode: a self-hosted team server that runs AI coding agents in hardened containers."""

__version__ = "0.1.0"
