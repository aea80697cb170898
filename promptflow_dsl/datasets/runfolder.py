"""Run folders and results files: where a dataset run records each row exactly once.

A run folder is ``<root>/<run id>/`` (the caller picks the root, e.g.
``.pflow-cache/evals``); the run id is the UTC start time then six random hex
digits (``20250102T030405.678Z-1a2b3c``), so sorting ids sorts runs by start. It
holds:

* ``meta.json`` — what the run was started with (program and dataset digests, the
  dataset path, model ids, the row selection, options, the command line, the start
  time) and one entry per later session (resumes);
* ``results.jsonl`` — one JSON object per line and row, ``{"row": LINE, "status":
  "ok"|"failed", ...}``, appended with one ``write`` per line as rows finish (in the
  order they finish, not in row order);
* ``summary.json`` — written at the end of each session, also when it was
  interrupted.

The folder is created under a temporary name and renamed once ``meta.json`` is in
it, so a run folder always has its meta. A plain results file (``pflow run --data
--out PATH``) has the same line format without the folder.

**Reading results back.** Lines are read in file order. A line that does not end
with a newline, or is not a JSON object with an integer ``row`` and a ``status``,
is *unreadable*; unreadable lines at the end of the file are a torn tail (a crash
in the middle of a write) and are discarded — and truncated away before anything
is appended again. An unreadable line followed by readable ones is skipped and
counted (its row counts as not recorded, so it runs again). For each row the
*winning* line is its first ``ok`` line, or else its last ``failed`` line: a row
that failed and was retried (``--retry-failed``) is superseded by its new line; a
line for a row that already has an ``ok`` line is a duplicate and is ignored (the
writer never writes one: :class:`ResultsWriter` refuses).

**Crashes.** Each line is handed to the kernel with a single ``os.write`` as soon
as its row finishes, so a killed process (``kill -9``) loses at most the rows that
were in flight. With ``durable=True`` each line is also ``fsync``\\ ed, which
protects against power loss at the price of one disk flush per row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import tempfile
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from .errors import DuplicateRowError, ResumeError, RunFolderError
from .rowset import RowSet
from .selection import Selection

try:  # POSIX only; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "META", "RESULTS", "SUMMARY", "ResultsState", "ResultsTable", "ResultsWriter",
    "RunFolder", "RunInfo", "check_resume", "list_runs", "load_results_table",
    "load_run", "new_run_id", "open_output", "read_results", "scan_results", "utc_now",
]

RESULTS = "results.jsonl"
META = "meta.json"
SUMMARY = "summary.json"
META_FORMAT = "pflow-run/1"

STATUSES = ("ok", "failed")
MAX_REPORTED_UNREADABLE = 20


def new_run_id(now: dt.datetime | None = None) -> str:
    """``20250102T030405.678Z-1a2b3c``: UTC time to the millisecond, then 6 random hex
    digits. Sorting run ids sorts runs by start time. Never raises."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the millisecond (``2025-01-02T03:04:05.678Z``).
    Never raises."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------ reading results

def _parse_line(raw: bytes) -> dict[str, Any] | None:
    """The line as a dict, or ``None`` when it is unreadable."""
    if not raw.endswith(b"\n"):
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    row = value.get("row")
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        return None
    if value.get("status") not in STATUSES:
        return None
    return value


@dataclass
class ResultsState:
    """What a results file records, after :func:`scan_results`.

    ``ok`` and ``failed`` are the rows whose winning line has that status; ``lines``
    counts readable lines; ``valid_end`` is the byte offset just past the last
    readable line and ``torn`` says whether bytes after it were discarded;
    ``unreadable`` lists (up to 20) line numbers of unreadable lines in the middle,
    ``unreadable_count`` counts them; ``duplicates`` counts ignored lines.
    """

    ok: RowSet = field(default_factory=RowSet)
    failed: RowSet = field(default_factory=RowSet)
    lines: int = 0
    valid_end: int = 0
    size: int = 0
    torn: bool = False
    unreadable: list[int] = field(default_factory=list)
    unreadable_count: int = 0
    duplicates: int = 0

    @property
    def recorded(self) -> int:
        """Rows with a winning line. Never raises."""
        return len(self.ok) + len(self.failed)


_QUICK = re.compile(rb'\{"row":(0|[1-9][0-9]*),"status":"(ok|failed)"[,}]')


