"""Retries, timeouts and error classification for remote model calls.

:func:`with_retries` runs one model call with a per-attempt timeout and retries the
failures that may pass: HTTP 408 / 409 / 429 / 5xx, connection errors and timeouts,
with exponential backoff and full jitter (``uniform(0, min(max_delay, base_delay *
2**n))``), or the server's ``Retry-After`` (seconds or an HTTP date, capped at
``max_delay``) when the error carries one. Other 4xx errors fail at once. Whatever
fails for good becomes a :class:`~promptflow_dsl.models.base.ModelError` naming the
model, what happened and how many attempts were made.

The error classification is duck-typed, so it works for litellm, openai and httpx
exceptions without importing any of them: the status comes from ``.status_code``
(or ``.response.status_code``), the headers from ``.response.headers`` (or
``.headers`` / ``.litellm_response_headers``), connection failures are recognised
by the class names in the exception's MRO.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from .base import ModelError

T = TypeVar("T")

RETRYABLE_4XX = frozenset({408, 409, 429})

_CONNECTION_NAMES = frozenset({
    "APIConnectionError", "APITimeoutError", "Timeout", "TimeoutException", "TransportError",
    "NetworkError", "ConnectError", "ReadError", "WriteError", "RemoteProtocolError",
    "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout", "ClientConnectionError",
    "ServerDisconnectedError", "ClientOSError", "ServerTimeoutError", "MidStreamFallbackError",
})

_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{4}|Bearer\s+|api[_-]?key[\"'=:\s]+)[A-Za-z0-9_\-\.]{4,}",
                     re.IGNORECASE)

_REASONS = {400: "bad request", 401: "authentication failed", 403: "permission denied",
            404: "not found", 408: "request timeout", 409: "conflict", 413: "request too large",
            422: "unprocessable request", 429: "rate limited", 500: "server error",
            502: "bad gateway", 503: "service unavailable", 504: "gateway timeout"}


CUT_OFF = "the stream ended without a finish_reason: cut off by the server"
"""The error of a stream that ended (``[DONE]`` or the end of the body) without saying
why it stopped: retried like a broken connection, never passed off as a whole reply."""


@dataclass(frozen=True)
class Endpoint:
    """Where a call went, for error messages: the API base URL (``None`` when only the
    provider's library knows it), the path under it, and whether an API key was sent."""

    base: str | None = None
    path: str = ""
    keyed: bool = True

    @property
    def url(self) -> str | None:
        return self.base.rstrip("/") + self.path if self.base else None


@dataclass(frozen=True)
class Failure:
    """What one failed attempt amounts to."""

    description: str
    status: int | None
    retryable: bool
    retry_after: float | None = None


def redact(text: str) -> str:
    """Hide anything that looks like an API key or a bearer token."""
    return _SECRET.sub(lambda m: m.group(1) + "***", text)


def _status_of(exc: BaseException) -> int | None:
    for obj in (exc, getattr(exc, "response", None)):
        code = getattr(obj, "status_code", None) if obj is not None else None
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    return None


def _header_sources(exc: BaseException) -> list[Mapping[str, Any]]:
    response = getattr(exc, "response", None)
    out = []
    for headers in (getattr(response, "headers", None), getattr(exc, "headers", None),
                    getattr(exc, "litellm_response_headers", None)):
        if headers is not None and hasattr(headers, "get"):
            out.append(headers)
    return out


def parse_retry_after(value: Any) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        now = datetime.datetime.now(when.tzinfo or datetime.UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def retry_after_of(exc: BaseException) -> float | None:
    """The wait an error asks for (``retry-after-ms`` or ``Retry-After``), if any."""
    for headers in _header_sources(exc):
        try:
            ms = headers.get("retry-after-ms")
            if ms is not None:
                return max(0.0, float(ms) / 1000.0)
            value = parse_retry_after(headers.get("retry-after"))
        except (TypeError, ValueError):
            continue
        if value is not None:
            return value
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(out) < 20:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


_WRAPPER_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception)\s*(?::|-)\s*)+")


def _message_of(exc: BaseException) -> str:
    text = " ".join((str(exc).strip() or type(exc).__name__).split())
    text = text.split(" Original exception:")[0].split(" Received Model Group=")[0]
    text = _WRAPPER_PREFIX.sub("", text) or text
    if len(text) > 300:
        text = text[:297] + "..."
    return redact(text)


def _refused(chain: list[BaseException]) -> bool:
    return any(isinstance(e, ConnectionRefusedError) or getattr(e, "refused", False) is True
               or "connection refused" in str(e).lower() for e in chain)


def _connect_failed(chain: list[BaseException]) -> bool:
    return any(type(e).__name__ in ("ConnectError", "ConnectTimeout", "ClientConnectorError")
               or str(e).startswith("cannot connect to ") for e in chain)


def _auth_hint(endpoint: Endpoint | None) -> str:
    where = f"the server at {endpoint.base}" if endpoint and endpoint.base else "the server"
    sent = "" if endpoint is None or endpoint.keyed else "no API key was sent; "
    return (f"; {where} wants an API key for this model: {sent}give one in the model "
            f"declaration with `api_key_env: \"NAME\"` (the environment variable that holds it) "
            f"or `api_key: \"...\"`")


_PROXY_KEY_HINT = ("; a LiteLLM proxy without a database answers so to any key but its "
                   "master key: give the proxy's master key (or a virtual key of a proxy "
                   "with a database) with `api_key_env: \"NAME\"` or `api_key`")


