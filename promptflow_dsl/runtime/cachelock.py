"""Requests in flight, across processes: one lock file per request digest.

Two ``pflow`` processes that share a response cache and miss on the same key would
both call the model.  Before computing a missing entry, :class:`ResponseCache` takes
an exclusive, non-blocking ``flock`` on ``<cache>/inflight/<key>.lock``; a process
that finds it taken waits (polling, :data:`POLL_FIRST` to :data:`POLL_MAX` seconds
apart) and reads the cache again each time, so it gets the other's reply as a hit.

A dead process never blocks anyone: the kernel releases a ``flock`` when its holder
exits, however it exits.  A live holder that takes too long (a hung call) is waited
for at most the cache's ``lock_wait`` seconds (:data:`LOCK_WAIT`); then the waiter
computes the entry itself.  The holder deletes its lock file before releasing it;
a waiter that gets the lock of a deleted file still reads the cache first, so this
never loses a reply — at worst two processes compute the same entry, as they would
without the lock.  Where ``fcntl`` is missing (Windows) or the folder cannot be
written, nothing is coordinated across processes.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_WAIT = 600.0
"""The longest a process waits for another that computes the same entry (seconds)."""

POLL_FIRST = 0.01
POLL_MAX = 0.25

BUSY = -1
"""What :func:`try_lock` returns when another holder has the lock."""


def lock_path(directory: Path, key: str) -> Path:
    return directory / "inflight" / f"{key}.lock"


def try_lock(directory: Path, key: str) -> int | None:
    """Take the lock of ``key`` without waiting: its file descriptor, :data:`BUSY` when
    another holder has it, or ``None`` when locks cannot be used here.  Never raises."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    path = lock_path(directory, key)
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the first lock in this folder
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return BUSY
    except OSError:
        os.close(fd)
        return None
    return fd


def unlock(directory: Path, key: str, fd: int) -> None:
    """Delete the lock file of ``key`` and release the lock held on ``fd``.  Never raises."""
    try:
        lock_path(directory, key).unlink(missing_ok=True)
    except OSError:
        pass
    try:
        os.close(fd)  # closing the descriptor releases the flock
    except OSError:
        pass
