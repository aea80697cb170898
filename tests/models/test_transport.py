"""Retries, backoff, Retry-After and error classification (no network)."""

from __future__ import annotations

import asyncio
import random

import pytest

from promptflow_dsl.models.base import ModelError
from promptflow_dsl.models.transport import (
    backoff_delay,
    classify,
    parse_retry_after,
    redact,
    with_retries,
)


class FakeResponse:
    def __init__(self, status, headers=None):
        self.status_code = status
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}


class StatusError(Exception):
    """Shaped like litellm / openai status errors: .status_code and .response.headers."""

    def __init__(self, status, message="boom", headers=None):
        super().__init__(message)
        self.status_code = status
        self.response = FakeResponse(status, headers)


class APIConnectionError(Exception):
    status_code = 500  # litellm gives connection errors a made-up 500


class Sleeps:
    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, delay):
        self.delays.append(delay)


def script(*outcomes):
    """A call that raises or returns the outcomes in order; counts attempts."""
    state = {"n": 0}

    async def call():
        item = outcomes[state["n"]]
        state["n"] += 1
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            return await item()
        return item

    return call, state


def run(coro):
    return asyncio.run(coro)


def test_success_first_time():
    call, state = script("ok")
    sleeps = Sleeps()
    assert run(with_retries(call, model="m", sleep=sleeps)) == "ok"
    assert state["n"] == 1 and sleeps.delays == []


def test_retry_after_is_honoured():
    call, state = script(StatusError(429, headers={"Retry-After": "3"}), "ok")
    sleeps = Sleeps()
    assert run(with_retries(call, model="m", sleep=sleeps)) == "ok"
    assert sleeps.delays == [3.0]


def test_retry_after_capped_by_max_delay():
    call, _ = script(StatusError(503, headers={"Retry-After": "600"}), "ok")
    sleeps = Sleeps()
    run(with_retries(call, model="m", sleep=sleeps, max_delay=7))
    assert sleeps.delays == [7]


def test_backoff_full_jitter_grows():
    call, state = script(StatusError(500), StatusError(502), StatusError(503), "ok")
    sleeps = Sleeps()
    assert run(with_retries(call, model="m", sleep=sleeps, base_delay=1, max_delay=3,
                            rng=random.Random(1))) == "ok"
    assert state["n"] == 4 and len(sleeps.delays) == 3
    for attempt, d in enumerate(sleeps.delays, 1):
        assert 0 <= d <= min(3, 2 ** (attempt - 1))


def test_gives_up_after_max_attempts():
    call, state = script(*[StatusError(500, "upstream broke")] * 5)
    sleeps = Sleeps()
    with pytest.raises(ModelError) as err:
        run(with_retries(call, model="openai/x", max_attempts=3, sleep=sleeps))
    assert state["n"] == 3 and len(sleeps.delays) == 2
    msg = str(err.value)
    assert msg.startswith("openai/x: HTTP 500 server error: upstream broke")
    assert "gave up after 3 attempts" in msg
    assert err.value.status == 500 and err.value.model == "openai/x"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_not_retried(status):
    call, state = script(StatusError(status, "nope"), "ok")
    with pytest.raises(ModelError) as err:
        run(with_retries(call, model="m", sleep=Sleeps()))
    assert state["n"] == 1 and err.value.status == status
    assert "not retried; 1 attempt" in str(err.value)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 529])
def test_retryable_statuses(status):
    call, state = script(StatusError(status), "ok")
    assert run(with_retries(call, model="m", sleep=Sleeps())) == "ok"
    assert state["n"] == 2


def test_connection_errors_retried():
    call, state = script(APIConnectionError("refused"), ConnectionResetError("reset"), "ok")
    assert run(with_retries(call, model="m", sleep=Sleeps())) == "ok"
    assert state["n"] == 3
    failure = classify(APIConnectionError("refused"))
    assert failure.retryable and failure.status is None
    assert failure.description.startswith("connection failed")


def test_per_attempt_timeout():
    async def slow():
        await asyncio.sleep(10)

    call, state = script(slow, slow, slow)
    with pytest.raises(ModelError) as err:
        run(with_retries(call, model="m", max_attempts=3, timeout=0.05, sleep=Sleeps()))
    assert state["n"] == 3
    assert "timed out after 0.05s (gave up after 3 attempts)" in str(err.value)


def test_model_error_passes_through():
    call, state = script(ModelError("m", "bad reply", retryable=False), "ok")
    with pytest.raises(ModelError, match="bad reply"):
        run(with_retries(call, model="m", sleep=Sleeps()))
    assert state["n"] == 1
    call, state = script(ModelError("m", "flaky", retryable=True), "ok")
    assert run(with_retries(call, model="m", sleep=Sleeps())) == "ok"


def test_other_exceptions_not_retried():
    call, state = script(ValueError("bad input"), "ok")
    with pytest.raises(ModelError, match="ValueError: bad input"):
        run(with_retries(call, model="m", sleep=Sleeps()))
    assert state["n"] == 1


def test_cancellation_propagates():
    async def main():
        task = asyncio.create_task(with_retries(lambda: asyncio.sleep(10), model="m"))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert classify(StatusError(429, headers={"retry-after-ms": "250"})).retry_after == 0.25


def test_backoff_delay_bounds():
    rng = random.Random(0)
    assert all(0 <= backoff_delay(10, 0.5, 20, rng) <= 20 for _ in range(100))


def test_secrets_redacted():
    text = redact("bad key sk-abcdef1234567890 and Bearer abcdefghijkl")
    assert "abcdef1234567890" not in text and "abcdefghijkl" not in text
    call, _ = script(StatusError(401, "Incorrect API key provided: sk-test1234567890"))
    with pytest.raises(ModelError) as err:
        run(with_retries(call, model="m", sleep=Sleeps()))
    assert "1234567890" not in str(err.value)