def _quick_line(raw: bytes) -> tuple[int, str] | None:
    """``(row, status)`` of a line as the writer lays it out (``{"row":N,"status":S``
    first, ``}`` and a newline last, no NUL byte), without parsing it; else ``None``."""
    if not raw.endswith(b"}\n") or b"\x00" in raw:
        return None
    m = _QUICK.match(raw)
    return (int(m.group(1)), m.group(2).decode("ascii")) if m else None


def _scan(path: Path, state: ResultsState, *, full: bool = True
          ) -> Iterator[tuple[int, int, str, dict[str, Any] | None, bool]]:
    """Yield ``(line_index, row, status, line, counts)`` for every readable line while
    filling ``state``; ``counts`` is false for an ignored duplicate.

    With ``full=False`` a line in the writer's layout is accepted by its first and last
    bytes and yielded as ``None`` instead of parsed (other lines are parsed); the last
    readable line is always parsed, so a torn tail is still found.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read: {exc.strerror or exc}") from None
    bad: list[int] = []  # unreadable lines since the last readable one
    held: tuple[int, int, str, int, dict[str, Any] | None, bytes | None] | None = None
    offset = 0

    def commit(item: tuple[int, int, str, int, dict[str, Any] | None, bytes | None]
               ) -> tuple[int, int, str, dict[str, Any] | None, bool]:
        index, row, status, end, value, _ = item
        state.lines += 1
        state.valid_end = end
        if row in state.ok:
            state.duplicates += 1
            return index, row, status, value, False
        if status == "ok":
            state.ok.add(row)
            state.failed.discard(row)
        else:
            state.failed.add(row)
        return index, row, status, value, True

    with f:
        try:
            for index, raw in enumerate(f, 1):
                offset += len(raw)
                quick = None if full else _quick_line(raw)
                value: dict[str, Any] | None = None
                if quick is not None:
                    row, status = quick
                else:
                    value = _parse_line(raw)
                    if value is None:
                        bad.append(index)
                        continue
                    row, status = value["row"], value["status"]
                if held is not None:
                    yield commit(held)
                if bad:
                    state.unreadable_count += len(bad)
                    room = MAX_REPORTED_UNREADABLE - len(state.unreadable)
                    state.unreadable.extend(bad[:max(room, 0)])
                    bad.clear()
                held = (index, row, status, offset, value, raw if quick is not None else None)
        except OSError as exc:
            raise RunFolderError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if held is not None:
        unchecked = held[5]
        if unchecked is None or _parse_line(unchecked) is not None:
            yield commit(held)
    state.size = offset
    state.torn = offset > state.valid_end


def scan_results(path: str | os.PathLike[str]) -> ResultsState:
    """Which rows a results file records as ok or failed (a missing file records none).

    Raises :class:`RunFolderError` when the file exists but cannot be read.
    """
    state = ResultsState()
    for _ in _scan(Path(path), state, full=False):
        pass
    return state


def read_results(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The winning line of each recorded row, in file order (two passes over the file).

    Raises :class:`RunFolderError` when the file exists but cannot be read.
    """
    p = Path(path)
    state = ResultsState()
    last_failed: dict[int, int] = {}
    for index, row, status, _, counts in _scan(p, state, full=False):
        if counts and status == "failed":
            last_failed[row] = index
    emitted = RowSet()
    for index, row, status, value, counts in _scan(p, ResultsState()):
        if not counts or value is None:
            continue
        if status == "ok":
            if row in state.ok and emitted.add(row):
                yield value
        elif row not in state.ok and last_failed.get(row) == index:
            yield value


MetricValue = bool | int | float | None


@dataclass
class ResultsTable:
    """The numbers a summary and a comparison need, read from a results file.

    ``rows`` are the rows whose winning line is ``ok`` (in file order);
    ``metrics[name]`` holds their values aligned with ``rows`` (``nan`` = not scored;
    ``True``/``False`` as 1/0) and ``binary[name]`` says whether every scored value
    was a boolean (the metric is a rate). ``tokens`` and ``cost`` add up every
    recorded attempt, including a failed line that a retry superseded; ``reruns``
    the times rows were run again because the worker running them was lost (the
    ``reruns`` field of a line, written by a distributed executor); ``usage_unknown``
    the model calls whose server reported no token counts (``usage.usage_unknown`` of
    a line: ``tokens`` and ``cost`` are then lower bounds).
    """

    rows: array = field(default_factory=lambda: array("q"))
    metrics: dict[str, array] = field(default_factory=dict)
    binary: dict[str, bool] = field(default_factory=dict)
    ok: int = 0
    failed: int = 0
    tokens: int = 0
    cost: float | None = None
    reruns: int = 0
    usage_unknown: int = 0
    state: ResultsState = field(default_factory=ResultsState)