def _not_found_hint(endpoint: Endpoint | None) -> str:
    if endpoint is None or endpoint.url is None:
        return ""
    base = (endpoint.base or "").rstrip("/")
    hint = ("is '/v1' missing at the end of api_base?" if not base.endswith("/v1")
            else "check api_base and the model name")
    return f" (the URL tried: {endpoint.url}; {hint})"


def classify(exc: BaseException, endpoint: Endpoint | None = None) -> Failure:
    """Decide whether a failed attempt may be retried, and describe it (with the address
    of ``endpoint`` where it helps: a refused connection, a 404, a missing key)."""
    if isinstance(exc, ModelError):
        return Failure(str(exc.args[0]) if exc.args else type(exc).__name__, exc.status,
                       exc.retryable, retry_after_of(exc))
    if isinstance(exc, TimeoutError):
        return Failure("timed out", None, True)
    names = {c.__name__ for c in type(exc).__mro__}
    status = _status_of(exc)
    detail = _message_of(exc)
    bad_json = next((e for e in _chain(exc) if isinstance(e, json.JSONDecodeError)), None)
    if bad_json is not None:  # e.g. a 200 whose body is an HTML error page
        return Failure(f"the server's reply is not valid JSON ({bad_json.msg} at line "
                       f"{bad_json.lineno} column {bad_json.colno})", None, True)
    chain = _chain(exc)
    if any("finish_reason" in str(e) and "MidStreamFallbackError" in {c.__name__ for c in type(e).__mro__}
           for e in chain):  # litellm's word for a stream cut off before it said why it stopped
        return Failure(CUT_OFF, None, True)
    timeout_names = any("Timeout" in n for e in chain for n in {c.__name__ for c in type(e).__mro__})
    if not timeout_names and (_refused(chain) or _connect_failed(chain)):
        # litellm wraps these in errors with a made-up status 500
        where = endpoint.base if endpoint is not None and endpoint.base else "the server"
        why = "connection refused" if _refused(chain) else detail
        return Failure(f"cannot connect to {where} ({why})", None, True)
    if names & _CONNECTION_NAMES:  # before the status: litellm gives these a made-up 500/408
        what = "timed out" if any("Timeout" in n for n in names) else "connection failed"
        return Failure(f"{what}: {detail}", None, True, retry_after_of(exc))
    if status is not None and 400 <= status < 600:
        reason = _REASONS.get(status, "server error" if status >= 500 else "client error")
        retryable = status >= 500 or status in RETRYABLE_4XX
        text = f"HTTP {status} {reason}: {detail}"
        if status in (401, 403):
            text += _auth_hint(endpoint)
        elif status == 400 and "no connected db" in detail.lower():
            text += _PROXY_KEY_HINT
        elif status >= 500 and "response_format" in detail and "json_object" in detail:
            # llama-cpp-python (also behind a proxy) refuses response_format json_schema
            # with a 500: asking again cannot help
            retryable = False
            text += ("; the server (or the one behind a proxy) does not take response_format "
                     "json_schema: declare `json_schema: false` on the model to ask for JSON "
                     "by instructions")
        elif status == 404:
            text += _not_found_hint(endpoint)
        return Failure(text, status, retryable, retry_after_of(exc))
    if isinstance(exc, OSError):  # ConnectionError and socket errors
        return Failure(f"connection failed: {detail}", None, True)
    return Failure(f"{type(exc).__name__}: {detail}", status, False)


def backoff_delay(attempt: int, base_delay: float, max_delay: float,
                  rng: random.Random | None = None) -> float:
    """Full jitter: a uniform delay in ``[0, min(max_delay, base_delay * 2**(attempt-1))]``."""
    cap = min(max_delay, base_delay * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0.0, cap)


async def with_retries(call: Callable[[], Awaitable[T]], *, model: str, max_attempts: int = 4,
                       base_delay: float = 0.5, max_delay: float = 20.0, timeout: float | None = 120.0,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                       rng: random.Random | None = None, endpoint: Endpoint | None = None) -> T:
    """Run ``call()`` (a fresh awaitable per attempt) with timeouts and retries; errors
    name ``endpoint`` where it helps (see :func:`classify`).

    Raises :class:`ModelError` (``status`` set where an HTTP status was seen) when an
    attempt fails with an error that is not retried, or when ``max_attempts``
    attempts have failed. ``asyncio.CancelledError`` is never swallowed.
    """
    attempts = max(1, int(max_attempts))
    last: Failure | None = None
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(timeout):
                return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            failure = classify(exc, endpoint)
            if isinstance(exc, TimeoutError) and timeout is not None:
                failure = Failure(f"timed out after {timeout:g}s", None, True)
            last = failure
            if not failure.retryable:
                if isinstance(exc, ModelError):
                    raise
                tried = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                raise ModelError(model, f"{failure.description} (not retried; {tried})",
                                 status=failure.status, retryable=False) from exc
            if attempt == attempts:
                raise ModelError(model, f"{_strip_model(failure.description, model)} "
                                 f"(gave up after {attempts} attempt{'s' if attempts > 1 else ''})",
                                 status=failure.status, retryable=True) from exc
            if failure.retry_after is not None:
                delay = min(failure.retry_after, max_delay)
            else:
                delay = backoff_delay(attempt, base_delay, max_delay, rng)
            await sleep(delay)
    raise ModelError(model, f"no attempt made: {last}")  # pragma: no cover - loop always returns


def _strip_model(description: str, model: str) -> str:
    prefix = f"{model}: "
    return description[len(prefix):] if description.startswith(prefix) else description
