"""What a client command can fail with, and the exit codes it ends with."""

from __future__ import annotations

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "ClientError", "NotSignedIn", "ServerUnreachable"]

EXIT_OK = 0
# The task failed, was cancelled or interrupted; or the server refused or could not be reached.
EXIT_FAILURE = 1
# The command line was wrong: argparse's own errors, and arguments the server rejects as invalid.
EXIT_USAGE = 2
# Ctrl-C: the client stopped watching (the task goes on), as a shell reports SIGINT.
EXIT_INTERRUPTED = 130


class ClientError(Exception):
    """A failure to report as one line on stderr; `message` says what to do about it."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ServerUnreachable(ClientError):
    """No answer from the server (refused, reset, timed out): worth retrying while following a task."""


class NotSignedIn(ClientError):
    """No token, or the server refused it (401)."""
