"""The response cache: keys, JSON-only storage, misses on anything odd, in-flight
de-duplication and the cache modes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from promptflow_dsl.models.base import GenParams, Message
from promptflow_dsl.runtime.cache import (
    CACHE_FORMAT,
    CacheMode,
    ResponseCache,
    cache_key,
    default_cache_dir,
)

diskcache = pytest.importorskip("diskcache")

MODE_PICKLE = 4  # diskcache.core.MODE_PICKLE


def payload(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "messages": [Message("system", "Be brief.").as_dict(), Message("user", "Hi").as_dict()],
        "params": GenParams(temperature=0.0, max_tokens=20).cache_view(),
        "response_format": None,
    }
    base.update(over)
    return base


@pytest.fixture
def cache(tmp_path: Path):
    c = ResponseCache(tmp_path / "responses")
    yield c
    c.close()


def run(coro):
    return asyncio.run(coro)


def modes(directory: Path) -> list[int]:
    con = sqlite3.connect(directory / "cache.db")
    try:
        return [row[0] for row in con.execute("SELECT mode FROM Cache")]
    finally:
        con.close()


# --------------------------------------------------------------------------- keys


def test_key_is_sha256_of_canonical_json() -> None:
    p = {"b": 1, "a": ["é", 2.5]}
    expected = json.dumps({"v": CACHE_FORMAT, "model": "m", "kind": "chat", "payload": p, "sample": 0},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert cache_key("m", "chat", p) == hashlib.sha256(expected.encode()).hexdigest()
    assert len(cache_key("m", "chat", p)) == 64


def test_key_is_stable() -> None:
    a = cache_key("openai/gpt-4o-mini", "chat", payload())
    b = cache_key("openai/gpt-4o-mini", "chat", dict(reversed(list(payload().items()))))
    assert a == b == cache_key("openai/gpt-4o-mini", "chat", payload(), sample=0)


@pytest.mark.parametrize("change", [
    {"model": "openai/gpt-4o"},
    {"kind": "complete"},
    {"sample": 1},
    {"payload": payload(messages=[{"role": "user", "content": "Hi!"}])},
    {"payload": payload(params=GenParams(temperature=0.1, max_tokens=20).cache_view())},
    {"payload": payload(params=GenParams(temperature=0.0, max_tokens=20, seed=1).cache_view())},
    {"payload": payload(params=GenParams(temperature=0.0, max_tokens=20, stop=("\n",)).cache_view())},
    {"payload": payload(response_format={"type": "json_object"})},
    {"payload": payload(extra_field=1)},
])
def test_key_depends_on_every_field(change: dict[str, Any]) -> None:
    args = {"model": "openai/gpt-4o-mini", "kind": "chat", "payload": payload(), "sample": 0}
    base = cache_key(args["model"], args["kind"], args["payload"], args["sample"])
    args.update(change)
    assert cache_key(args["model"], args["kind"], args["payload"], args["sample"]) != base


def test_secrets_never_enter_a_key() -> None:
    plain = cache_key("m", "chat", payload())
    secret = "sk-live-SECRET-1234567890"
    with_secrets = payload(api_key=secret, headers={"Authorization": f"Bearer {secret}"})
    with_secrets["params"] = dict(with_secrets["params"], api_key=secret,
                                  extra={"api_key_env": "X", "nested": [{"authorization": secret}]})
    keyed = cache_key("m", "chat", with_secrets)
    nested_plain = payload()
    nested_plain["params"] = dict(nested_plain["params"], extra={"nested": [{}]})
    assert keyed == cache_key("m", "chat", nested_plain)
    assert keyed != plain  # "nested" is a real field, so the key differs; the secrets do not count
    assert cache_key("m", "chat", payload(API_KEY="x")) == plain
    # GenParams.cache_view drops secrets in extra too
    gp = GenParams(extra={"api_key": secret, "top_k": 3}).cache_view()
    assert cache_key("m", "chat", {"p": gp}) == cache_key("m", "chat", {"p": GenParams(extra={"top_k": 3}).cache_view()})


def test_key_rejects_bad_kind_and_sample() -> None:
    with pytest.raises(ValueError, match="unknown cache kind"):
        cache_key("m", "generate", {})
    with pytest.raises(ValueError):
        cache_key("m", "chat", {}, sample=-1)
    for kind in ("chat", "complete", "score", "embed"):
        cache_key("m", kind, {})


def test_lone_surrogates_get_a_key() -> None:
    assert cache_key("m", "chat", {"text": "\ud800"}) != cache_key("m", "chat", {"text": "\ud801"})


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PFLOW_CACHE_DIR", raising=False)
    assert default_cache_dir(tmp_path) == tmp_path / ".pflow-cache" / "responses"
    monkeypatch.setenv("PFLOW_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir(tmp_path) == tmp_path / "c"


def test_cache_mode_values() -> None:
    assert CacheMode("refresh") is CacheMode.REFRESH
    assert [m.value for m in CacheMode] == ["default", "refresh", "off"]


# --------------------------------------------------------------------------- storage


def test_round_trip_and_json_text_only(cache: ResponseCache) -> None:
    small = {"text": "hello", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    large = {"text": "é" * 100_000, "logprob": float("-inf")}  # stored in a file, not the db

    async def go() -> None:
        assert await cache.get("k1") is None
        assert await cache.set("k1", small)
        assert await cache.set("k2", large)
        assert await cache.get("k1") == small
        assert await cache.get("k2") == large

    run(go())
    found = modes(cache.directory)
    assert len(found) == 2
    assert MODE_PICKLE not in found
    assert set(found) <= {1, 3}  # raw text in the db, text in a file
    info = cache.info()
    assert info["entries"] == 2 and info["size"] > 0 and info["format"] == CACHE_FORMAT
    assert info["directory"] == str(cache.directory)
    assert cache.clear() == 2
    assert cache.info()["entries"] == 0


def test_set_rejects_non_json(cache: ResponseCache) -> None:
    with pytest.raises(TypeError, match="JSON data"):
        run(cache.set("k", {"x": object()}))


def test_info_and_clear_do_not_create_the_store(tmp_path: Path) -> None:
    c = ResponseCache(tmp_path / "never")
    assert c.info()["entries"] == 0
    assert c.clear() == 0
    c.close()
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("raw", ["not json {", "[1, 2]", '"a string"', "", "null"])
def test_bad_text_entries_are_misses(cache: ResponseCache, raw: str) -> None:
    with diskcache.Cache(str(cache.directory)) as plain:
        plain.set("k", raw)
    assert run(cache.get("k")) is None
    assert run(cache.get_or_compute("k", _const({"fresh": 1}), CacheMode.DEFAULT)) == ({"fresh": 1}, False)
    assert run(cache.get("k")) == {"fresh": 1}  # the bad entry was overwritten


def test_pickled_entries_are_misses_and_never_unpickled(cache: ResponseCache, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    with diskcache.Cache(str(cache.directory)) as plain:
        plain.set("dict", {"text": "pickled"})  # diskcache pickles a dict (mode 4)
        plain.set("evil", Evil())
    assert MODE_PICKLE in modes(cache.directory)
    assert run(cache.get("dict")) is None
    assert run(cache.get("evil")) is None
    assert not marker.exists()
    assert cache.read_errors == 2


def test_non_text_values_in_the_db_are_misses(cache: ResponseCache) -> None:
    run(cache.set("k", {"a": 1}))
    con = sqlite3.connect(cache.directory / "cache.db")
    with con:
        con.execute("UPDATE Cache SET value = X'00ff10' WHERE mode = 1")
    con.close()
    assert run(cache.get("k")) is None


def test_corrupt_or_missing_value_files_are_misses(cache: ResponseCache) -> None:
    big = {"text": "x" * 200_000}
    run(cache.set("a", big))
    run(cache.set("b", big))
    files = sorted(p for p in cache.directory.rglob("*.val"))
    assert len(files) == 2
    files[0].write_bytes(b"\xff\xfe garbage \x00")
    files[1].unlink()
    assert run(cache.get("a")) is None
    assert run(cache.get("b")) is None


def test_corrupt_database_is_a_miss(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
    c = ResponseCache(d)
    try:
        assert run(c.get("k")) is None
        assert run(c.set("k", {"a": 1})) is False
        assert c.write_errors == 1
        assert "error" in c.info()
    finally:
        c.close()


def test_unusable_directory_is_a_miss_and_writes_are_swallowed(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a folder")
    c = ResponseCache(blocker / "responses")
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"text": "ok"}

    try:
        assert run(c.get("k")) is None
        assert run(c.get_or_compute("k", compute, CacheMode.DEFAULT)) == ({"text": "ok"}, False)
        assert run(c.get_or_compute("k", compute, CacheMode.DEFAULT)) == ({"text": "ok"}, False)
        assert calls == 2
        assert c.write_errors == 2
    finally:
        c.close()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads through permissions")
def test_unreadable_directory_is_a_miss(tmp_path: Path) -> None:
    d = tmp_path / "c"
    ResponseCache(d).close()
    c = ResponseCache(d)
    run(c.set("k", {"a": 1}))
    c.close()
    d.chmod(0)
    try:
        c = ResponseCache(d)
        assert run(c.get("k")) is None
        c.close()
    finally:
        d.chmod(0o755)


def test_full_disk_does_not_fail_a_run(cache: ResponseCache, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    run(cache.get("warm-up"))  # open the store
    monkeypatch.setattr(cache._store(), "set", no_space)
    assert run(cache.get_or_compute("k", _const({"v": 1}), CacheMode.DEFAULT)) == ({"v": 1}, False)
    assert cache.write_errors == 1


def test_io_runs_off_the_event_loop_thread(cache: ResponseCache, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = cache._get_blocking

    def spy(key: str) -> Any:
        seen.append(threading.current_thread().name)
        return original(key)

    monkeypatch.setattr(cache, "_get_blocking", spy)
    run(cache.get("k"))
    assert seen and seen[0] != threading.current_thread().name


# --------------------------------------------------------------------------- get_or_compute


def _const(value: dict[str, Any]):
    async def compute() -> dict[str, Any]:
        return dict(value)

    return compute


class Slow:
    def __init__(self, value: dict[str, Any] | None = None, fail: BaseException | None = None,
                 delay: float = 0.05) -> None:
        self.calls = 0
        self.value = value or {"text": "computed"}
        self.fail = fail
        self.delay = delay

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return dict(self.value)


def test_hit_after_miss(cache: ResponseCache) -> None:
    compute = Slow()

    async def go() -> None:
        assert await cache.get_or_compute("k", compute, CacheMode.DEFAULT) == ({"text": "computed"}, False)
        assert await cache.get_or_compute("k", compute, CacheMode.DEFAULT) == ({"text": "computed"}, True)
        assert await cache.get_or_compute("k", compute, "default") == ({"text": "computed"}, True)

    run(go())
    assert compute.calls == 1


def test_concurrent_identical_requests_compute_once(cache: ResponseCache) -> None:
    compute = Slow()

    async def go() -> list[tuple[dict[str, Any], bool]]:
        return await asyncio.gather(*(cache.get_or_compute("k", compute, CacheMode.DEFAULT)
                                      for _ in range(10)))

    results = run(go())
    assert compute.calls == 1
    assert all(v == {"text": "computed"} for v, _ in results)
    assert sorted(hit for _, hit in results) == [False] + [True] * 9
    results[0][0]["text"] = "mutated"  # every caller has its own copy
    assert sum(v["text"] == "mutated" for v, _ in results) == 1
    assert cache.info()["entries"] == 1


def test_different_keys_are_not_merged(cache: ResponseCache) -> None:
    compute = Slow()

    async def go() -> None:
        await asyncio.gather(*(cache.get_or_compute(f"k{i}", compute, CacheMode.DEFAULT)
                               for i in range(5)))

    run(go())
    assert compute.calls == 5


def test_failures_propagate_to_every_waiter_and_are_not_cached(cache: ResponseCache) -> None:
    failing = Slow(fail=RuntimeError("model down"))

    async def go() -> list[Any]:
        return await asyncio.gather(*(cache.get_or_compute("k", failing, CacheMode.DEFAULT)
                                      for _ in range(10)), return_exceptions=True)

    results = run(go())
    assert failing.calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "model down" for r in results)
    assert run(cache.get("k")) is None
    good = Slow()
    assert run(cache.get_or_compute("k", good, CacheMode.DEFAULT)) == ({"text": "computed"}, False)
    assert good.calls == 1


def test_cancelled_owner_hands_over_to_a_waiter(cache: ResponseCache) -> None:
    compute = Slow(delay=0.2)

    async def go() -> tuple[dict[str, Any], bool]:
        owner = asyncio.create_task(cache.get_or_compute("k", compute, CacheMode.DEFAULT))
        while compute.calls == 0:  # wait until the owner is computing
            await asyncio.sleep(0.005)
        waiter = asyncio.create_task(cache.get_or_compute("k", compute, CacheMode.DEFAULT))
        await asyncio.sleep(0.01)
        owner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await owner
        return await waiter

    assert run(go()) == ({"text": "computed"}, False)
    assert compute.calls == 2


def test_uncacheable_results_are_returned_not_stored(cache: ResponseCache) -> None:
    cut = Slow({"text": "half a rep", "cacheable": False})

    async def go() -> None:
        value, hit = await cache.get_or_compute("k", cut, CacheMode.DEFAULT)
        assert value == {"text": "half a rep", "cacheable": False} and hit is False
        assert await cache.get("k") is None
        await cache.get_or_compute("k", cut, CacheMode.DEFAULT)

    run(go())
    assert cut.calls == 2
    assert not (cache.directory / "cache.db").exists() or cache.info()["entries"] == 0


def test_refresh_recomputes_and_overwrites(cache: ResponseCache) -> None:
    compute = Slow({"text": "new"})

    async def go() -> None:
        await cache.set("k", {"text": "old"})
        assert await cache.get_or_compute("k", compute, CacheMode.REFRESH) == ({"text": "new"}, False)
        assert await cache.get_or_compute("k", compute, CacheMode.REFRESH) == ({"text": "new"}, False)
        assert await cache.get("k") == {"text": "new"}
        assert await cache.get_or_compute("k", compute, CacheMode.DEFAULT) == ({"text": "new"}, True)

    run(go())
    assert compute.calls == 2


def test_off_never_touches_disk(tmp_path: Path) -> None:
    c = ResponseCache(tmp_path / "off")
    compute = Slow()

    async def go() -> list[tuple[dict[str, Any], bool]]:
        first = await c.get_or_compute("k", compute, CacheMode.OFF)
        rest = await asyncio.gather(*(c.get_or_compute("k", compute, "off") for _ in range(3)))
        return [first, *rest]

    results = run(go())
    c.close()
    assert compute.calls == 4
    assert all(r == ({"text": "computed"}, False) for r in results)
    assert not (tmp_path / "off").exists()


def test_usable_from_several_event_loops_and_after_close(cache: ResponseCache) -> None:
    assert run(cache.get_or_compute("k", Slow(), CacheMode.DEFAULT))[1] is False
    assert run(cache.get_or_compute("k", Slow(), CacheMode.DEFAULT))[1] is True
    cache.close()
    assert run(cache.get("k")) == {"text": "computed"}  # reopened lazily

    results: list[Any] = []

    def in_thread() -> None:
        results.append(asyncio.run(cache.get_or_compute("k", Slow(), CacheMode.DEFAULT)))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert results == [({"text": "computed"}, True)]


def test_entries_survive_reopening(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c") as first:
        run(first.set("k", {"a": [1, 2, {"b": None}]}))
    with ResponseCache(tmp_path / "c") as second:
        assert run(second.get("k")) == {"a": [1, 2, {"b": None}]}
