"""Pushing a task's commit to the workspace's remote (runs in a git fetch worker).

libgit2 cannot push with a lease, so this runs git itself, against the server's own mirror (a
repository no container writes), with everything that could reach beyond the one remote turned off:
no hooks, no system or user config, no redirects, https only (http only when the server allows
insecure remotes). The credential goes to git through a helper reading this process's environment:
never in the URL, argv or an error message. The lease (`--force-with-lease=<ref>:<expected>`) is
checked by the remote itself in the same exchange as the update: a branch moved by anyone else is
never overwritten.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PushError", "PushResult", "push_commit"]

_TIMEOUT_S = 300
_HELPER = ('!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$PUSH_CREDENTIAL_USER" '
           '"$PUSH_CREDENTIAL_TOKEN"; }; f')
_SHOWN = 600


class PushError(Exception):
    """The push did not happen. `reason`: lease, refused, auth, unreachable or failed; `str()` is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)

    @property
    def reason(self) -> str:
        return str(self.args[0])

    def __str__(self) -> str:
        return str(self.args[1])


@dataclass(frozen=True, slots=True)
class PushResult:
    commit: str
    created: bool  # the branch did not exist on the remote before
    forced: bool  # the remote branch was replaced (after a rebase), not fast-forwarded
    up_to_date: bool = False  # the remote branch was at the commit already


def _printable(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() or ch == "\n" else "?" for ch in text).strip()
    return cleaned if len(cleaned) <= _SHOWN else cleaned[:_SHOWN] + "…"


def _remote_says(stderr: str) -> str:
    """What the remote itself printed (`remote: …` lines), which names a branch protection rule."""
    lines = [line.removeprefix("remote:").strip() for line in stderr.splitlines() if line.startswith("remote:")]
    return _printable("; ".join(line for line in lines if line))


def _explain(url: str, ref: str, stdout: str, stderr: str) -> PushError:
    status = next((line for line in stdout.splitlines() if line.startswith("!") and ref in line), "")
    lowered = (status + "\n" + stderr).lower()
    remote = _remote_says(stderr)
    if "stale info" in lowered or "fetch first" in lowered or "non-fast-forward" in lowered:
        return PushError("lease", f"{ref.removeprefix('refs/heads/')} on {url} has commits this task did not push "
                                  "(someone else pushed to it): the push would overwrite them, so it was not made")
    if "remote rejected" in lowered or "hook declined" in lowered or "protected" in lowered:
        return PushError("refused", f"{url} refused the push" + (f": {remote}" if remote else
                                                                 " (a branch protection rule or a server hook)"))
    if ("authentication" in lowered or "could not read username" in lowered or " 401" in lowered
            or " 403" in lowered or "permission" in lowered):
        return PushError("auth", f"{url} refused the credentials: check that the workspace's repository token "
                                 "may push" + (f" ({remote})" if remote else ""))
    if ("could not resolve" in lowered or "connect" in lowered or "timed out" in lowered
            or "operation too slow" in lowered):
        return PushError("unreachable", f"{url} could not be reached to push")
    if "redirect" in lowered:
        return PushError("refused", f"{url} answered the push with a redirect, which aicode does not follow: "
                                    "give the repository's final URL")
    return PushError("failed", f"pushing to {url} failed" + (f": {remote}" if remote else ""))


def push_commit(mirror: Path, url: str, credential: tuple[str, str] | None, commit: str, branch: str,
                expected: str | None, allow_http: bool) -> PushResult:
    """Make `branch` on the remote `commit`, if it is now `expected` (None: only if it does not exist)."""
    ref = f"refs/heads/{branch}"
    protocols = ["-c", "protocol.allow=never", "-c", "protocol.https.allow=always"]
    if allow_http:
        protocols += ["-c", "protocol.http.allow=always"]
    argv = [
        "git", *protocols,
        "-c", "http.followRedirects=false", "-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*",
        "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60", "-c", "push.gpgSign=false",
        "-c", "credential.helper=", "-c", f"credential.helper={_HELPER}", "-c", "credential.interactive=false",
        f"--git-dir={mirror}", "push", "--porcelain", "--no-verify",
        f"--force-with-lease={ref}:{expected or ''}", url, f"{commit}:{ref}",
    ]
    with tempfile.TemporaryDirectory(prefix="aicode-push-") as home:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "GIT_TERMINAL_PROMPT": "0",
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ASKPASS": "/bin/false",
               "SSH_ASKPASS": "/bin/false", "LC_ALL": "C",
               "PUSH_CREDENTIAL_USER": credential[0] if credential else "",
               "PUSH_CREDENTIAL_TOKEN": credential[1] if credential else ""}
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise PushError("unreachable", f"pushing to {url} took longer than {_TIMEOUT_S} s") from None
    if credential is not None and credential[1]:
        done.stdout, done.stderr = (text.replace(credential[1], "***") for text in (done.stdout, done.stderr))
    if done.returncode != 0:
        raise _explain(url, ref, done.stdout, done.stderr)
    status = next((line for line in done.stdout.splitlines() if f":{ref}\t" in line), "")
    return PushResult(commit=commit, created=status.startswith("*"), forced=status.startswith("+"),
                      up_to_date=status.startswith("="))