def _metric_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    return None


def load_results_table(path: str | os.PathLike[str]) -> ResultsTable:
    """Read a results file once into a :class:`ResultsTable`.

    Raises :class:`RunFolderError` when the file exists but cannot be read.
    """
    table = ResultsTable()
    nan = float("nan")
    for _, _, _, value, counts in _scan(Path(path), table.state):
        if not counts or value is None:
            continue
        tokens = value.get("tokens")
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            table.tokens += tokens
        cost = value.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            table.cost = (table.cost or 0.0) + float(cost)
        reruns = value.get("reruns")
        if isinstance(reruns, int) and not isinstance(reruns, bool) and reruns > 0:
            table.reruns += reruns
        usage = value.get("usage")
        unknown = usage.get("usage_unknown") if isinstance(usage, dict) else None
        if isinstance(unknown, int) and not isinstance(unknown, bool) and unknown > 0:
            table.usage_unknown += unknown
        if value["status"] != "ok":
            continue
        n = len(table.rows)
        table.rows.append(value["row"])
        metrics = value.get("metrics")
        if not isinstance(metrics, dict):
            metrics = {}
        for name in metrics:
            if name not in table.metrics:
                table.metrics[name] = array("d", [nan]) * n
                table.binary[name] = True
        for name, column in table.metrics.items():
            raw = metrics.get(name)
            number = _metric_number(raw)
            if number is None:
                column.append(nan)
            else:
                column.append(number)
                if not isinstance(raw, bool):
                    table.binary[name] = False
    table.ok = len(table.state.ok)
    table.failed = len(table.state.failed)
    return table


# ------------------------------------------------------------------ writing results

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _encode(record: Mapping[str, Any]) -> bytes:
    text = _ENCODER.encode(record)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it instead
        return (_ASCII_ENCODER.encode(record) + "\n").encode("ascii")


