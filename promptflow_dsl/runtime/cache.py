"""The response cache: model replies stored on disk, keyed by everything that
determines them.

* :func:`cache_key` — a sha256 of canonical JSON of the model id, the kind of
  request, its payload (messages, :meth:`GenParams.cache_view`, response format...)
  and the sample index.  Secrets never enter a key.
* :class:`ResponseCache` — a :mod:`diskcache` store holding **JSON text only**.
  Nothing is ever pickled, and nothing pickled is ever read back: the store refuses
  to write anything but ``str`` and refuses to unpickle an entry it did not write
  (such an entry is a miss), so a tampered cache directory cannot run code.
  All disk I/O runs on one private worker thread, so the event loop never blocks
  and every SQLite connection lives (and is closed) on that thread.
  Reads never raise (anything wrong is a miss); writes never raise (a full disk
  must not fail a run; failures are counted in ``write_errors``).
* :meth:`ResponseCache.get_or_compute` — read-through with in-flight
  de-duplication: identical requests made concurrently are computed once, in one
  process (a future per key) and across processes sharing the folder (a lock file
  per key, :mod:`.cachelock`).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from promptflow_dsl.models.base import SECRET_KEYS

from . import cachelock

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bumped whenever the key derivation or the stored value layout changes; part of every key."""

KINDS = frozenset({"chat", "complete", "score", "embed"})

_T = TypeVar("_T")


# --------------------------------------------------------------------------- keys


