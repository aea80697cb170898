"""The run trace: every step of a run — inputs, rendered messages, reply, output,
model, tokens, cost, latency, cache hit, status — as schema-versioned JSON.

* :class:`Step`, :class:`Trace` — pydantic models; ``Trace.schema_version`` is
  :data:`TRACE_SCHEMA`.
* :class:`TraceRecorder` — collects steps while a run goes on (thread- and
  task-safe) and builds the :class:`Trace`.
* :func:`scrub` — everything that enters a trace goes through it: plain JSON data,
  long strings truncated, secrets masked.
* :func:`write_trace`, :func:`load_trace`, :func:`list_traces` — traces on disk,
  one ``<run_id>.json`` per run, written atomically.
* :func:`render_trace_tree` — the trace as a readable tree of steps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import json
import os
import re
import secrets as _secrets
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from promptflow_dsl.atomic import write_atomic
from promptflow_dsl.lang import jsondata
from promptflow_dsl.lang.jsondata import fix_text
from promptflow_dsl.models.base import SECRET_KEYS

TRACE_SCHEMA = "pflow-trace/1"

MAX_STRING = 100_000
"""Strings longer than this (in characters) are truncated in a trace."""

MASK = "***"

StepStatus = Literal["ok", "failed", "skipped", "not_taken", "running"]
"""``running`` only while a step is in progress; :meth:`TraceRecorder.to_trace`
turns a step that never finished into ``failed``."""


class TraceError(Exception):
    """A trace that cannot be read."""


class TraceNotFound(TraceError):
    """No trace matches what was asked for; the message names the newest runs."""


# --------------------------------------------------------------------------- models


class TokenUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Step(BaseModel):
    """One step of a run: a handler call, a builtin, a hook firing, ..."""

    model_config = ConfigDict(validate_assignment=False, extra="forbid")

    id: str
    parent: str | None = None  # the step that called this one
    handler: str  # display name
    kind: str  # prompt | tool | flow | decompose | route | sketch | builtin | hook | ...
    file: str | None = None
    line: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None  # the rendered messages sent
    reply: str | None = None  # the model's raw reply text
    output: Any = None
    model: str | None = None
    # the model name (as the handler's module writes it) that answered when the declared
    # model failed and one of its `fallbacks` stood in; None when no fallback was needed
    answered_by: str | None = None
    usage: TokenUsage | None = None
    cost: float | None = None  # USD
    # calls of the step whose tokens the server did not report (a stream without usage):
    # not in usage or cost, which under-count them; None when every call reported usage
    usage_unknown: int | None = None
    started_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    latency_ms: float = 0.0
    cache_hit: bool | None = None  # every model call of the step was answered by the cache
    # model calls the step made itself, and how many the cache answered (None: not counted,
    # as in traces of earlier versions: a step with a model counts as one call)
    calls: int | None = None
    cache_hits: int | None = None
    attempts: int = 1  # > 1 when structured output was retried
    status: StepStatus = "running"
    error: str | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)  # each with "type" and "summary"
    extra: dict[str, Any] = Field(default_factory=dict)


class Totals(BaseModel):
    """What the run spent: model calls made, how many the cache answered, and the
    tokens and cost of the calls that were not cache hits; ``usage_unknown``: how many
    of those calls did not report their tokens (the sums leave them out: with any,
    tokens and cost are lower bounds)."""

    calls: int = 0
    cache_hits: int = 0
    usage_unknown: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None


class Trace(BaseModel):
    schema_version: str = TRACE_SCHEMA
    run_id: str
    program: str
    entry: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    started_at: dt.datetime
    finished_at: dt.datetime
    wall_ms: float = 0.0
    steps: list[Step] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)
    models: dict[str, str] = Field(default_factory=dict)  # model name -> model id used


def compute_totals(steps: Iterable[Step]) -> Totals:
    """Model calls (a step counts the calls it made: a decomposition of four lines is four
    calls), cache hits, and the tokens and cost of the steps whose calls were not all
    answered by the cache."""
    totals = Totals()
    for step in steps:
        if step.model is None or step.status in ("skipped", "not_taken"):
            continue
        totals.calls += 1 if step.calls is None else step.calls
        totals.cache_hits += int(bool(step.cache_hit)) if step.cache_hits is None else step.cache_hits
        if step.cache_hit:
            continue
        if step.usage is not None:
            totals.prompt_tokens += step.usage.prompt_tokens
            totals.completion_tokens += step.usage.completion_tokens
        totals.usage_unknown += step.usage_unknown or 0
        if step.cost is not None:
            totals.cost = (totals.cost or 0.0) + step.cost
    return totals


# --------------------------------------------------------------------------- run ids

RUN_ID_RE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")


def new_run_id(now: dt.datetime | None = None) -> str:
    """``20250102T030405.678Z-1a2b3c``: UTC time to the millisecond, then 6 random
    hex digits.  Sorting run ids sorts runs by start time."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{_secrets.token_hex(3)}"


