"""The embedding cache: vectors by (embedder id, text), in memory and on disk.

On disk (``<project>/.pflow-cache/embeddings``, or ``$PFLOW_EMBED_CACHE_DIR``) each
vector is one ``.npy`` file, ``<sha256(embedder id)[:24]>/<sha256(text)[:40]>.npy``,
written atomically (a temporary file, then ``os.replace``) and read with
``allow_pickle=False``: nothing is ever pickled.  Beside the vectors each embedder's
folder holds ``embedder.json`` (its id), for people looking at the folder.  Automatic
expert assignments are stored as JSON under ``clusters/``.

As with the response cache, nothing on disk can fail a run: a file that cannot be
read, is not an array of the right shape, or cannot be written is a miss (logged at
debug level).  The in-memory layer is per process and bounded.

Modes follow :class:`promptflow_dsl.runtime.cache.CacheMode`: ``DEFAULT`` reads and
writes both layers, ``REFRESH`` recomputes and overwrites, ``OFF`` (tests) uses the
in-memory layer only and never touches the disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...runtime.cache import CacheMode

if TYPE_CHECKING:  # pragma: no cover
    from .embedders import Embedder

log = logging.getLogger("promptflow_dsl.kinds.route")

MEMORY_LIMIT = 50_000
_memory: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def default_embedding_dir(project_root: Path | None) -> Path:
    """``$PFLOW_EMBED_CACHE_DIR``, else ``<project root>/.pflow-cache/embeddings``."""
    env = os.environ.get("PFLOW_EMBED_CACHE_DIR")
    if env:
        return Path(env)
    return (project_root or Path.cwd()) / ".pflow-cache" / "embeddings"


def clear_memory() -> None:
    """Forget every vector held in memory (tests use it to reach the disk layer)."""
    _memory.clear()


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EmbeddingCache:
    """Vectors of texts per embedder.  ``directory`` None: memory only."""

    def __init__(self, directory: Path | None, mode: CacheMode = CacheMode.DEFAULT) -> None:
        self.directory = directory if mode != CacheMode.OFF else None
        self.mode = mode
        self.hits = 0
        self.misses = 0
        self.write_errors = 0

    def _folder(self, embedder_id: str) -> Path:
        assert self.directory is not None
        return self.directory / hashlib.sha256(embedder_id.encode()).hexdigest()[:24]

    def _read(self, embedder_id: str, key: str) -> np.ndarray | None:
        if self.directory is None or self.mode == CacheMode.REFRESH:
            return None
        path = self._folder(embedder_id) / f"{key}.npy"
        try:
            if not path.is_file():
                return None
            vec = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - a bad file is a miss
            log.debug("embedding cache: cannot read %s: %s", path, exc)
            return None
        if vec.ndim != 1 or vec.size == 0 or not np.issubdtype(vec.dtype, np.floating):
            return None
        return vec.astype(np.float32, copy=False)

    def _write(self, embedder_id: str, key: str, vec: np.ndarray) -> None:
        if self.directory is None:
            return
        folder = self._folder(embedder_id)
        try:
            marker = folder / "embedder.json"
            if not marker.exists():
                _atomic_write(marker, lambda f: f.write(json.dumps({"id": embedder_id}).encode()))
            _atomic_write(folder / f"{key}.npy",
                          lambda f: np.save(f, np.asarray(vec, dtype=np.float32), allow_pickle=False))
        except OSError as exc:
            if not self.write_errors:
                log.warning("embedding cache: cannot write under %s: %s", folder, exc)
            self.write_errors += 1

    async def embed(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        """The vectors of ``texts`` (one row each), computing only those not cached."""
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        for k in keys:
            if k in found:
                continue
            mem_key = (embedder.id, k)
            vec = _memory.get(mem_key) if self.mode != CacheMode.REFRESH else None
            if vec is None:
                vec = self._read(embedder.id, k)
                if vec is not None:
                    self._remember(mem_key, vec)
            if vec is not None:
                found[k] = vec
        missing: dict[str, str] = {}
        for t, k in zip(texts, keys, strict=True):
            if k not in found:
                missing.setdefault(k, t)
        self.hits += len(set(keys)) - len(missing)
        self.misses += len(missing)
        if missing:
            rows = await embedder.embed(list(missing.values()))
            for k, row in zip(missing, rows, strict=True):
                vec = np.asarray(row, dtype=np.float32)
                found[k] = vec
                self._remember((embedder.id, k), vec)
                self._write(embedder.id, k, vec)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    @staticmethod
    def _remember(key: tuple[str, str], vec: np.ndarray) -> None:
        _memory[key] = vec
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_LIMIT:
            _memory.popitem(last=False)

    # ------------------------------------------------------------ cluster assignments

    def load_json(self, name: str) -> dict[str, Any] | None:
        """A stored JSON record (``clusters/<name>.json``), or None."""
        if self.directory is None or self.mode == CacheMode.REFRESH:
            return None
        path = self.directory / "clusters" / f"{name}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def store_json(self, name: str, data: dict[str, Any]) -> None:
        if self.directory is None:
            return
        path = self.directory / "clusters" / f"{name}.json"
        try:
            text = json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")
            _atomic_write(path, lambda f: f.write(text))
        except OSError as exc:
            log.warning("embedding cache: cannot write %s: %s", path, exc)
            self.write_errors += 1
