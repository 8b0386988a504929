"""The host identities the server works under: the agent's (task files) and the git store's.

Where the server runs as root, nothing it does to files the agent wrote, or to the server's git
store, runs as root: the agent's files are read and written with the agent's uid, the git store is
owned by its own uid. `fs_identity` switches the filesystem uid/gid of the CALLING THREAD only
(setfsuid/setfsgid act per thread in Linux, and glibc does not broadcast them to other threads the
way it does setuid), so a worker thread can take the agent's identity without touching the rest
of the process. Switching away from uid 0 also drops the thread's filesystem capabilities
(CAP_DAC_OVERRIDE and friends): permission bits apply to it as to any other user.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["DEFAULT_AGENT_ID", "DEFAULT_GIT_ID", "HostIdentities", "fs_identity", "server_identities"]

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class HostIdentities:
    """uid/gid pairs for the agent (inside and outside its container) and for the server's git store."""

    agent_uid: int
    agent_gid: int
    git_uid: int
    git_gid: int

    @property
    def privileged(self) -> bool:
        """True when the server runs as root and so must take these identities to touch files."""
        return os.geteuid() == 0

    @classmethod
    def unprivileged(cls) -> HostIdentities:
        """A server that is not root runs the agent and its git work as itself."""
        uid, gid = os.getuid(), os.getgid()
        return cls(agent_uid=uid, agent_gid=gid, git_uid=uid, git_gid=gid)


def _set(function: str, value: int) -> int:
    # setfsuid/setfsgid return the previous value and report no errors; the caller verifies.
    return int(getattr(_libc, function)(ctypes.c_uint(value)))


@contextmanager
def fs_identity(uid: int, gid: int) -> Iterator[None]:
    """Make the calling thread access files as uid:gid until the block ends (a no-op unless root)."""
    if os.geteuid() != 0 or (uid == 0 and gid == 0):
        yield
        return
    previous_gid = _set("setfsgid", gid)
    previous_uid = _set("setfsuid", uid)
    try:
        # Asking for an impossible id (-1) changes nothing and answers the current one: verify.
        if _set("setfsuid", 0xFFFFFFFF) != uid or _set("setfsgid", 0xFFFFFFFF) != gid:
            raise PermissionError(f"could not take the filesystem identity {uid}:{gid}")
        yield
    finally:
        _set("setfsuid", previous_uid)
        _set("setfsgid", previous_gid)


DEFAULT_AGENT_ID = 10000
DEFAULT_GIT_ID = 10001


def server_identities(agent_uid: int | None, agent_gid: int | None, git_uid: int | None,
                      git_gid: int | None) -> HostIdentities:
    """The identities for this server: chosen ones as root, the server's own otherwise (ValueError if
    a chosen one cannot be had)."""
    if os.geteuid() != 0:
        own = HostIdentities.unprivileged()
        chosen = {"AICODE_AGENT_UID": agent_uid, "AICODE_AGENT_GID": agent_gid, "AICODE_GIT_UID": git_uid,
                  "AICODE_GIT_GID": git_gid}
        wrong = [name for name, value in chosen.items()
                 if value is not None and value != (own.agent_uid if name.endswith("UID") else own.agent_gid)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} can only be chosen when aicode runs as root; it runs as uid "
                             f"{own.agent_uid}, so agents and git run as that uid")
        return own
    ids = HostIdentities(
        agent_uid=DEFAULT_AGENT_ID if agent_uid is None else agent_uid,
        agent_gid=DEFAULT_AGENT_ID if agent_gid is None else agent_gid,
        git_uid=DEFAULT_GIT_ID if git_uid is None else git_uid,
        git_gid=DEFAULT_GIT_ID if git_gid is None else git_gid,
    )
    if 0 in (ids.agent_uid, ids.agent_gid, ids.git_uid, ids.git_gid):
        raise ValueError("AICODE_AGENT_UID/GID and AICODE_GIT_UID/GID must not be 0: neither agents nor git run as root")
    if ids.agent_uid == ids.git_uid:
        raise ValueError("AICODE_AGENT_UID and AICODE_GIT_UID must differ: agents must not own the server's git store")
    return ids