def _strip_secrets(value: Any) -> Any:
    """A copy of ``value`` without any dict entry whose key is in SECRET_KEYS (recursively)."""
    if isinstance(value, dict):
        return {k: _strip_secrets(v) for k, v in value.items()
                if not (isinstance(k, str) and k.lower() in SECRET_KEYS)}
    if isinstance(value, (list, tuple)):
        return [_strip_secrets(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, compact separators, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(model_id: str, kind: str, payload: dict[str, Any], sample: int = 0) -> str:
    """The key of one model request: sha256 hex of canonical JSON of
    ``{"v", "model", "kind", "payload", "sample"}``.

    ``payload`` must be JSON data (the caller puts messages as dicts,
    ``GenParams.cache_view()``, the response format... in it); secret keys
    (:data:`SECRET_KEYS`) are stripped from it at any depth.  ``sample`` tells
    apart the n-th of several samples of the same request.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r} (expected one of {', '.join(sorted(KINDS))})")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise ValueError(f"sample must be a non-negative int, not {sample!r}")
    record = {"v": CACHE_FORMAT, "model": model_id, "kind": kind,
              "payload": _strip_secrets(payload), "sample": sample}
    # surrogatepass: a lone surrogate in a prompt still gets a (stable) key
    return hashlib.sha256(canonical_json(record).encode("utf-8", "surrogatepass")).hexdigest()


class CacheMode(StrEnum):
    DEFAULT = "default"  # read and write
    REFRESH = "refresh"  # write only: recompute and overwrite
    OFF = "off"  # neither read nor write; the disk is never touched


def default_cache_dir(project_root: Path) -> Path:
    """``PFLOW_CACHE_DIR`` if set, else ``<project_root>/.pflow-cache/responses``."""
    env = os.environ.get("PFLOW_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(project_root) / ".pflow-cache" / "responses"


# --------------------------------------------------------------------------- store


class _Refused(Exception):
    """An entry this cache would not decode (pickled, or otherwise not JSON text)."""


@functools.cache
def _json_disk_class() -> type:
    """A ``diskcache.Disk`` that writes only ``str`` and never unpickles.

    ``Disk.store`` keeps a ``str`` shorter than ``disk_min_file_size`` in the
    ``Cache.value`` column (mode 1, raw) and a longer one in a UTF-8 file
    (mode 3, text); only non-native types are pickled (mode 4), which this class
    refuses both ways.
    """
    import diskcache
    from diskcache.core import MODE_PICKLE

    class JsonTextDisk(diskcache.Disk):  # type: ignore[misc]
        def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
            if read or type(value) is not str:
                raise TypeError(f"the response cache stores JSON text only, not {type(value).__name__}")
            return super().store(value, read, key=key)

        def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
            if mode == MODE_PICKLE or read:
                raise _Refused(f"entry in diskcache mode {mode} (pickled?)")
            return super().fetch(mode, filename, value, read)

    return JsonTextDisk


class ResponseCache:
    """Model replies on disk, as JSON text, in a ``diskcache.Cache`` at ``directory``.

    The store is opened lazily, on the first read or write, so a cache that is
    never used (``CacheMode.OFF``) never creates its directory.
    """

    def __init__(self, directory: str | os.PathLike[str], *,
                 lock_wait: float = cachelock.LOCK_WAIT) -> None:
        """``lock_wait``: the longest a miss waits for another process computing the
        same entry (:mod:`.cachelock`)."""
        self.directory = Path(directory)
        self.lock_wait = lock_wait
        self.lock_waits = 0  # misses that found another process computing the entry
        self.read_errors = 0
        self.write_errors = 0
        self.recreated = False  # clear() found the store unreadable and made a new one
        self._warned_store = False
        self._cache: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # guards _executor, _cache and _inflight
        # event loop -> (mode, key) -> the future of the computation in flight
        self._inflight: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Future[dict[str, Any]]]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r})"

    # -- the I/O thread -----------------------------------------------------------

    def _worker(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pflow-cache")
            return self._executor

    async def _io(self, fn: Callable[[], _T]) -> _T:
        """Run blocking ``fn`` on the cache's I/O thread without blocking the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._worker(), fn)

    def _io_sync(self, fn: Callable[[], _T]) -> _T:
        return self._worker().submit(fn).result()

    def _store(self) -> Any:
        """The open ``diskcache.Cache`` (called on the I/O thread only). SQLite's
        memory-mapped I/O is off and its page cache is 8 MiB (diskcache's defaults, 64 MiB
        mapped and 32 MiB of pages, would add up to 96 MiB to the resident memory of a
        long dataset run as the cache grows); reads are as fast, the operating system
        caching the file."""
        if self._cache is None:
            import diskcache

            self._cache = diskcache.Cache(str(self.directory), disk=_json_disk_class(),
                                          sqlite_mmap_size=0, sqlite_cache_size=2**11)
        return self._cache

    # -- reads and writes ---------------------------------------------------------

    def _get_blocking(self, key: str) -> dict[str, Any] | None:
        try:
            text = self._store().get(key, default=None, retry=True)
            if text is None:
                return None
            if type(text) is not str:
                raise _Refused(f"entry is {type(text).__name__}, not JSON text")
            value = json.loads(text)
            if not isinstance(value, dict):
                raise _Refused(f"entry is JSON {type(value).__name__}, not an object")
            return value
        except Exception as e:  # noqa: BLE001 - any failure to read is a miss
            self.read_errors += 1
            if isinstance(e, (_Refused, ValueError)):  # one entry, not the store
                log.debug("response cache %s: unreadable entry %s treated as a miss: %s: %s",
                          self.directory, key[:12], type(e).__name__, e)
            else:  # the store itself (a corrupt cache.db, a folder that cannot be opened)
                level = logging.WARNING if not self._warned_store else logging.DEBUG
                self._warned_store = True
                log.log(level, "response cache %s cannot be read (%s: %s): every look-up is a "
                        "miss; `pflow cache clear` recreates it", self.directory,
                        type(e).__name__, e)
            return None

    def _set_blocking(self, key: str, text: str) -> bool:
        try:
            self._store().set(key, text, retry=True)
            return True
        except Exception as e:  # noqa: BLE001 - a full disk must not fail a run
            self.write_errors += 1
            level = logging.WARNING if self.write_errors == 1 else logging.DEBUG
            log.log(level, "response cache %s: could not store an entry (%s: %s); "
                    "the run goes on without caching it", self.directory, type(e).__name__, e)
            return False

    async def get(self, key: str) -> dict[str, Any] | None:
        """The stored value, or ``None`` on a miss — also when the entry is corrupt,
        pickled, not a JSON object, or the store cannot be opened or read."""
        try:
            return await self._io(lambda: self._get_blocking(key))
        except RuntimeError as e:  # the executor was shut down under us
            log.debug("response cache %s: read skipped: %s", self.directory, e)
            return None

    async def set(self, key: str, value: dict[str, Any]) -> bool:
        """Store ``value`` as JSON text; returns whether it was stored.  Never raises
        for I/O errors; a value that is not JSON data is a programming error (``TypeError``)."""
        try:
            text = canonical_json(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"cache values must be JSON data: {e}") from e
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: store it escaped, it round-trips
            text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        try:
            return await self._io(lambda: self._set_blocking(key, text))
        except RuntimeError as e:
            self.write_errors += 1
            log.debug("response cache %s: write skipped: %s", self.directory, e)
            return False

    # -- read-through with in-flight de-duplication ----------------------------------

    def _flights(self) -> dict[tuple[str, str], asyncio.Future[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        with self._lock:
            flights = self._inflight.get(loop)
            if flights is None:
                flights = self._inflight[loop] = {}
            return flights

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[dict[str, Any]]],
                             mode: CacheMode | str = CacheMode.DEFAULT) -> tuple[dict[str, Any], bool]:
        """``(value, cache_hit)``.

        * ``DEFAULT``: a stored value is returned as a hit; otherwise ``compute()``
          runs and its value is stored.
        * ``REFRESH``: ``compute()`` always runs and its value overwrites the entry.
        * ``OFF``: ``compute()`` runs; the disk is never touched and nothing is shared.

        In ``DEFAULT``, a miss takes the key's lock file first (:mod:`.cachelock`):
        while another process holds it, this one waits for that process's reply and
        returns it as a hit.  In ``DEFAULT`` and ``REFRESH``, identical keys
        requested concurrently (on the same event loop) are computed once: the others wait for that one and
        get a copy of its value with ``cache_hit=True`` (they made no model call).
        If ``compute`` raises, nothing is stored and every waiter gets the
        exception.  If the computing task is cancelled, one waiter takes over.
        A value with ``"cacheable": False`` (a reply cut short) is returned to
        the caller and the waiters but never stored.
        """
        mode = CacheMode(mode)
        if mode is CacheMode.OFF:
            return await compute(), False

        flights = self._flights()
        slot = (mode.value, key)
        while True:
            flight = flights.get(slot)
            if flight is None:
                break
            try:
                value = await asyncio.shield(flight)
            except _Abandoned:
                continue  # the computing task was cancelled: try again, perhaps as the owner
            return copy.deepcopy(value), True

        flight = asyncio.get_running_loop().create_future()
        flights[slot] = flight
        try:
            value, hit = await self._read_or_compute(key, compute, mode)
        except asyncio.CancelledError:
            flight.set_exception(_Abandoned())
            flight.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        except BaseException as e:
            flight.set_exception(e)
            flight.exception()
            raise
        else:
            flight.set_result(value)
            return value, hit
        finally:
            if flights.get(slot) is flight:
                del flights[slot]

    async def _read_or_compute(self, key: str, compute: Callable[[], Awaitable[dict[str, Any]]],
                               mode: CacheMode) -> tuple[dict[str, Any], bool]:
        lock: int | None = None
        if mode is CacheMode.DEFAULT:
            stored, lock = await self._get_or_lock(key)
            if stored is not None:
                return stored, True
            if lock == cachelock.BUSY:  # another process computes it: wait for its reply
                stored, lock = await self._wait_turn(key)
                if stored is not None:
                    return stored, True
        try:
            value = await compute()
            if isinstance(value, dict) and value.get("cacheable", True) is False:
                return value, False
            await self.set(key, value)
            return value, False
        finally:
            if lock is not None and lock >= 0:
                cachelock.unlock(self.directory, key, lock)  # after the value is stored

    async def _get_or_lock(self, key: str) -> tuple[dict[str, Any] | None, int | None]:
        """The stored value, or ``None`` and the key's in-flight lock (a descriptor,
        ``cachelock.BUSY``, or ``None`` when locks cannot be used); one trip to the I/O
        thread."""
        def work() -> tuple[dict[str, Any] | None, int | None]:
            stored = self._get_blocking(key)
            if stored is not None:
                return stored, None
            lock = cachelock.try_lock(self.directory, key)
            if lock is not None and lock >= 0:
                # The holder stores its reply before it releases the lock: one that
                # finished between the read above and the lock is found now.
                stored = self._get_blocking(key)
                if stored is not None:
                    cachelock.unlock(self.directory, key, lock)
                    return stored, None
            return None, lock

        try:
            return await self._io(work)
        except RuntimeError as e:  # the executor was shut down under us
            log.debug("response cache %s: read skipped: %s", self.directory, e)
            return None, None

    async def _wait_turn(self, key: str) -> tuple[dict[str, Any] | None, int | None]:
        """Wait while another process holds the key's lock: the value it stored, or the
        lock once free (and the entry still missing), or ``(None, None)`` after
        ``lock_wait`` seconds (the caller then computes without it)."""
        self.lock_waits += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_wait
        delay = cachelock.POLL_FIRST
        while loop.time() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, cachelock.POLL_MAX)
            stored, lock = await self._get_or_lock(key)
            if stored is not None or lock != cachelock.BUSY:
                return stored, lock
        log.debug("response cache %s: gave up waiting for another process computing %s",
                  self.directory, key[:12])
        return None, None

    # -- management ---------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """``directory``, ``entries``, ``size`` (bytes on disk), ``format``; the
        store is not created if it does not exist yet."""
        result: dict[str, Any] = {"directory": str(self.directory), "entries": 0, "size": 0,
                                  "format": CACHE_FORMAT, "write_errors": self.write_errors}
        if not (self.directory / "cache.db").exists() and self._cache is None:
            return result

        def read() -> None:
            cache = self._store()
            result["entries"] = len(cache)
            result["size"] = int(cache.volume())

        try:
            self._io_sync(read)
        except Exception as e:  # noqa: BLE001
            result["error"] = f"{type(e).__name__}: {e}"
        return result

    def clear(self) -> int:
        """Remove every entry; returns how many were removed.  A store that cannot be
        read (a corrupt ``cache.db``) is deleted and created anew, empty
        (``recreated`` is then true and the count 0).  Raises ``OSError`` only when the
        folder's files cannot be removed."""
        if not (self.directory / "cache.db").exists() and self._cache is None:
            return 0
        try:
            return int(self._io_sync(lambda: self._store().clear(retry=True)))
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - sqlite3.DatabaseError and the like
            log.debug("response cache %s: clear failed (%s: %s); recreating it",
                      self.directory, type(e).__name__, e)
        self._io_sync(self._recreate)
        self.recreated = True
        return 0

    def _recreate(self) -> None:
        """Delete the store's files (its database and the value files diskcache keeps in
        two-hex-digit folders) and open a new, empty store (on the I/O thread)."""
        import shutil

        if self._cache is not None:
            try:
                self._cache.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
            self._cache = None
        for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
            (self.directory / name).unlink(missing_ok=True)
        for sub in self.directory.iterdir():
            if sub.is_dir() and len(sub.name) == 2 and all(c in "0123456789abcdef" for c in sub.name):
                shutil.rmtree(sub, ignore_errors=True)
        self._store()

    def close(self) -> None:
        """Close the store and stop the I/O thread (a later use reopens them)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            if self._cache is not None:
                self._cache.close()
                self._cache = None

        try:
            executor.submit(shut).result()
        finally:
            executor.shutdown(wait=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Abandoned(Exception):
    """Set on an in-flight future whose computing task was cancelled."""