# --------------------------------------------------------------------------- scrub

SECRET_KEY_RE = re.compile(r"api[_-]?key|secret|password|passwd|authorization|credential|token$",
                           re.IGNORECASE)
"""Dict keys whose values are masked (besides :data:`SECRET_KEYS`).  ``token$``
matches ``token``, ``access_token``, ``hfToken`` but not token *counts*
(``max_tokens``, ``prompt_tokens``), which traces must keep."""

SECRET_ENV_RE = re.compile(r"API_KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
"""Environment variables whose values are masked wherever they appear in a trace."""

MIN_SECRET_LEN = 8
"""Shorter environment values (``1``, ``true``) are flags, not secrets: masking them
would garble every trace."""

_MAX_DEPTH = 200
_BIG_INT_BITS = 14_000  # ~4,214 decimal digits: below Python's 4,300-digit text limit


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether the value under dict key ``key`` is masked in traces."""
    return key.lower() in SECRET_KEYS or SECRET_KEY_RE.search(key) is not None


def env_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of secret-looking environment variables, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if SECRET_ENV_RE.search(k) and len(v) >= MIN_SECRET_LEN}
    return tuple(sorted(values, key=lambda v: (-len(v), v)))


def merge_secrets(*groups: Iterable[str]) -> tuple[str, ...]:
    """Secret values to mask, without duplicates or values shorter than
    :data:`MIN_SECRET_LEN`, longest first (so a key that contains another is masked
    whole)."""
    values = {v for g in groups for v in g if isinstance(v, str) and len(v) >= MIN_SECRET_LEN}
    return tuple(sorted(values, key=lambda v: (-len(v), v)))


def mask(text: str, secret_values: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret value replaced by ``***``."""
    for secret in secret_values:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _truncate(text: str) -> str:
    if len(text) <= MAX_STRING:
        return text
    marker = f"…[truncated: {len(text)} chars]"
    return text[: MAX_STRING - len(marker)] + marker  # the result is at most MAX_STRING long


def _scrub_str(text: str, secret_values: tuple[str, ...]) -> str:
    text = fix_text(text)  # a lone surrogate cannot be written as UTF-8
    for secret in secret_values:
        if secret in text:
            text = MASK if text == secret else text.replace(secret, MASK)
    return text if len(text) <= MAX_STRING else _truncate(text)


def scrub(value: Any, secret_values: tuple[str, ...] | None = None) -> Any:
    """``value`` as plain JSON data, safe to write into a trace.

    Pydantic models, dataclasses, enums, paths, datetimes, sets and tuples become
    JSON data (anything else its ``repr``); strings over :data:`MAX_STRING`
    characters are truncated with a marker; the value of any dict key in
    :data:`SECRET_KEYS` or matching :data:`SECRET_KEY_RE` becomes ``"***"``; and the
    value of any environment variable matching :data:`SECRET_ENV_RE` (read now,
    unless ``secret_values`` is given) is masked wherever it occurs in a string.
    Idempotent.
    """
    if secret_values is None:
        secret_values = env_secrets()
    return _scrub(value, secret_values, 0)


def _scrub(value: Any, sv: tuple[str, ...], depth: int) -> Any:
    kind = type(value)  # the common plain types first: traces are mostly these
    if kind is str:
        return _scrub_str(value, sv)
    if kind is int:  # an integer too long to write as text is shown by its size
        return value if value.bit_length() < _BIG_INT_BITS else f"<integer of {value.bit_length()} bits>"
    if kind is float or kind is bool or value is None:
        return value
    if kind is dict and depth < _MAX_DEPTH:
        return _scrub_mapping(value, sv, depth)
    if kind is list and depth < _MAX_DEPTH:
        return [_scrub(v, sv, depth + 1) for v in value]
    if isinstance(value, (bool, int, float)):
        plain = value.value if isinstance(value, enum.Enum) else value
        return _scrub(plain, sv, depth + 1) if type(plain) is int else plain
    if isinstance(value, str):
        return _scrub_str(value.value if isinstance(value, enum.Enum) else str(value), sv)
    if depth >= _MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, enum.Enum):
        return _scrub(value.value, sv, depth + 1)
    if isinstance(value, BaseModel):
        return _scrub(value.model_dump(mode="json"), sv, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _scrub_mapping({f.name: getattr(value, f.name) for f in dataclasses.fields(value)},
                              sv, depth)
    if isinstance(value, Mapping):
        return _scrub_mapping(value, sv, depth)
    if isinstance(value, (list, tuple)):
        return [_scrub(v, sv, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_scrub(v, sv, depth + 1) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return _scrub_str(str(value), sv)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return _scrub_str(repr(value), sv)


def _scrub_mapping(mapping: Mapping[Any, Any], sv: tuple[str, ...], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        key = _scrub_str(k if type(k) is str else str(_scrub(k, sv, depth + 1)), sv)
        if v is not None and is_secret_key(key):
            out[key] = MASK
        else:
            out[key] = _scrub(v, sv, depth + 1)
    return out


# --------------------------------------------------------------------------- recorder


def _error_text(error: BaseException) -> str:
    """``ValueError: message`` (or the type alone when the message is empty)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

_SCRUBBED_FIELDS = ("inputs", "messages", "reply", "output", "error", "events", "extra")
_RESCRUBBED_FIELDS = ("events", "extra")  # the fields callers may also fill directly


class TraceRecorder:
    """Collects the steps of one run.  Safe to use from several tasks and threads."""

    def __init__(self, program: str = "", entry: str = "", inputs: Mapping[str, Any] | None = None,
                 *, run_id: str | None = None, secrets: tuple[str, ...] | None = None) -> None:
        """``secrets`` are the values to mask (default: :func:`env_secrets`, read now);
        a caller making many recorders reads them once and passes them on."""
        self.started_at = dt.datetime.now(dt.UTC)
        self.run_id = run_id or new_run_id(self.started_at)
        self.program = program
        self.entry = entry
        self.inputs: dict[str, Any] = dict(inputs or {})
        self._secrets = env_secrets() if secrets is None else secrets
        self._lock = threading.Lock()
        self._steps: list[Step] = []
        self._by_id: dict[str, Step] = {}
        self._count = 0

    def scrub(self, value: Any) -> Any:
        return scrub(value, self._secrets)

    def add_secrets(self, values: Iterable[str]) -> None:
        """Mask ``values`` too from now on (the keys a run sends to its models)."""
        self._secrets = merge_secrets(self._secrets, values)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @property
    def steps(self) -> list[Step]:
        with self._lock:
            return list(self._steps)

    def start(self, handler: str, kind: str, parent: str | Step | None = None,
              inputs: Mapping[str, Any] | None = None, file: str | None = None,
              line: int | None = None, **fields: Any) -> Step:
        """Record that a step began; returns the (mutable) step, with its new id."""
        if isinstance(parent, Step):
            parent = parent.id
        clean_inputs = self.scrub(dict(inputs or {}))
        extra = {k: self.scrub(v) if k in _SCRUBBED_FIELDS else v for k, v in fields.items()}
        with self._lock:
            self._count += 1
            step = Step(id=f"s{self._count}", parent=parent, handler=handler, kind=kind,
                        file=None if file is None else str(file), line=line,
                        inputs=clean_inputs, **extra)
            self._steps.append(step)
            self._by_id[step.id] = step
        return step

    def finish(self, step: Step, status: StepStatus = "ok", *, output: Any = None,
               error: str | BaseException | None = None, **fields: Any) -> Step:
        """Record how a step ended.  ``fields`` are any other :class:`Step` fields
        (``model``, ``usage``, ``cache_hit``, ``reply``, ``messages``, ``attempts``...);
        ``latency_ms`` defaults to the time since ``start``."""
        if isinstance(error, BaseException):
            error = _error_text(error)
        unknown = set(fields) - set(Step.model_fields)
        if unknown:
            raise TypeError(f"unknown step fields: {', '.join(sorted(unknown))}")
        usage = fields.pop("usage", None)
        if usage is not None and not isinstance(usage, TokenUsage):
            data = usage if isinstance(usage, Mapping) else {
                "prompt_tokens": getattr(usage, "prompt_tokens", 0),
                "completion_tokens": getattr(usage, "completion_tokens", 0)}
            usage = TokenUsage(prompt_tokens=data.get("prompt_tokens", 0) or 0,
                               completion_tokens=data.get("completion_tokens", 0) or 0)
        elapsed = (dt.datetime.now(dt.UTC) - step.started_at).total_seconds() * 1000.0
        with self._lock:
            step.status = status
            step.output = self.scrub(output)
            step.error = None if error is None else self.scrub(str(error))
            if usage is not None:
                step.usage = usage
            step.latency_ms = float(fields.pop("latency_ms", elapsed))
            for name, value in fields.items():
                setattr(step, name, self.scrub(value) if name in _SCRUBBED_FIELDS else value)
        return step

    def get(self, step_id: str) -> Step | None:
        """The step with id ``step_id``, or ``None``."""
        with self._lock:
            return self._by_id.get(step_id)

    def event(self, step: Step, type: str, summary: str, **data: Any) -> None:
        """Append an event (a hook firing, a decomposition step...) to a step."""
        record = self.scrub({"type": type, "summary": summary, **data})
        with self._lock:
            step.events.append(record)

    def to_trace(self, *, output: Any = None, status: Literal["ok", "failed"] = "ok",
                 error: str | BaseException | None = None, models: Mapping[str, str] | None = None,
                 program: str | None = None, entry: str | None = None,
                 inputs: Mapping[str, Any] | None = None) -> Trace:
        """The finished trace; a step still ``running`` becomes ``failed`` ("did not
        finish").  Values recorded through :meth:`start`, :meth:`finish` and
        :meth:`event` were scrubbed then; a step's ``events`` and ``extra``, which
        callers may also fill directly, are scrubbed once more here."""
        if isinstance(error, BaseException):
            error = _error_text(error)
        finished = dt.datetime.now(dt.UTC)
        with self._lock:
            steps = []
            for step in self._steps:
                update = {name: self.scrub(getattr(step, name)) for name in _RESCRUBBED_FIELDS}
                if step.status == "running":
                    update["status"] = "failed"
                    update["error"] = step.error or "did not finish (the run ended first)"
                steps.append(step.model_copy(update=update))
        return Trace(
            run_id=self.run_id, program=self.program if program is None else str(program),
            entry=self.entry if entry is None else entry,
            inputs=self.scrub(dict(self.inputs if inputs is None else inputs)),
            output=self.scrub(output), status=status,
            error=None if error is None else self.scrub(str(error)),
            started_at=self.started_at, finished_at=finished,
            wall_ms=(finished - self.started_at).total_seconds() * 1000.0,
            steps=steps, totals=compute_totals(steps), models=dict(models or {}))


# --------------------------------------------------------------------------- files


def default_trace_dir(project_root: Path) -> Path:
    """``PFLOW_TRACE_DIR`` if set, else ``<project_root>/.pflow-cache/traces``."""
    env = os.environ.get("PFLOW_TRACE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(project_root) / ".pflow-cache" / "traces"


def write_trace(trace: Trace, directory: str | os.PathLike[str], *,
                durable: bool = True) -> Path:
    """Write ``<directory>/<run_id>.json`` atomically (temp file in the same folder,
    fsync, ``os.replace``): a crash never leaves a half-written trace.  The trace is
    scrubbed once more on the way out.

    ``durable=False`` is for many small traces (one per dataset row): no ``fsync``, no
    second scrub (the recorder scrubbed every value it took, and ``to_trace`` the rest)
    and compact JSON; a reader still never sees half a trace."""
    if not RUN_ID_RE.match(trace.run_id) and not re.fullmatch(r"[\w.-]+", trace.run_id):
        raise ValueError(f"run id {trace.run_id!r} is not a safe file name")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if durable:
        clean = Trace.model_validate(scrub(trace.model_dump(mode="json")))
        data = clean.model_dump_json(indent=2).encode("utf-8")
    else:
        data = trace.model_dump_json().encode("utf-8")
    target = folder / f"{trace.run_id}.json"
    write_atomic(target, data + b"\n", durable=durable, prefix=f".{trace.run_id}.")
    if durable:
        _fsync_dir(folder)
    return target


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_traces(directory: str | os.PathLike[str]) -> list[Path]:
    """The trace files in ``directory`` (named by run id), newest first."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("*.json") if p.is_file() and RUN_ID_RE.match(p.stem)]
    return sorted(found, key=lambda p: p.stem, reverse=True)


def _not_found(what: str, folder: Path) -> TraceNotFound:
    newest = [p.stem for p in list_traces(folder)[:5]]
    if newest:
        return TraceNotFound(f"no trace {what} in {folder}; newest runs: {', '.join(newest)}")
    return TraceNotFound(f"no trace {what} in {folder}: no runs have been traced there yet")


def load_trace(path_or_run_id: str | os.PathLike[str], directory: str | os.PathLike[str]) -> Trace:
    """Load a trace given a file path, a run id (or a unique prefix of one), or
    ``"last"`` (the newest in ``directory``)."""
    folder = Path(directory)
    ref = os.fspath(path_or_run_id)
    if ref == "last":
        traces = list_traces(folder)
        if not traces:
            raise _not_found("'last'", folder)
        return _read(traces[0])
    given = Path(ref)
    if given.is_file():
        return _read(given)
    if re.fullmatch(r"[\w.-]+", ref):
        exact = folder / f"{ref}.json"
        if exact.is_file():
            return _read(exact)
        matches = [p for p in list_traces(folder) if p.stem.startswith(ref)]
        if len(matches) == 1:
            return _read(matches[0])
        if len(matches) > 1:
            shown = ", ".join(p.stem for p in matches[:5])
            raise TraceNotFound(f"run id prefix '{ref}' is ambiguous in {folder}: {shown}"
                                + (", ..." if len(matches) > 5 else ""))
    raise _not_found(f"'{ref}'", folder)


def _read(path: Path) -> Trace:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"cannot read trace {path}: {e}") from e
    try:
        raw = jsondata.loads(text, jsondata.MAX_FILE_DEPTH)  # bounded: a hostile file cannot exhaust the stack
    except jsondata.NotJSONData as e:
        raise TraceError(f"{path} is not a pflow trace: {e}") from None
    except ValueError as e:
        raise TraceError(f"{path} is not a pflow trace (invalid JSON: {e})") from e
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise TraceError(f"{path} is not a pflow trace (no schema_version)")
    if raw["schema_version"] != TRACE_SCHEMA:
        raise TraceError(f"{path} has trace schema {raw['schema_version']!r}; "
                         f"this version of pflow reads {TRACE_SCHEMA!r}")
    try:
        return Trace.model_validate(raw)
    except ValueError as e:
        raise TraceError(f"{path} is not a valid pflow trace: {e}") from e


# --------------------------------------------------------------------------- rendering

STATUS_MARKS = {"ok": "✓", "failed": "✗", "skipped": "–", "not_taken": "·", "running": "…"}
_COLORS = {"ok": "32", "failed": "31", "skipped": "2", "not_taken": "2", "running": "33"}
SHORT = 100


def _clip(text: str, limit: int = SHORT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str, limit: int = SHORT) -> str:
    return _clip(" ".join(text.split()), limit)


def _short(value: Any, limit: int = SHORT) -> str:
    """A value as one line of JSON (strings quoted, newlines escaped), clipped."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text, limit)


def _inputs_line(inputs: Mapping[str, Any]) -> str:
    parts = [f"{k}={_short(v, 40)}" for k, v in inputs.items()]
    return _clip(", ".join(parts))


def format_ms(ms: float) -> str:
    """A duration in milliseconds for people: ``420 ms``, ``1.25 s``, ``2 min 5 s``."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def _step_line(step: Step, color: bool) -> str:
    mark = _paint(STATUS_MARKS.get(step.status, "?"), _COLORS.get(step.status, "0"), color)
    parts = [f"{mark} {_paint(step.handler, '1', color)}", step.kind]
    if step.status in ("skipped", "not_taken"):
        parts.append(step.status.replace("_", " "))
    if step.model:
        parts.append(step.model)
    if step.answered_by:
        parts.append(_paint(f"answered by fallback '{step.answered_by}'", "33", color))
    if step.status not in ("skipped", "not_taken"):
        parts.append(format_ms(step.latency_ms))
    if step.cache_hit:
        parts.append(_paint("cached", "36", color))
    if step.usage is None and step.usage_unknown:
        parts.append("tokens unknown")  # no call of the step reported its usage
    elif step.usage is not None:
        parts.append(f"{step.usage.prompt_tokens}+{step.usage.completion_tokens} tok"
                     + (f" (+{step.usage_unknown} call{'s' if step.usage_unknown != 1 else ''}"
                        f" unknown)" if step.usage_unknown else ""))
    if step.cost is not None:
        parts.append(f"${step.cost:.4f}")
    if step.attempts > 1:
        parts.append(f"{step.attempts} attempts")
    return "  ".join(parts)


def _step_details(step: Step, color: bool) -> list[str]:
    lines: list[str] = []
    if step.inputs:
        lines.append(f"in:  {_inputs_line(step.inputs)}")
    if step.status == "ok" or step.output is not None:
        lines.append(f"out: {_short(step.output)}")
    if step.error:
        err = step.error.strip().splitlines() or [""]
        lines.append(_paint(f"error: {err[0]}", "31", color))
        lines.extend(_paint(f"  {e}", "31", color) for e in err[1:10])
        if len(err) > 10:
            lines.append(f"  … ({len(err) - 10} more lines)")
    for ev in step.events:
        kind = ev.get("type", "event") if isinstance(ev, dict) else "event"
        summary = ev.get("summary") if isinstance(ev, dict) else None
        if not isinstance(summary, str):
            summary = _short({k: v for k, v in ev.items() if k != "type"} if isinstance(ev, dict) else ev)
        lines.append(f"• {kind}: {_one_line(summary)}")
    return lines


def render_trace_tree(trace: Trace, color: bool = False) -> str:
    """The trace as text: a header (run, program, entry, status, wall time,
    totals), then one line per step — status mark (✓ ok, ✗ failed, – skipped,
    · not taken), handler, kind, model, latency, cache hit, tokens — with its
    inputs, output, error and events indented below it and the steps it called
    nested under it."""
    status = _paint(f"{STATUS_MARKS[trace.status]} {trace.status}", _COLORS[trace.status], color)
    t = trace.totals
    totals = (f"{t.calls} model call{'s' if t.calls != 1 else ''} ({t.cache_hits} cached), "
              f"{t.prompt_tokens}+{t.completion_tokens} tokens")
    if t.cost is not None:
        totals += f", ${t.cost:.4f}"
    if t.usage_unknown:
        totals += (f" (usage unknown for {t.usage_unknown} call{'s' if t.usage_unknown != 1 else ''}"
                   f": not counted, so tokens and cost are at least these)")
    lines = [f"run {trace.run_id}  {status}  {format_ms(trace.wall_ms)}",
             f"program: {trace.program}  entry: {trace.entry}",
             f"totals: {totals}"]
    if trace.models:
        lines.append("models: " + ", ".join(f"{k}={v}" for k, v in sorted(trace.models.items())))
    if trace.inputs:
        lines.append(f"inputs: {_inputs_line(trace.inputs)}")
    if trace.status == "ok" or trace.output is not None:
        lines.append(f"output: {_short(trace.output)}")
    if trace.error:
        first, *rest = trace.error.strip().splitlines() or [""]
        lines.append(_paint(f"error: {first}", "31", color))
        lines.extend(_paint(f"  {e}", "31", color) for e in rest[:10])

    ids = {s.id for s in trace.steps}
    children: dict[str | None, list[Step]] = {}
    for step in trace.steps:
        parent = step.parent if step.parent in ids and step.parent != step.id else None
        children.setdefault(parent, []).append(step)

    seen: set[str] = set()

    def walk(roots: list[Step]) -> None:
        # iterative depth-first walk: no recursion limit on deep call chains
        stack = [(s, "", i == len(roots) - 1) for i, s in enumerate(roots)][::-1]
        while stack:
            step, prefix, last = stack.pop()
            if step.id in seen:
                continue
            seen.add(step.id)
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{_step_line(step, color)}")
            inner = prefix + ("   " if last else "│  ")
            kids = [k for k in children.get(step.id, []) if k.id not in seen]
            lines.extend(inner + ("│  " if kids else "   ") + d for d in _step_details(step, color))
            stack.extend([(k, inner, i == len(kids) - 1) for i, k in enumerate(kids)][::-1])

    walk(children.get(None, []))
    orphans = [s for s in trace.steps if s.id not in seen]  # parents in a cycle
    if orphans:
        walk(orphans)
    return "\n".join(lines)