class ResultsWriter:
    """Appends result lines to one results file; at most one writer per file.

    Opening takes an exclusive lock on the file (POSIX ``flock``; released when the
    process ends, even by ``kill -9``), reads what it records (:attr:`state`) and
    truncates a torn tail; ``fresh=True`` empties the file instead.

    Raises :class:`RunFolderError` when the file cannot be opened, is a directory, or
    another writer holds it.
    """

    def __init__(self, path: str | os.PathLike[str], *, fresh: bool = False,
                 durable: bool = False) -> None:
        """See the class. Raises :class:`RunFolderError`."""
        self.path = Path(path)
        self.durable = durable
        self.written = 0
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd: int | None = os.open(self.path, flags, 0o644)
        except IsADirectoryError:
            raise RunFolderError(f"{self.path}: is a directory, not a results file") from None
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot open for writing: "
                                 f"{exc.strerror or exc}") from None
        try:
            self._lock()
            if fresh:
                os.ftruncate(self._fd, 0)
                self.state = ResultsState()
            else:
                self.state = scan_results(self.path)
                if self.state.torn:
                    os.ftruncate(self._fd, self.state.valid_end)
        except BaseException:
            self.close()
            raise
        self._session = RowSet()

    def _lock(self) -> None:
        if fcntl is None or self._fd is None:  # pragma: no cover
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(f"{self.path}: another process is writing these "
                                 "results") from None
        except OSError:  # pragma: no cover - a file system without locks
            pass

    @property
    def ok(self) -> RowSet:
        """Rows whose winning line is ``ok`` (kept up to date by :meth:`append`). Never raises."""
        return self.state.ok

    @property
    def failed(self) -> RowSet:
        """Rows whose winning line is ``failed`` (kept up to date by :meth:`append`).
        Never raises."""
        return self.state.failed

    def can_append(self, row: int) -> bool:
        """Whether :meth:`append` accepts a line for ``row`` (never raises)."""
        return row not in self.state.ok and row not in self._session

    def append(self, row: int, status: str, fields: Mapping[str, Any]) -> None:
        """Write ``{"row": row, "status": status, **fields}`` as one line, with one
        write (and an ``fsync`` when durable).

        Raises ``ValueError`` for a bad status, a ``row``/``status`` key in ``fields``
        or a value that is not JSON (``TypeError`` for a non-JSON type);
        :class:`DuplicateRowError` when ``row`` already has an ``ok`` line or a line
        written by this writer; :class:`RunFolderError` when the write fails or the
        writer is closed.
        """
        if status not in STATUSES:
            raise ValueError(f"a row's status is 'ok' or 'failed', not {status!r}")
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise ValueError(f"a row number is an int >= 0, not {row!r}")
        if "row" in fields or "status" in fields:
            raise ValueError("the fields of a result line cannot set 'row' or 'status'")
        if not self.can_append(row):
            raise DuplicateRowError(f"{self.path}: row {row} is already recorded")
        if self._fd is None:
            raise RunFolderError(f"{self.path}: the writer is closed")
        data = _encode({"row": row, "status": status, **fields})
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.durable:
                os.fsync(self._fd)
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        self._session.add(row)
        self.written += 1
        self.state.lines += 1
        if status == "ok":
            self.state.ok.add(row)
            self.state.failed.discard(row)
        else:
            self.state.failed.add(row)

    def close(self) -> None:
        """Release the lock and close the file (idempotent; never raises)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                if self.durable:
                    os.fsync(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_output(path: str | os.PathLike[str], *, resume: bool = False, force: bool = False,
                durable: bool = False) -> ResultsWriter:
    """The writer of a plain results file (``pflow run --data --out PATH``).

    A new file is created (with its folder). An existing file is continued with
    ``resume`` (its recorded rows are kept, a torn tail is cut) and emptied with
    ``force``; ``resume`` wins when both are given.

    Raises :class:`RunFolderError` when the file exists and neither is given, when it
    is a directory, or like :class:`ResultsWriter`.
    """
    p = Path(path)
    if p.is_dir():
        raise RunFolderError(f"{p}: is a directory; --out takes a file")
    if p.exists() and not resume and not force:
        raise RunFolderError(f"{p} exists; --resume continues it, --force overwrites it")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{p.parent}: cannot create the folder: "
                             f"{exc.strerror or exc}") from None
    return ResultsWriter(p, fresh=force and not resume, durable=durable)


# ---------------------------------------------------------------------- run folders

def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    write_atomic(path, text.encode("utf-8"), durable=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: not a JSON object")
    return data


class RunFolder:
    """One run folder: ``meta.json``, ``results.jsonl``, ``summary.json``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Never raises (the folder is not checked)."""
        self.path = Path(path)
        self.run_id = self.path.name

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def results_path(self) -> Path:
        """``results.jsonl`` in the folder. Never raises."""
        return self.path / RESULTS

    @property
    def meta_path(self) -> Path:
        """``meta.json`` in the folder. Never raises."""
        return self.path / META

    @property
    def summary_path(self) -> Path:
        """``summary.json`` in the folder. Never raises."""
        return self.path / SUMMARY

    @classmethod
    def create(cls, root: str | os.PathLike[str], meta: Mapping[str, Any], *,
               run_id: str | None = None) -> RunFolder:
        """Create ``<root>/<run id>/`` holding ``meta.json`` (with ``format`` and
        ``run_id`` added) and an empty ``results.jsonl``.

        Raises :class:`RunFolderError` when the folder cannot be created, and
        ``ValueError``/``TypeError`` when ``meta`` is not JSON.
        """
        base = Path(root)
        run_id = run_id or new_run_id()
        final = base / run_id
        try:
            base.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{run_id}.", suffix=".tmp"))
        except OSError as exc:
            raise RunFolderError(f"{base}: cannot create a run folder: "
                                 f"{exc.strerror or exc}") from None
        try:
            _write_json_atomic(tmp / META, {"format": META_FORMAT, "run_id": run_id, **meta})
            (tmp / RESULTS).touch()
            os.rename(tmp, final)
        except BaseException as exc:
            for p in (tmp / META, tmp / RESULTS):
                with contextlib.suppress(OSError):
                    p.unlink()
            with contextlib.suppress(OSError):
                tmp.rmdir()
            if isinstance(exc, OSError):
                raise RunFolderError(f"{final}: cannot create: {exc.strerror or exc}") from None
            raise
        return cls(final)

    def read_meta(self) -> dict[str, Any]:
        """``meta.json``. Raises :class:`RunFolderError` when missing or unreadable."""
        return _read_json(self.meta_path)

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace ``meta.json`` atomically. Raises ``OSError`` when it cannot be written."""
        _write_json_atomic(self.meta_path, meta)

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json``, or ``None`` when there is none yet.

        Raises :class:`RunFolderError` when it exists but cannot be read.
        """
        if not self.summary_path.exists():
            return None
        return _read_json(self.summary_path)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Replace ``summary.json`` atomically. Raises ``OSError`` when it cannot be written."""
        _write_json_atomic(self.summary_path, summary)

    def scan(self) -> ResultsState:
        """:func:`scan_results` of ``results.jsonl``. Raises :class:`RunFolderError`."""
        return scan_results(self.results_path)

    def results(self) -> Iterator[dict[str, Any]]:
        """:func:`read_results` of ``results.jsonl``. Raises :class:`RunFolderError`."""
        return read_results(self.results_path)

    def open_writer(self, *, durable: bool = False) -> ResultsWriter:
        """A :class:`ResultsWriter` on ``results.jsonl``. Raises :class:`RunFolderError`."""
        return ResultsWriter(self.results_path, durable=durable)


