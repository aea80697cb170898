"""The run trace: scrubbing, recording, atomic files, loading, rendering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from promptflow_dsl.models.base import GenParams, Message, Usage
from promptflow_dsl.runtime.trace import (
    MASK,
    MAX_STRING,
    RUN_ID_RE,
    TRACE_SCHEMA,
    Step,
    Trace,
    TraceError,
    TraceNotFound,
    TraceRecorder,
    compute_totals,
    default_trace_dir,
    env_secrets,
    list_traces,
    load_trace,
    new_run_id,
    render_trace_tree,
    scrub,
    write_trace,
)

FAKE_KEY = "sk-test-0123456789abcdefABCDEF"


# --------------------------------------------------------------------------- scrub


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    label: str


class Rec(BaseModel):
    name: str
    api_key: str


def test_scrub_masks_secret_keys_at_any_depth() -> None:
    data = {"api_key": "abc", "headers": {"X": "y"}, "nested": [{"Authorization": "Bearer x"}],
            "apiKey": "k", "access_token": "t", "hfToken": "t", "password": "p",
            "client_secret": "s", "aws_secret_access_key": "a", "none_token": None}
    out = scrub(data, ())
    for key in ("api_key", "headers", "apiKey", "access_token", "hfToken", "password",
                "client_secret", "aws_secret_access_key"):
        assert out[key] == MASK, key
    assert out["nested"][0]["Authorization"] == MASK
    assert out["none_token"] is None  # nothing to hide


def test_scrub_keeps_token_counts() -> None:
    data = {"max_tokens": 50, "prompt_tokens": 3, "completion_tokens": 4, "tokens": [1, 2]}
    assert scrub(data, ()) == data


def test_scrub_masks_env_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("SOME_FLAG_TOKEN", "1")  # too short to be a secret: left alone
    assert FAKE_KEY in env_secrets()
    assert "1" not in env_secrets()
    out = scrub({"a": FAKE_KEY, "b": f"curl -H 'Bearer {FAKE_KEY}' x", "c": ["1", FAKE_KEY],
                 FAKE_KEY: "as a key"})
    text = json.dumps(out)
    assert FAKE_KEY not in text
    assert out["a"] == MASK
    assert out["b"] == "curl -H 'Bearer ***' x"
    assert out["c"] == ["1", MASK]
    assert out[MASK] == "as a key"


def test_scrub_converts_to_plain_json() -> None:
    value = {"model": Rec(name="n", api_key="secret-value"), "point": Point(1, "p"),
             "color": Color.RED, "path": Path("a/b"), "when": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
             "set": {3, 1, 2}, "tuple": (1, "x"), "bytes": b"abc", "msg": Message("user", "hi"),
             "params": GenParams(temperature=0.5, extra={"api_key": "zzz"}), 7: "int key",
             "obj": object()}
    out = scrub(value, ())
    json.dumps(out)  # plain JSON data
    assert out["model"] == {"name": "n", "api_key": MASK}
    assert out["point"] == {"x": 1, "label": "p"}
    assert out["color"] == "red"
    assert out["path"] == str(Path("a/b"))
    assert out["when"].startswith("2024-01-02T00:00:00")
    assert out["set"] == [1, 2, 3]
    assert out["tuple"] == [1, "x"]
    assert out["bytes"] == "<3 bytes>"
    assert out["msg"] == {"role": "user", "content": "hi"}
    assert out["params"]["extra"] == {"api_key": MASK}
    assert out["params"]["stop"] == []
    assert out["7"] == "int key"
    assert out["obj"].startswith("<object object")


def test_scrub_truncates_long_strings_idempotently() -> None:
    long = "x" * (MAX_STRING + 5000)
    once = scrub(long, ())
    assert len(once) <= MAX_STRING
    assert "truncated" in once and str(MAX_STRING + 5000) in once
    assert scrub(once, ()) == once
    assert scrub("short", ()) == "short"


def test_scrub_survives_cycles() -> None:
    a: list = []
    a.append(a)
    out = scrub(a, ())
    json.dumps(out)


# --------------------------------------------------------------------------- recorder


def record_run(monkeypatch: pytest.MonkeyPatch | None = None) -> Trace:
    rec = TraceRecorder("examples/triage.pflow", "triage", {"review": "bad battery"})
    flow = rec.start("triage", "flow", None, {"review": "bad battery"}, "examples/triage.pflow", 12)
    cls = rec.start("classify", "prompt", flow, {"review": "bad battery"}, "examples/triage.pflow", 3)
    rec.finish(cls, "ok", output={"label": "negative", "reason": "battery"}, model="local/smollm2",
               usage=Usage(40, 12, 0.0001), cost=0.0001, cache_hit=False, attempts=2,
               messages=[{"role": "user", "content": "Review: bad battery"}],
               reply='{"label": "negative", "reason": "battery"}')
    rec.event(cls, "hook", "calc fired at '2+2=' -> 4", hook="calc")
    rep = rec.start("reply_to", "prompt", flow.id, {"review": "bad battery", "label": "negative"})
    rec.finish(rep, "ok", output="We are sorry.", model="local/smollm2",
               usage={"prompt_tokens": 30, "completion_tokens": 5}, cache_hit=True)
    skipped = rec.start("praise", "prompt", flow, {})
    rec.finish(skipped, "not_taken")
    tool = rec.start("words", "tool", flow, {"text": "x"})
    rec.finish(tool, "failed", error=ValueError("boom\nsecond line"))
    rec.finish(flow, "ok", output={"label": "negative", "reply": "We are sorry."})
    return rec.to_trace(output={"label": "negative", "reply": "We are sorry."},
                        models={"default": "local/smollm2"})


def test_recorder_builds_a_trace() -> None:
    trace = record_run()
    assert trace.schema_version == TRACE_SCHEMA
    assert RUN_ID_RE.match(trace.run_id)
    assert [s.id for s in trace.steps] == ["s1", "s2", "s3", "s4", "s5"]
    assert [s.parent for s in trace.steps] == [None, "s1", "s1", "s1", "s1"]
    cls = trace.steps[1]
    assert cls.usage is not None and cls.usage.prompt_tokens == 40
    assert cls.file == "examples/triage.pflow" and cls.line == 3
    assert cls.latency_ms >= 0 and cls.attempts == 2
    assert cls.events == [{"type": "hook", "summary": "calc fired at '2+2=' -> 4", "hook": "calc"}]
    assert trace.steps[4].error == "ValueError: boom\nsecond line"
    # totals: cache hits cost nothing; not-taken steps are not calls
    assert trace.totals.calls == 2 and trace.totals.cache_hits == 1
    assert (trace.totals.prompt_tokens, trace.totals.completion_tokens) == (40, 12)
    assert trace.totals.cost == pytest.approx(0.0001)
    assert trace.wall_ms >= 0 and trace.finished_at >= trace.started_at


def test_unfinished_step_becomes_failed() -> None:
    rec = TraceRecorder("p.pflow", "main")
    rec.start("slow", "prompt")
    trace = rec.to_trace(status="failed", error=KeyboardInterrupt())
    assert trace.steps[0].status == "failed"
    assert "did not finish" in (trace.steps[0].error or "")
    assert trace.error == "KeyboardInterrupt"


def test_finish_rejects_unknown_fields() -> None:
    rec = TraceRecorder()
    step = rec.start("x", "tool")
    with pytest.raises(TypeError, match="nope"):
        rec.finish(step, "ok", nope=1)


def test_recorder_scrubs_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    rec = TraceRecorder("p.pflow", "main", {"q": f"key={FAKE_KEY}"})
    step = rec.start("call", "prompt", None, {"k": FAKE_KEY, "params": {"api_key": "other"}})
    rec.finish(step, "failed", error=f"401 for key {FAKE_KEY}", reply=FAKE_KEY,
               messages=[{"role": "user", "content": FAKE_KEY}], extra={"headers": {"a": "b"}})
    step.events.append({"type": "raw", "summary": FAKE_KEY})  # appended behind the recorder's back
    trace = rec.to_trace(output=FAKE_KEY, status="failed", error=FAKE_KEY)
    path = write_trace(trace, tmp_path)
    text = path.read_text(encoding="utf-8")
    assert FAKE_KEY not in text
    assert "other" not in text
    assert MASK in text
    # even a trace built by hand is scrubbed on the way to disk
    raw = Trace.model_validate_json(text).model_copy(update={"output": FAKE_KEY})
    assert FAKE_KEY not in write_trace(raw, tmp_path).read_text(encoding="utf-8")


def test_recorder_is_thread_safe() -> None:
    import threading

    rec = TraceRecorder()

    def work() -> None:
        for _ in range(200):
            rec.finish(rec.start("h", "tool"), "ok", output=1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [s.id for s in rec.steps]
    assert len(ids) == 1600 == len(set(ids))


# --------------------------------------------------------------------------- files


def test_run_ids_sort_by_time() -> None:
    a = new_run_id(dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC))
    b = new_run_id(dt.datetime(2024, 1, 2, 3, 4, 5, 679000, tzinfo=dt.UTC))
    assert a.startswith("20240102T030405.678Z-")
    assert a < b


def test_write_is_atomic_and_round_trips(tmp_path: Path) -> None:
    trace = record_run()
    path = write_trace(trace, tmp_path / "traces")
    assert path == tmp_path / "traces" / f"{trace.run_id}.json"
    assert os.listdir(tmp_path / "traces") == [path.name]  # no temp file left behind
    text = path.read_text(encoding="utf-8")
    assert json.loads(text)["schema_version"] == TRACE_SCHEMA
    back = Trace.model_validate_json(text)
    assert back == trace


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = record_run()

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_trace(trace, tmp_path)
    assert os.listdir(tmp_path) == []


def make_trace(run_id: str) -> Trace:
    now = dt.datetime.now(dt.UTC)
    return Trace(run_id=run_id, program="p.pflow", entry="main", started_at=now, finished_at=now)


def test_load_by_id_last_prefix_and_path(tmp_path: Path) -> None:
    ids = ["20240101T000000.000Z-aaaaaa", "20240102T000000.000Z-bbbbbb",
           "20240103T000000.000Z-cccccc"]
    for rid in ids:
        write_trace(make_trace(rid), tmp_path)
    (tmp_path / "notes.json").write_text("{}")  # not a run: not listed
    assert [p.stem for p in list_traces(tmp_path)] == ids[::-1]
    assert load_trace("last", tmp_path).run_id == ids[2]
    assert load_trace(ids[0], tmp_path).run_id == ids[0]
    assert load_trace("20240102", tmp_path).run_id == ids[1]  # a unique prefix
    assert load_trace(str(tmp_path / f"{ids[1]}.json"), tmp_path).run_id == ids[1]
    assert load_trace(tmp_path / f"{ids[1]}.json", "/nonexistent").run_id == ids[1]
    with pytest.raises(TraceNotFound, match="ambiguous"):
        load_trace("2024010", tmp_path)


def test_not_found_names_newest_runs(tmp_path: Path) -> None:
    with pytest.raises(TraceNotFound, match="no runs have been traced"):
        load_trace("last", tmp_path / "none")
    for day in range(1, 8):
        write_trace(make_trace(f"2024010{day}T000000.000Z-abcdef"), tmp_path)
    with pytest.raises(TraceNotFound) as err:
        load_trace("nope", tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"no trace 'nope' in {tmp_path}; newest runs: 20240107T000000.000Z-abcdef, ")
    assert "20240103" in msg and "20240102" not in msg  # the newest five


def test_load_rejects_garbage_and_other_schemas(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TraceError, match="invalid JSON"):
        load_trace(bad, tmp_path)
    other = tmp_path / "other.json"
    data = json.loads(make_trace("x").model_dump_json())
    data["schema_version"] = "pflow-trace/99"
    other.write_text(json.dumps(data))
    with pytest.raises(TraceError, match="pflow-trace/99"):
        load_trace(other, tmp_path)


def test_default_trace_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PFLOW_TRACE_DIR", raising=False)
    assert default_trace_dir(tmp_path) == tmp_path / ".pflow-cache" / "traces"
    monkeypatch.setenv("PFLOW_TRACE_DIR", str(tmp_path / "elsewhere"))
    assert default_trace_dir(tmp_path) == tmp_path / "elsewhere"


# --------------------------------------------------------------------------- rendering


def test_render_tree() -> None:
    trace = record_run()
    text = render_trace_tree(trace, color=False)
    lines = text.splitlines()
    assert lines[0].startswith(f"run {trace.run_id}  ✓ ok  ")
    assert lines[1] == "program: examples/triage.pflow  entry: triage"
    assert lines[2] == "totals: 2 model calls (1 cached), 40+12 tokens, $0.0001"
    assert "models: default=local/smollm2" in lines
    steps = [ln for ln in lines if "─ " in ln]
    assert steps[0].startswith("└─ ✓ triage  flow  ")
    assert steps[1].startswith("   ├─ ✓ classify  prompt  local/smollm2  ")
    assert steps[1].endswith("40+12 tok  $0.0001  2 attempts")
    assert steps[2].startswith("   ├─ ✓ reply_to  prompt  local/smollm2  ")
    assert "cached  30+5 tok" in steps[2]
    assert steps[3] == "   ├─ · praise  prompt  not taken"
    assert steps[4].startswith("   └─ ✗ words  tool  ")
    i = lines.index(steps[1])
    assert lines[i + 1] == '   │     in:  review="bad battery"'
    assert lines[i + 2] == '   │     out: {"label": "negative", "reason": "battery"}'
    assert lines[i + 3] == "   │     • hook: calc fired at '2+2=' -> 4"
    j = lines.index(steps[4])
    assert lines[j + 2] == "         error: ValueError: boom"
    assert lines[j + 3] == "           second line"
    assert "\x1b[" not in text


def test_render_color_and_truncation() -> None:
    rec = TraceRecorder("p.pflow", "main")
    step = rec.start("h", "prompt", None, {"text": "y" * 500})
    rec.finish(step, "ok", output="line one\nline two " + "z" * 500)
    text = render_trace_tree(rec.to_trace(output=None), color=True)
    assert "\x1b[32m✓\x1b[0m" in text
    plain = render_trace_tree(rec.to_trace(output=None), color=False)
    out = next(ln for ln in plain.splitlines() if "out: " in ln)
    assert out.strip().startswith('out: "line one\\nline two zzz')
    assert len(out.strip()) <= 5 + 100 and out.endswith("…")
    inputs = next(ln for ln in plain.splitlines() if "in: " in ln)
    assert len(inputs.strip()) <= 5 + 100


def test_render_orphans_and_cycles_are_shown() -> None:
    now = dt.datetime.now(dt.UTC)
    steps = [Step(id="a", parent="b", handler="A", kind="tool", status="ok"),
             Step(id="b", parent="a", handler="B", kind="tool", status="ok"),
             Step(id="c", parent="gone", handler="C", kind="tool", status="skipped")]
    trace = Trace(run_id="r", program="p", entry="e", started_at=now, finished_at=now,
                  steps=steps, status="failed", error="it broke")
    text = render_trace_tree(trace, color=False)
    for name in ("A", "B", "C"):
        assert f" {name}  tool" in text
    assert "– C  tool  skipped" in text
    assert "error: it broke" in text


def test_render_deep_chain_without_recursion() -> None:
    now = dt.datetime.now(dt.UTC)
    steps = [Step(id=f"s{i}", parent=f"s{i - 1}" if i else None, handler=f"h{i}", kind="flow",
                  status="ok") for i in range(3000)]
    trace = Trace(run_id="r", program="p", entry="e", started_at=now, finished_at=now, steps=steps)
    assert "h2999" in render_trace_tree(trace, color=False)


def test_compute_totals_cost_none_when_unknown() -> None:
    steps = [Step(id="a", handler="A", kind="prompt", model="m", status="ok")]
    assert compute_totals(steps).cost is None
    assert compute_totals(steps).calls == 1
