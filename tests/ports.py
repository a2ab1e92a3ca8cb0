"""Loopback ports for the servers a test starts as separate processes."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Below the kernel's ephemeral range: a port chosen there can be taken, between the check and the server's bind,
# as the local end of any outgoing connection on the machine (seen: an api-server that found its port in use).
_FALLBACK_EPHEMERAL_START = 32768
_LOWEST = 20000
_ATTEMPTS = 200


def _ephemeral_start() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START
    return low if low > _LOWEST + 1000 else _FALLBACK_EPHEMERAL_START


def free_port(host: str = "127.0.0.1") -> int:
    """A port no server listens on now, outside the range the kernel hands to outgoing connections."""
    highest = _ephemeral_start() - 1
    for _ in range(_ATTEMPTS):
        port = random.randint(_LOWEST, highest)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host} between {_LOWEST} and {highest} after {_ATTEMPTS} tries")
