"""Writing a file whole or not at all.

A file is written to a temporary file in its own folder and renamed over the target
with ``os.replace``, so a reader (or a process that crashes and restarts) sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def new_file_mode() -> int:
    """The permission bits an ordinary new file gets under the current umask
    (``mkstemp`` makes its files private to the user)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, data: bytes, *, durable: bool = False, mode: int | None = None,
                 prefix: str | None = None) -> None:
    """Replace ``path`` with ``data`` through a temporary file in the same folder.

    ``durable``: the data reaches the disk (fsync) before the rename. ``mode``: the
    file's permission bits (by default the temporary file's: readable by the user
    only). ``prefix``: the temporary file's name starts with it (default
    ``.<name>.``). Raises ``OSError``; the temporary file is removed on any failure.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
