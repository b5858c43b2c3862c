"""Finding the processes a test started, by an environment marker (Linux /proc)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Exists and is not a zombie (a zombie holds no resources; its parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_with_env(name: str, value: str) -> list[int]:
    """Live pids (not this one) whose environment has NAME=VALUE: children inherit it."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        if alive(int(entry)):
            found.append(int(entry))
    return found
