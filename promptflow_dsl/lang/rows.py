"""Rows of a dataset file, streamed: JSONL (``.jsonl``, ``.ndjson``) and CSV (``.csv``).

The checker reads them to validate an ``eval``'s data; the dataset engine
(``promptflow_dsl.datasets``) to run over them.

A file is read line by line and never held whole in memory. Every row comes with
its *line number*: the physical line of the file where it starts (1-based). The
line number is a row's identity everywhere in the engine (results, resume,
comparisons).

* JSONL: one JSON object per line; blank lines are skipped; a UTF-8 byte-order
  mark on the first line is dropped. ``NaN`` and ``Infinity`` are refused (not JSON).
* CSV: the first record is the header and names the columns; every value is a
  string; a quoted field may span lines (the row's line is the one it starts on);
  an empty line is not a record. Quoting is strict (a stray quote is an error).

Row-level problems (bad JSON, a line that is not an object, bad UTF-8, a CSV record
with the wrong number of fields or broken quoting) are :class:`DatasetError`\\ s
located at the line; :func:`iter_rows` raises the first one, :func:`iter_row_items`
hands them out in place of the row and goes on. Problems with the file itself (an
unknown extension, a missing, unreadable or non-regular file, a bad CSV header)
are raised by every function.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = [
    "DatasetError", "FORMATS", "ValidationReport", "csv_header", "count_rows",
    "dataset_digest", "dataset_format", "iter_row_items", "iter_row_lines", "iter_rows",
    "strict_json", "validate_rows",
]

class DatasetError(ValueError):
    """A dataset problem at ``path:line:column``.

    ``line`` and ``column`` are 1-based and ``None`` when unknown; ``str(error)``
    is ``path:line:column: message`` with the unknown parts left out.
    """

    def __init__(self, message: str, *, path: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        """Never raises."""
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        super().__init__(self.__str__())

    @property
    def location(self) -> str:
        """``path:line:column`` with the unknown parts left out (may be empty). Never raises."""
        parts = [self.path] if self.path else []
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        loc = self.location
        return f"{loc}: {self.message}" if loc else self.message

    def __reduce__(self):  # keeps keyword arguments through pickling
        return (_rebuild_dataset_error, (self.message, self.path, self.line, self.column))


def _rebuild_dataset_error(message: str, path: str | None, line: int | None,
                           column: int | None) -> DatasetError:
    return DatasetError(message, path=path, line=line, column=column)


FORMATS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
"""File extension (lower case) → format."""

Row = dict[str, Any]
RowItem = tuple[int, "Row | DatasetError | None"]
"""``(line, row)``; the row is a :class:`DatasetError` for a bad row and ``None`` for
a row the ``want`` predicate declined (not parsed)."""

_BOM = b"\xef\xbb\xbf"
_CSV_FIELD_LIMIT = 2**31 - 1


def _path_text(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


def dataset_format(path: str | os.PathLike[str]) -> str:
    """``"jsonl"`` or ``"csv"``, chosen by the file's extension.

    Raises :class:`DatasetError` for any other extension.
    """
    text = _path_text(path)
    ext = os.path.splitext(text)[1].lower()
    try:
        return FORMATS[ext]
    except KeyError:
        what = f"'{ext}'" if ext else "no extension"
        raise DatasetError(f"unknown dataset format ({what}): a dataset is a .jsonl, "
                           ".ndjson or .csv file", path=text) from None


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a regular file for reading without ever blocking on a FIFO.

    Raises :class:`DatasetError` for a missing, unreadable or non-regular file.
    """
    text = _path_text(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(text, flags)
    except FileNotFoundError:
        raise DatasetError("no such file", path=text) from None
    except IsADirectoryError:
        raise DatasetError("is a directory, not a dataset file", path=text) from None
    except PermissionError:
        raise DatasetError("cannot read the file: permission denied", path=text) from None
    except OSError as exc:
        raise DatasetError(f"cannot open the file: {exc.strerror or exc}", path=text) from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:  # pragma: no cover - fstat on an open fd does not fail in practice
        os.close(fd)
        raise DatasetError(f"cannot read the file: {exc.strerror or exc}", path=text) from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise DatasetError(f"is {kind}, not a regular file", path=text)
    return os.fdopen(fd, "rb", buffering=1 << 16)


class _NonStandardNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonStandardNumber(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def strict_json(text: str) -> Any:
    """The JSON value ``text`` holds. Raises ``ValueError`` for text that is not JSON, and
    for ``NaN`` and ``Infinity`` (Python accepts them; JSON does not), ``RecursionError``
    for a value nested too deeply."""
    return _DECODER.decode(text)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _bad_utf8(path: str, line: int, raw: bytes, exc: UnicodeDecodeError) -> DatasetError:
    column = len(raw[:exc.start].decode("utf-8", "replace")) + 1
    return DatasetError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                        path=path, line=line, column=column)


def _parse_json_line(path: str, line: int, raw: bytes) -> Row | DatasetError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad_utf8(path, line, raw, exc)
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return DatasetError(f"not valid JSON: {exc.msg}", path=path, line=line, column=exc.colno)
    except _NonStandardNumber as exc:
        return DatasetError(f"not valid JSON: {exc.args[0]} is not a JSON number",
                            path=path, line=line)
    except RecursionError:
        return DatasetError("not valid JSON: nested too deeply", path=path, line=line)
    if not isinstance(value, dict):
        column = len(text) - len(text.lstrip()) + 1
        return DatasetError(f"each line must be a JSON object, not {_json_kind(value)}",
                            path=path, line=line, column=column)
    return value


def _jsonl_items(path: str, f: IO[bytes], want: Callable[[int], bool] | None
                 ) -> Iterator[RowItem]:
    for line, raw in enumerate(f, 1):
        if line == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if not raw.strip():
            continue
        if want is not None and not want(line):
            yield line, None
            continue
        yield line, _parse_json_line(path, line, raw)


_CSV_MESSAGES = {
    "unexpected end of data": "a quoted field is not closed before the end of the file",
}


def _csv_message(exc: csv.Error) -> str:
    text = str(exc)
    if text in _CSV_MESSAGES:
        return _CSV_MESSAGES[text]
    if "expected after" in text:
        return f"bad quoting: a quote inside a quoted field must be doubled ({text})"
    return f"bad CSV: {text}"


def _check_header(path: str, line: int, header: list[str]) -> list[str]:
    seen: set[str] = set()
    for i, name in enumerate(header, 1):
        if not name:
            raise DatasetError(f"column {i} of the header has no name", path=path, line=line)
        if name in seen:
            raise DatasetError(f"column '{name}' appears twice in the header",
                               path=path, line=line)
        seen.add(name)
    return header


def _csv_items(path: str, f: IO[bytes], want: Callable[[int], bool] | None,
               header_only: bool = False) -> Iterator[RowItem | list[str]]:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    physical = 0
    bad: list[DatasetError] = []  # undecodable lines of the record being read

    def lines() -> Iterator[str]:
        nonlocal physical
        for raw in f:
            physical += 1
            if physical == 1 and raw.startswith(_BOM):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append(_bad_utf8(path, physical, raw, exc))
                yield raw.decode("utf-8", "replace")

    reader = csv.reader(lines(), strict=True)
    header: list[str] | None = None
    header_line = 0
    previous = 0  # physical line where the previous record ended
    while True:
        error: DatasetError | None = None
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            record = None
            error = DatasetError(_csv_message(exc), path=path, line=previous + 1)
        start, previous = previous + 1, reader.line_num
        if bad:
            error = error or bad[0]
            bad.clear()
        if record == []:
            continue
        if header is None:
            if error is not None:
                raise error
            assert record is not None
            header = _check_header(path, start, record)
            header_line = start
            if header_only:
                yield header
                return
            continue
        if error is not None:
            yield start, error
            continue
        assert record is not None
        if want is not None and not want(start):
            yield start, None
        elif len(record) != len(header):
            yield start, DatasetError(
                f"has {len(record)} field{'s' if len(record) != 1 else ''}; the header "
                f"(line {header_line}) has {len(header)} column{'s' if len(header) != 1 else ''}",
                path=path, line=start)
        else:
            yield start, dict(zip(header, record, strict=True))


def iter_row_items(path: str | os.PathLike[str], *,
                   want: Callable[[int], bool] | None = None) -> Iterator[RowItem]:
    """Every row of the dataset as ``(line, row)``, in file order; a bad row comes as
    ``(line, DatasetError)`` and the stream goes on.

    ``want(line)`` (optional) is asked before a row is parsed; for ``False`` the item
    is ``(line, None)`` and the row is neither parsed nor checked (a JSONL line is not
    decoded at all).

    Raises :class:`DatasetError` for an unknown extension, a file that cannot be
    opened or read, a non-regular file, or a bad CSV header.
    """
    text = _path_text(path)
    fmt = dataset_format(text)
    with _open(text) as f:
        items = _jsonl_items(text, f, want) if fmt == "jsonl" else _csv_items(text, f, want)
        line = 0
        try:
            for item in items:
                assert isinstance(item, tuple)
                line = item[0]
                yield item
        except OSError as exc:
            raise DatasetError(f"cannot read the file: {exc.strerror or exc}", path=text,
                               line=line + 1 if line else None) from None


def iter_rows(path: str | os.PathLike[str], *,
              want: Callable[[int], bool] | None = None) -> Iterator[tuple[int, Row]]:
    """Every row of the dataset as ``(line, row_dict)``, in file order.

    With ``want``, rows for which ``want(line)`` is false are skipped without being
    parsed.

    Raises :class:`DatasetError` for the first bad row, and for the file-level
    problems :func:`iter_row_items` raises.
    """
    for line, row in iter_row_items(path, want=want):
        if row is None:
            continue
        if isinstance(row, DatasetError):
            raise row
        yield line, row


def _nothing(line: int) -> bool:
    return False


def iter_row_lines(path: str | os.PathLike[str]) -> Iterator[int]:
    """The line number of every row (bad rows included), without parsing JSONL rows.

    Raises :class:`DatasetError` like :func:`iter_row_items`.
    """
    for line, _ in iter_row_items(path, want=_nothing):
        yield line


def count_rows(path: str | os.PathLike[str]) -> int:
    """How many rows the dataset has (bad rows included).

    Raises :class:`DatasetError` like :func:`iter_row_items`.
    """
    n = 0
    for _ in iter_row_lines(path):
        n += 1
    return n


def csv_header(path: str | os.PathLike[str]) -> list[str] | None:
    """The column names of a CSV dataset (``None`` for an empty file or a JSONL file).

    Raises :class:`DatasetError` like :func:`iter_row_items`.
    """
    text = _path_text(path)
    if dataset_format(text) != "csv":
        return None
    with _open(text) as f:
        for item in _csv_items(text, f, None, header_only=True):
            assert isinstance(item, list)
            return item
    return None


def dataset_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of the file's bytes, read in chunks.

    Raises :class:`DatasetError` for a file that cannot be opened or read, or is not
    a regular file.
    """
    text = _path_text(path)
    h = hashlib.sha256()
    with _open(text) as f:
        try:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        except OSError as exc:
            raise DatasetError(f"cannot read the file: {exc.strerror or exc}",
                               path=text) from None
    return "sha256:" + h.hexdigest()


# ----------------------------------------------------------------------- validation

@dataclass
class ValidationReport:
    """What :func:`validate_rows` found.

    ``errors`` holds the first ``max_reported`` errors in file order;
    ``error_count`` counts them all.
    """

    path: str
    rows: int = 0
    errors: list[DatasetError] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        """No error found. Never raises."""
        return self.error_count == 0

    def messages(self) -> list[str]:
        """One line per reported error, then ``... and N more errors`` when capped. Never raises."""
        out = [str(e) for e in self.errors]
        more = self.error_count - len(self.errors)
        if more:
            out.append(f"{self.path}: ... and {more} more error{'s' if more != 1 else ''}")
        return out


def validate_rows(path: str | os.PathLike[str], validate: Callable[[Row], str | None], *,
                  max_reported: int = 20) -> ValidationReport:
    """Stream every row through ``validate(row) -> message | None`` and collect the
    located problems: bad rows, the validator's messages (at the row's line) and, for a
    dataset without rows, ``has no rows``.

    Raises :class:`DatasetError` for the file-level problems of :func:`iter_row_items`;
    an exception raised by ``validate`` propagates.
    """
    text = _path_text(path)
    report = ValidationReport(path=text)

    def note(error: DatasetError) -> None:
        report.error_count += 1
        if len(report.errors) < max_reported:
            report.errors.append(error)

    for line, row in iter_row_items(text):
        report.rows += 1
        if isinstance(row, DatasetError):
            note(row)
            continue
        assert row is not None
        message = validate(row)
        if message:
            note(DatasetError(message, path=text, line=line))
    if report.rows == 0:
        note(DatasetError("has no rows", path=text))
    return report
