"""The container policy: a task's container spec turned into Docker's create config, hardened by default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ContainerSpec", "Mount", "create_config"]

DEFAULT_MEMORY_MB = 2048
DEFAULT_CPUS = 2.0
DEFAULT_PIDS = 512


@dataclass(frozen=True, slots=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    image: str
    name: str
    user: str
    labels: dict[str, str]
    mounts: tuple[Mount, ...] = ()
    network: str = "none"
    memory_mb: int = DEFAULT_MEMORY_MB
    cpus: float = DEFAULT_CPUS
    pids: int = DEFAULT_PIDS
    home: str = "/home/agent"
    workdir: str = "/workspace"
    env: dict[str, str] = field(default_factory=dict)
    # Off on the agent network: only the IPv4 gateway address is meant to be reachable there.
    ipv6: bool = True


def create_config(spec: ContainerSpec) -> dict[str, Any]:
    """Docker's create body: no capabilities, no privilege gain, read-only root, limits, never the socket."""
    uid, _, gid = spec.user.partition(":")
    for mount in spec.mounts:
        if mount.source.rstrip("/").endswith("docker.sock"):
            raise ValueError("the Docker socket is never mounted into a task container")
    memory = spec.memory_mb * 1024 * 1024
    return {
        "Image": spec.image,
        # An idle process keeps the container up; the agent runs as an exec inside it.
        "Entrypoint": ["sleep"],
        "Cmd": ["infinity"],
        "User": spec.user,
        "WorkingDir": spec.workdir,
        "Env": [f"{k}={v}" for k, v in spec.env.items()],
        "Labels": spec.labels,
        "NetworkDisabled": spec.network == "none",
        "HostConfig": {
            "Binds": [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts],
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "Privileged": False,
            "ReadonlyRootfs": True,
            # The home folder is writable scratch (the CLI keeps small state there); /tmp likewise.
            "Tmpfs": {
                "/tmp": "rw,nosuid,nodev,size=512m",
                spec.home: f"rw,nosuid,nodev,size=256m,uid={uid},gid={gid or uid}",
            },
            "Memory": memory,
            "MemorySwap": memory,
            "NanoCpus": int(spec.cpus * 1_000_000_000),
            "PidsLimit": spec.pids,
            "NetworkMode": spec.network,
            "Init": True,
            "IpcMode": "private",
            # A container in another's network namespace (the host's, a holder's) has no net sysctls of its own.
            **({"Sysctls": {"net.ipv6.conf.all.disable_ipv6": "1"}}
               if not spec.ipv6 and spec.network != "host" and not spec.network.startswith("container:") else {}),
        },
    }
