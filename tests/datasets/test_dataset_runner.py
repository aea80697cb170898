"""The runner: concurrency, keep-going, max_errors, interruption, resume, and exactly
once across crashes (kill -9) and Ctrl-C in real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from promptflow_dsl.datasets import (
    DatasetError,
    DatasetSpec,
    PlainProgress,
    ResultsWriter,
    ResumeError,
    RowOutcome,
    RunFolderError,
    Selection,
    ThresholdError,
    list_runs,
    read_results,
    resume_command,
    run_dataset,
    run_dataset_to_file,
    run_rows,
)

CHILD = Path(__file__).with_name("engine_child.py")


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def dataset(path: Path, n: int, *, bad: tuple[int, ...] = ()) -> Path:
    with open(path, "w") as f:
        for i in range(1, n + 1):
            f.write("{broken\n" if i in bad else json.dumps({"x": i, "text": f"t{i}"}) + "\n")
    return path


class Recorder:
    """A row function that remembers its calls; rows listed in ``fail`` raise."""

    def __init__(self, *, delay: float = 0.0, fail: set[int] | None = None) -> None:
        self.delay = delay
        self.fail = fail or set()
        self.calls: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, line: int, row: dict[str, Any]) -> RowOutcome:
        self.calls.append(line)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if line in self.fail:
                raise ValueError(f"row {line} is broken")
            return RowOutcome(fields={"out": row["x"] * 2},
                              metrics={"even": row["x"] % 2 == 0, "x": row["x"]},
                              tokens=10, cost=0.001)
        finally:
            self.in_flight -= 1


def items(n: int) -> list[tuple[int, dict[str, Any]]]:
    return [(i, {"x": i}) for i in range(1, n + 1)]


# ------------------------------------------------------------------ run_rows

def test_every_row_once_with_bounded_concurrency(tmp_path: Path) -> None:
    fn = Recorder(delay=0.002)
    with ResultsWriter(tmp_path / "r.jsonl") as w:
        result = asyncio.run(run_rows(items(100), fn, writer=w, concurrency=7))
    assert (result.status, result.ok, result.failed, result.new_rows) == ("complete", 100, 0, 100)
    assert result.tokens == 1000 and result.cost == pytest.approx(0.1)
    assert sorted(fn.calls) == list(range(1, 101)) and fn.max_in_flight == 7
    lines = lines_of(tmp_path / "r.jsonl")
    assert sorted(d["row"] for d in lines) == list(range(1, 101))
    first = lines[0]
    assert list(first)[:2] == ["row", "status"]
    assert first["out"] == first["row"] * 2 and first["metrics"]["x"] == first["row"]
    assert first["tokens"] == 10 and first["cost"] == 0.001 and first["latency"] >= 0


def test_lines_are_written_as_rows_finish(tmp_path: Path) -> None:
    delays = {1: 0.3, 2: 0.0, 3: 0.1}
    seen_at_finish: dict[int, int] = {}
    path = tmp_path / "r.jsonl"

    async def fn(line: int, row: dict[str, Any]) -> RowOutcome:
        await asyncio.sleep(delays[line])
        seen_at_finish[line] = len(path.read_text().splitlines())
        return RowOutcome()

    with ResultsWriter(path) as w:
        asyncio.run(run_rows(items(3), fn, writer=w, concurrency=3))
    assert [d["row"] for d in lines_of(path)] == [2, 3, 1]
    assert seen_at_finish == {2: 0, 3: 1, 1: 2}  # each earlier row was on disk already


def test_failures_are_recorded_and_the_rest_go_on(tmp_path: Path) -> None:
    fn = Recorder(fail={3, 5})

    async def wrapped(line: int, row: Any) -> Any:
        if line == 7:
            return {"not": "an outcome"}
        if line == 8:
            return RowOutcome(metrics={"m": float("nan")})
        if line == 9:
            return RowOutcome(metrics={"m": "high"})  # type: ignore[dict-item]
        if line == 10:
            return RowOutcome(fields={"obj": object()})
        if line == 11:
            raise KeyError("text")
        if line == 12:
            return RowOutcome(status="failed", error="a.pflow:3:5: located", error_type="RunFailed")
        return await fn(line, row)

    rows: list[Any] = items(12)
    rows[5] = (6, DatasetError("not valid JSON", path="d.jsonl", line=6))
    with ResultsWriter(tmp_path / "r.jsonl") as w:
        result = asyncio.run(run_rows(rows, wrapped, writer=w))
    assert (result.ok, result.failed) == (3, 9)
    assert 6 not in fn.calls
    by_row = {d["row"]: d for d in lines_of(tmp_path / "r.jsonl")}
    assert by_row[3]["status"] == "failed" and by_row[3]["error"] == "row 3 is broken"
    assert by_row[3]["error_type"] == "ValueError" and "metrics" not in by_row[3]
    assert by_row[6]["error"] == "d.jsonl:6: not valid JSON"
    assert by_row[6]["error_type"] == "DatasetError"
    assert by_row[7]["error"] == "the row function returned dict, not a RowOutcome"
    assert by_row[8]["error"] == "metric 'm' is nan, not a finite number"
    assert by_row[9]["error"] == "metric 'm' is a str, not a bool, number or none"
    assert by_row[10]["error"].startswith("the row's result cannot be recorded as JSON")
    assert by_row[11]["error"] == "key 'text' not found"
    assert by_row[12]["error"] == "a.pflow:3:5: located"
    assert by_row[12]["error_type"] == "RunFailed"
    assert by_row[1]["status"] == "ok"


def test_max_errors_stops_launching(tmp_path: Path) -> None:
    fn = Recorder(delay=0.01, fail=set(range(1, 1000, 2)))
    with ResultsWriter(tmp_path / "r.jsonl") as w:
        result = asyncio.run(run_rows(items(200), fn, writer=w, concurrency=4, max_errors=5))
    assert result.status == "stopped" and 5 <= result.failed <= 8
    assert len(fn.calls) < 20 and result.recorded == len(fn.calls)  # in-flight rows finished
    assert len(lines_of(tmp_path / "r.jsonl")) == len(fn.calls)


def test_arguments_are_checked(tmp_path: Path) -> None:
    with ResultsWriter(tmp_path / "r.jsonl") as w:
        for kwargs in ({"concurrency": 0}, {"max_errors": 0}):
            with pytest.raises(ValueError):
                asyncio.run(run_rows([], Recorder(), writer=w, **kwargs))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metrics"):
        RowOutcome(fields={"metrics": 1})
    with pytest.raises(ValueError, match="status"):
        RowOutcome(status="maybe")
    assert RowOutcome.failure("x").status == "failed"


def test_stop_lets_rows_in_flight_finish(tmp_path: Path) -> None:
    fn = Recorder(delay=0.2)

    async def main() -> Any:
        stop = asyncio.Event()
        with ResultsWriter(tmp_path / "r.jsonl") as w:
            asyncio.get_running_loop().call_later(0.3, stop.set)
            return await run_rows(items(100), fn, writer=w, concurrency=4, stop=stop, grace=5)

    result = asyncio.run(main())
    assert result.status == "interrupted" and result.cancelled == 0
    assert result.recorded == len(fn.calls)  # the rows in flight finished and were recorded
    assert len(fn.calls) % 4 == 0 and 4 <= len(fn.calls) <= 12  # whole waves of four
    assert sorted(d["row"] for d in lines_of(tmp_path / "r.jsonl")) == sorted(fn.calls)


def test_grace_period_then_cancel(tmp_path: Path) -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def fn(line: int, row: Any) -> RowOutcome:
        started.append(line)
        try:
            await asyncio.sleep(0.05 if line <= 2 else 30)
        except asyncio.CancelledError:
            cancelled.append(line)
            raise
        return RowOutcome()

    async def main() -> Any:
        stop = asyncio.Event()
        with ResultsWriter(tmp_path / "r.jsonl") as w:
            asyncio.get_running_loop().call_later(0.01, stop.set)
            return await run_rows(items(10), fn, writer=w, concurrency=4, stop=stop, grace=0.3)

    t0 = time.perf_counter()
    result = asyncio.run(main())
    assert time.perf_counter() - t0 < 5
    assert result.status == "interrupted" and result.cancelled == 2 and result.ok == 2
    assert sorted(cancelled) == [3, 4] and sorted(started) == [1, 2, 3, 4]
    assert sorted(d["row"] for d in lines_of(tmp_path / "r.jsonl")) == [1, 2]


def test_cancelling_the_task_is_an_interruption(tmp_path: Path) -> None:
    fn = Recorder(delay=0.1)

    async def main() -> Any:
        with ResultsWriter(tmp_path / "r.jsonl") as w:
            task = asyncio.create_task(run_rows(items(50), fn, writer=w, concurrency=3))
            await asyncio.sleep(0.15)
            task.cancel()
            result = await task  # absorbed: returns instead of raising
            assert not task.cancelled() and task.cancelling() == 0
            return result

    result = asyncio.run(main())
    assert result.status == "interrupted" and result.recorded == len(fn.calls)
    assert len(fn.calls) % 3 == 0 and 3 <= len(fn.calls) < 50


def test_a_second_cancellation_cuts_the_grace_short(tmp_path: Path) -> None:
    async def fn(line: int, row: Any) -> RowOutcome:
        await asyncio.sleep(30)
        return RowOutcome()

    async def main() -> Any:
        with ResultsWriter(tmp_path / "r.jsonl") as w:
            task = asyncio.create_task(run_rows(items(5), fn, writer=w, concurrency=2, grace=60))
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.sleep(0.05)
            task.cancel()
            return await task

    t0 = time.perf_counter()
    result = asyncio.run(main())
    assert time.perf_counter() - t0 < 5
    assert result.status == "interrupted" and result.cancelled == 2 and result.recorded == 0


def test_rows_that_never_suspend_still_let_the_loop_run(tmp_path: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def fn(line: int, row: Any) -> RowOutcome:
        return RowOutcome()

    async def main() -> None:
        t = asyncio.create_task(ticker())
        with ResultsWriter(tmp_path / "r.jsonl") as w:
            await run_rows(items(2000), fn, writer=w, concurrency=1)
        t.cancel()

    asyncio.run(main())
    assert ticks >= 2000 // 16


def test_a_writer_error_stops_the_run_and_propagates(tmp_path: Path) -> None:
    fn = Recorder(delay=0.01)
    rows = items(5) + [(3, {"x": 3})] + items(40)[5:]  # row 3 twice: a caller's bug
    from promptflow_dsl.datasets import DuplicateRowError

    with ResultsWriter(tmp_path / "r.jsonl") as w, pytest.raises(DuplicateRowError):
        asyncio.run(run_rows(rows, fn, writer=w, concurrency=2))
    assert len(fn.calls) < 40
    rows_written = [d["row"] for d in lines_of(tmp_path / "r.jsonl")]
    assert len(rows_written) == len(set(rows_written))


def test_progress_is_reported(tmp_path: Path) -> None:
    import io

    out = io.StringIO()
    with ResultsWriter(tmp_path / "r.jsonl") as w:
        asyncio.run(run_rows(items(30), Recorder(fail={4}), writer=w,
                             progress=PlainProgress(out, interval=1e9), total=40, done=10,
                             failed=1))
    assert out.getvalue().startswith("pflow: 40/40 rows, 2 failed, ")
    assert ", done in " in out.getvalue() and "290 tokens, $0.03" in out.getvalue()


# ------------------------------------------------------------- resume command

def test_resume_command() -> None:
    assert resume_command(["eval", "a b.pflow", "--limit", "5"], "R1") == \
        "pflow eval 'a b.pflow' --limit 5 --resume R1"
    assert resume_command(["eval", "x.pflow", "--resume", "last", "-c", "4"], "R2") == \
        "pflow eval x.pflow -c 4 --resume R2"
    assert resume_command(["eval", "x.pflow", "--resume=R0"], "R3", prog="python -m pf") == \
        "'python -m pf' eval x.pflow --resume R3"
    assert resume_command(["run", "x.pflow", "--data", "d.csv", "--out", "o.jsonl",
                           "--resume"], None) == \
        "pflow run x.pflow --data d.csv --out o.jsonl --resume"


# ------------------------------------------------------------------ run_dataset

def spec_for(data: Path, **kw: Any) -> DatasetSpec:
    base: dict[str, Any] = {"program_digest": "sha256:p1", "metrics": ["even", "x"],
                            "args": ["eval", "x.pflow"], "models": {"default": "echo"},
                            "options": {"concurrency": 4}}
    return DatasetSpec(data, **{**base, **kw})


def test_a_new_run_writes_meta_results_and_summary(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 20, bad=(7,))
    fn = Recorder(fail={3})
    run = asyncio.run(run_dataset(spec_for(data, thresholds=["even >= 0.4", "x > 100"]), fn,
                                  root=tmp_path / "evals", concurrency=4))
    assert run.folder is not None and run.folder.path.parent == tmp_path / "evals"
    meta = run.folder.read_meta()
    assert meta["program_digest"] == "sha256:p1" and meta["models"] == {"default": "echo"}
    assert meta["dataset"]["path"] == str(data)
    assert meta["dataset"]["digest"].startswith("sha256:")
    assert meta["command"] == "pflow eval x.pflow" and meta["options"] == {"concurrency": 4}
    assert meta["started_at"].endswith("Z") and meta["sessions"] == []
    s = run.folder.read_summary()
    assert s == run.summary
    assert s["status"] == "complete"
    assert s["rows"] == {"total": 20, "ok": 18, "failed": 2, "pending": 0}
    assert list(s["metrics"]) == ["even", "x"]
    assert s["metrics"]["even"]["kind"] == "rate" and s["metrics"]["even"]["scored"] == 18
    assert s["metrics"]["x"]["kind"] == "mean"
    assert s["tokens"] == 180 and s["cost"] == pytest.approx(0.018)
    assert [t["passed"] for t in s["thresholds"]] == [True, False] and s["passed"] is False
    assert not run.passed and run.resume_command is None
    assert run.result.status == "complete"


def test_resume_runs_only_rows_without_a_line(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 30)
    root = tmp_path / "evals"
    first = Recorder(fail={4})
    run = asyncio.run(run_dataset(spec_for(data, selection=Selection(limit=10)), first, root=root))
    assert sorted(first.calls) == list(range(1, 11))
    # lose rows 9 and 10 as if the process had died with them in flight
    results = run.folder.results_path  # type: ignore[union-attr]
    kept = [d for d in lines_of(results) if d["row"] < 9]
    results.write_text("".join(json.dumps(d) + "\n" for d in kept) + '{"row":9,"sta')
    second = Recorder()
    again = asyncio.run(run_dataset(spec_for(data, selection=Selection(limit=10)), second,
                                    root=root, resume="last"))
    assert sorted(second.calls) == [9, 10]
    assert again.resumed and again.summary["rows"] == {"total": 10, "ok": 9, "failed": 1,
                                                       "pending": 0}
    rows = [d["row"] for d in lines_of(results)]
    assert sorted(rows) == list(range(1, 11))
    meta = again.folder.read_meta()  # type: ignore[union-attr]
    assert len(meta["sessions"]) == 1 and meta["sessions"][0]["retry_failed"] is False
    # with --retry-failed the failed row runs again and its new line wins
    third = Recorder()
    last = asyncio.run(run_dataset(spec_for(data, selection=Selection(limit=10)), third,
                                   root=root, resume=again.run_id, retry_failed=True))
    assert third.calls == [4]
    assert last.summary["rows"] == {"total": 10, "ok": 10, "failed": 0, "pending": 0}
    assert [d["status"] for d in lines_of(results) if d["row"] == 4] == ["failed", "ok"]
    assert [d["status"] for d in read_results(results) if d["row"] == 4] == ["ok"]
    # a finished run resumes to nothing
    fourth = Recorder()
    asyncio.run(run_dataset(spec_for(data, selection=Selection(limit=10)), fourth, root=root,
                            resume="last", retry_failed=True))
    assert fourth.calls == []


def test_resume_with_a_sample_covers_the_same_rows(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 200)
    root = tmp_path / "evals"
    sel = Selection(sample=25, seed=11)
    fn = Recorder(delay=0.005)

    async def interrupted() -> Any:
        task = asyncio.create_task(run_dataset(spec_for(data, selection=sel), fn, root=root,
                                               concurrency=2))
        while len(fn.calls) < 4:
            await asyncio.sleep(0.001)
        task.cancel()
        return await task

    run = asyncio.run(interrupted())
    assert run.result.status == "interrupted" and 0 < len(fn.calls) < 25
    assert run.folder.read_summary()["status"] == "interrupted"  # type: ignore[union-attr,index]
    assert run.summary["rows"]["pending"] == 25 - run.result.recorded
    assert run.resume_command == f"pflow eval x.pflow --resume {run.run_id}"
    more = Recorder()
    asyncio.run(run_dataset(spec_for(data, selection=sel), more, root=root, resume="last"))
    assert not set(fn.calls) & set(more.calls)
    from promptflow_dsl.datasets import sample_lines

    assert sorted(fn.calls + more.calls) == sample_lines(data, 25, 11)


def test_resume_refuses_changes_unless_forced(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 5)
    root = tmp_path / "evals"
    asyncio.run(run_dataset(spec_for(data), Recorder(fail={2}), root=root))
    with pytest.raises(ResumeError, match="the program changed"):
        asyncio.run(run_dataset(spec_for(data, program_digest="sha256:p2"), Recorder(),
                                root=root, resume="last"))
    with open(data, "a") as f:
        f.write(json.dumps({"x": 6, "text": "t6"}) + "\n")
    with pytest.raises(ResumeError) as info:
        asyncio.run(run_dataset(spec_for(data), Recorder(), root=root, resume="last"))
    assert info.value.changes[0].startswith(f"the dataset {data} changed")
    fn = Recorder()
    run = asyncio.run(run_dataset(spec_for(data), fn, root=root, resume="last", force=True))
    assert fn.calls == [6] and len(run.changes) == 1
    meta = run.folder.read_meta()  # type: ignore[union-attr]
    assert meta["sessions"][0]["forced_changes"] == run.changes
    # the run now records the new digest: a later plain resume is accepted
    asyncio.run(run_dataset(spec_for(data), Recorder(), root=root, resume="last"))


def test_one_process_per_run(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 5)
    root = tmp_path / "evals"
    run = asyncio.run(run_dataset(spec_for(data), Recorder(fail={1}), root=root))
    with ResultsWriter(run.folder.results_path):  # type: ignore[union-attr]
        with pytest.raises(RunFolderError, match="another process"):
            asyncio.run(run_dataset(spec_for(data), Recorder(), root=root, resume="last",
                                    retry_failed=True))


def test_errors_before_running_leave_no_run_folder(tmp_path: Path) -> None:
    root = tmp_path / "evals"
    bad_csv = tmp_path / "d.csv"
    bad_csv.write_text("id,id\n1,2\n")
    for spec, exc in [(spec_for(tmp_path / "missing.jsonl"), DatasetError),
                      (spec_for(bad_csv), DatasetError),
                      (spec_for(dataset(tmp_path / "d.jsonl", 2), thresholds=["x ~ 1"]),
                       ThresholdError)]:
        with pytest.raises(exc):
            asyncio.run(run_dataset(spec, Recorder(), root=root))
    assert list_runs(root) == []
    with pytest.raises(RunFolderError, match="no runs"):
        asyncio.run(run_dataset(spec_for(tmp_path / "d.jsonl"), Recorder(), root=root,
                                resume="last"))


def test_column_mapping_and_csv(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text('body,gold\n"multi\nline",a\nplain,b\n')
    seen: dict[int, dict[str, Any]] = {}

    async def fn(line: int, row: dict[str, Any]) -> RowOutcome:
        seen[line] = row
        return RowOutcome(fields={"inputs": row})

    run = asyncio.run(run_dataset(spec_for(data, mapping={"text": "body"}, metrics=[]), fn,
                                  root=tmp_path / "evals"))
    assert seen == {2: {"gold": "a", "text": "multi\nline"}, 4: {"gold": "b", "text": "plain"}}
    assert run.summary["rows"] == {"total": 2, "ok": 2, "failed": 0, "pending": 0}
    fn2 = Recorder()
    run2 = asyncio.run(run_dataset(spec_for(data, mapping={"text": "bdy"}), fn2,
                                   root=tmp_path / "evals"))
    assert fn2.calls == [] and run2.summary["rows"]["failed"] == 2
    errors = [d["error"] for d in run2.folder.results()]  # type: ignore[union-attr]
    assert errors[0] == (f"{data}:2: no column 'bdy' (for --map text=bdy); did you mean "
                         "'body'? (columns: body, gold)")


def test_plain_results_file(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 12)
    out = tmp_path / "out.jsonl"
    fn = Recorder(fail={5})
    run = asyncio.run(run_dataset_to_file(spec_for(data, args=["run", "x.pflow", "--data",
                                                               str(data), "--out", str(out)]),
                                          fn, out=out))
    assert run.folder is None and run.results_path == out
    assert run.summary["rows"] == {"total": 12, "ok": 11, "failed": 1, "pending": 0}
    assert run.summary["run_id"] is None
    with pytest.raises(RunFolderError, match="exists"):
        asyncio.run(run_dataset_to_file(spec_for(data), Recorder(), out=out))
    again = Recorder()
    asyncio.run(run_dataset_to_file(spec_for(data), again, out=out, resume=True,
                                    retry_failed=True))
    assert again.calls == [5]
    forced = Recorder()
    asyncio.run(run_dataset_to_file(spec_for(data), forced, out=out, force=True))
    assert sorted(forced.calls) == list(range(1, 13))
    assert sorted(d["row"] for d in lines_of(out)) == list(range(1, 13))


def test_plain_file_resume_command_when_interrupted(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 50)
    out = tmp_path / "out.jsonl"

    async def main() -> Any:
        task = asyncio.create_task(run_dataset_to_file(
            spec_for(data, args=["run", "x.pflow", "--data", "d.jsonl", "--out", "out.jsonl"]),
            Recorder(delay=0.05), out=out, concurrency=2))
        await asyncio.sleep(0.12)
        task.cancel()
        return await task

    run = asyncio.run(main())
    assert run.result.interrupted
    assert run.resume_command == "pflow run x.pflow --data d.jsonl --out out.jsonl --resume"


def test_an_error_while_running_still_writes_the_summary(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 10)

    async def fn(line: int, row: Any) -> RowOutcome:
        if line == 3:
            raise SystemExit("bye")  # not an Exception: not a row failure
        return RowOutcome()

    with pytest.raises(SystemExit):
        asyncio.run(run_dataset(spec_for(data), fn, root=tmp_path / "evals", concurrency=1))
    (info,) = list_runs(tmp_path / "evals")
    assert info.summary is not None and info.summary["status"] == "error"
    assert info.summary["error"] == "bye" and info.summary["rows"]["ok"] == 2


def test_memory_does_not_grow_with_rows(tmp_path: Path) -> None:
    """Nothing per finished row stays in memory: the engine's own allocations during a
    run of 20,000 rows are about those of 2,000."""
    import tracemalloc

    async def fn(line: int, row: Any) -> RowOutcome:
        return RowOutcome(fields={"out": "x" * 200}, metrics={"m": True})

    peaks = []
    for n in (2_000, 20_000):
        with ResultsWriter(tmp_path / f"r{n}.jsonl") as w:
            tracemalloc.start()
            asyncio.run(run_rows(((i, {"x": i}) for i in range(1, n + 1)), fn, writer=w,
                                 concurrency=16))
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.2 + 100_000, peaks


# -------------------------------------------------- real processes: kill -9, Ctrl-C

def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_lines(root: Path, n: int, proc: subprocess.Popen[str], timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(root.glob("*/results.jsonl"))
        if found and found[0].read_bytes().count(b"\n") >= n:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("no progress")


def _calls(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("kill_after", [3, 25, 55])
def test_kill_9_loses_only_rows_in_flight_and_resume_records_each_row_once(
        tmp_path: Path, kill_after: int) -> None:
    data = dataset(tmp_path / "d.jsonl", 80)
    root = tmp_path / "evals"
    calls1, calls2 = tmp_path / "calls1", tmp_path / "calls2"
    proc = _start([str(data), str(root), str(calls1), "--delay", "0.03", "--concurrency", "4"])
    results = _wait_for_lines(root, kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    recorded_before = {json.loads(x)["row"] for x in results.read_text().splitlines()
                       if x.endswith("}")}
    assert len(recorded_before) >= kill_after
    assert recorded_before <= set(_calls(calls1))

    resumed = subprocess.run([sys.executable, str(CHILD), str(data), str(root), str(calls2),
                              "--resume", "last", "--delay", "0.001"],
                             capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "complete"
    second = _calls(calls2)
    assert not set(second) & recorded_before  # recorded rows did not run again
    assert sorted(second) == sorted(set(range(1, 81)) - recorded_before)
    rows = Counter(json.loads(x)["row"] for x in results.read_text().splitlines())
    assert set(rows) == set(range(1, 81)) and set(rows.values()) == {1}  # exactly once
    summary = json.loads((results.parent / "summary.json").read_text())
    assert summary["rows"] == {"total": 80, "ok": 80, "failed": 0, "pending": 0}


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("handler", [True, False], ids=["own-handler", "asyncio-run"])
def test_ctrl_c_finishes_rows_in_flight_writes_summary_and_prints_resume(
        tmp_path: Path, handler: bool) -> None:
    data = dataset(tmp_path / "d.jsonl", 60)
    root = tmp_path / "evals"
    calls = tmp_path / "calls"
    args = [str(data), str(root), str(calls), "--delay", "0.3", "--concurrency", "4"]
    proc = _start(args + (["--sigint"] if handler else []))
    results = _wait_for_lines(root, 4, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    run_id = results.parent.name
    assert report["status"] == "interrupted" and report["cancelled"] == 0
    assert report["resume_command"] == f"pflow eval x.pflow --resume {run_id}"
    rows = [json.loads(x)["row"] for x in results.read_text().splitlines()]
    assert sorted(rows) == sorted(_calls(calls))  # every started row was recorded
    assert len(rows) < 60
    summary = json.loads((results.parent / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["rows"]["pending"] == 60 - len(rows)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_second_ctrl_c_cancels_rows_in_flight(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 20)
    root = tmp_path / "evals"
    calls = tmp_path / "calls"
    proc = _start([str(data), str(root), str(calls), "--delay", "30", "--concurrency", "3",
                   "--grace", "60", "--sigint"])
    deadline = time.monotonic() + 30
    while len(_calls(calls)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["status"] == "interrupted" and report["cancelled"] == 3
    assert report["recorded"] == 0
    (results,) = root.glob("*/results.jsonl")
    assert results.read_bytes() == b""
    summary = json.loads((results.parent / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["rows"]["pending"] == 20


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_the_sigint_handler_is_removed_after_the_session(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl", 3)
    before = signal.getsignal(signal.SIGINT)

    async def main() -> Any:
        return await run_dataset(spec_for(data), Recorder(), root=tmp_path / "evals",
                                 handle_sigint=True)

    assert asyncio.run(main()).result.status == "complete"
    assert signal.getsignal(signal.SIGINT) is before
