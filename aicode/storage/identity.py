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
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_AGENT_ID", "DEFAULT_GIT_ID", "HostIdentities", "fs_identity", "remap_offsets", "server_identities"]

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class HostIdentities:
    """uid/gid pairs on the host for the agent's files and for the server's git store, and the user the
    agent runs as inside its container (the same ids, unless the engine remaps user namespaces)."""

    agent_uid: int
    agent_gid: int
    git_uid: int
    git_gid: int
    container_user: str = ""

    def __post_init__(self) -> None:
        if not self.container_user:
            object.__setattr__(self, "container_user", f"{self.agent_uid}:{self.agent_gid}")

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
    inner_uid = DEFAULT_AGENT_ID if agent_uid is None else agent_uid
    inner_gid = DEFAULT_AGENT_ID if agent_gid is None else agent_gid
    uid_offset, gid_offset = remap_offsets()
    ids = HostIdentities(
        agent_uid=inner_uid + uid_offset,
        agent_gid=inner_gid + gid_offset,
        git_uid=DEFAULT_GIT_ID if git_uid is None else git_uid,
        git_gid=DEFAULT_GIT_ID if git_gid is None else git_gid,
        container_user=f"{inner_uid}:{inner_gid}",
    )
    if 0 in (ids.agent_uid, ids.agent_gid, ids.git_uid, ids.git_gid):
        raise ValueError("AICODE_AGENT_UID/GID and AICODE_GIT_UID/GID must not be 0: neither agents nor git run as root")
    if ids.agent_uid == ids.git_uid:
        raise ValueError("AICODE_AGENT_UID and AICODE_GIT_UID must differ: agents must not own the server's git store")
    return ids


def _subordinate_start(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        owner, _, rest = line.strip().partition(":")
        if owner == name and rest:
            return int(rest.split(":")[0])
    raise ValueError(f"{path} has no range for {name!r}, which the Docker engine remaps users to")


def remap_offsets(daemon_config: Path = Path("/etc/docker/daemon.json"), etc: Path = Path("/etc")) -> tuple[int, int]:
    """(uid, gid) offsets a local engine's user-namespace remapping adds to a container's ids on the host.

    Docker maps uid N inside a container to `<start of the remap user's /etc/subuid range> + N`. The
    remapping is read from the engine's daemon.json ("userns-remap": "default" or "user[:group]");
    (0, 0) when it is not set there.
    """
    try:
        remap = json.loads(daemon_config.read_text()).get("userns-remap")
    except (OSError, ValueError, AttributeError):
        return 0, 0
    if not remap:
        return 0, 0
    user, _, group = ("dockremap" if remap == "default" else str(remap)).partition(":")
    return _subordinate_start(etc / "subuid", user), _subordinate_start(etc / "subgid", group or user)