@dataclass
class RunInfo:
    """A run as :func:`list_runs` sees it (``meta``/``summary`` are ``None`` when the
    file is missing or unreadable)."""

    run_id: str
    path: Path
    meta: dict[str, Any] | None
    summary: dict[str, Any] | None

    @property
    def folder(self) -> RunFolder:
        """The run's :class:`RunFolder`. Never raises."""
        return RunFolder(self.path)


def _run_dirs(root: Path) -> list[Path]:
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunFolderError(f"{root}: cannot list: {exc.strerror or exc}") from None
    dirs = [p for p in entries
            if not p.name.startswith(".") and p.is_dir() and (p / META).is_file()]
    return sorted(dirs, key=lambda p: p.name, reverse=True)


def list_runs(root: str | os.PathLike[str]) -> list[RunInfo]:
    """The runs under ``root``, newest first, with their meta and summary.

    Raises :class:`RunFolderError` when ``root`` exists but cannot be listed.
    """
    out = []
    for p in _run_dirs(Path(root)):
        folder = RunFolder(p)
        try:
            meta: dict[str, Any] | None = folder.read_meta()
        except RunFolderError:
            meta = None
        try:
            summary = folder.read_summary()
        except RunFolderError:
            summary = None
        out.append(RunInfo(p.name, p, meta, summary))
    return out


def load_run(root: str | os.PathLike[str], run: str) -> RunFolder:
    """The run folder named by ``run``: a run id, a unique prefix of one, or ``"last"``
    (the newest).

    Raises :class:`RunFolderError` when there is no run, no match, or several.
    """
    base = Path(root)
    dirs = _run_dirs(base)
    if not dirs:
        raise RunFolderError(f"no runs in {base}")
    if run == "last":
        return RunFolder(dirs[0])
    exact = [p for p in dirs if p.name == run]
    if exact:
        return RunFolder(exact[0])
    matches = [p for p in dirs if p.name.startswith(run)]
    if len(matches) == 1:
        return RunFolder(matches[0])
    if matches:
        names = ", ".join(p.name for p in matches[:5])
        raise RunFolderError(f"'{run}' matches {len(matches)} runs in {base}: {names}")
    recent = ", ".join(p.name for p in dirs[:3])
    raise RunFolderError(f"no run '{run}' in {base} (newest: {recent})")


def _short(digest: Any) -> str:
    text = str(digest)
    head, sep, tail = text.partition(":")
    return f"{head}:{tail[:12]}" if sep else text[:12]


def check_resume(meta: Mapping[str, Any], *, program_digest: str, dataset_digest: str,
                 selection: Selection, force: bool = False) -> list[str]:
    """What changed since the run in ``meta`` started: the program digest, the dataset
    digest, the row selection. Returns the changes (empty when none).

    Raises :class:`ResumeError` listing them, unless ``force``.
    """
    changes = []
    old_program = meta.get("program_digest")
    if old_program != program_digest:
        changes.append(f"the program changed ({_short(old_program)} → {_short(program_digest)})")
    dataset = meta.get("dataset") or {}
    old_dataset = dataset.get("digest")
    if old_dataset != dataset_digest:
        changes.append(f"the dataset {dataset.get('path', '')} changed "
                       f"({_short(old_dataset)} → {_short(dataset_digest)})")
    try:
        old_selection = Selection.from_json(meta.get("selection"))
    except (ValueError, TypeError):
        old_selection = None
    if old_selection != selection:
        before = old_selection.describe() if old_selection else "unknown"
        changes.append(f"the rows changed ({before} → {selection.describe()})")
    if changes and not force:
        raise ResumeError(str(meta.get("run_id", "?")), changes)
    return changes
