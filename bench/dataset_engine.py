"""Benchmark of the dataset engine (promptflow_dsl.datasets).

Each measurement runs in a fresh Python process over generated JSONL datasets (rows
like ``{"id": 17, "text": "<200 characters>", "gold": "positive"}``):

  overhead   engine time per row with a no-op async row function (100,000 rows,
             16 in flight, plain progress to /dev/null, metrics recorded), split into
             the row loop and the rest (digest, selection pass, summary)
  rss        peak RSS of a whole run at 10,000 and at 100,000 rows, and their ratio
  resume     a finished 100,000-row run whose last 100 result lines were lost: time
             from calling run_dataset to the first new row (and to the end), in a new
             process; also resuming a complete run (nothing to do)
  validate   validate_rows over 100,000 rows with a small validator

    python bench/dataset_engine.py [--rows 100000] [--small 10000] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START = time.perf_counter()  # before the engine is imported

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from promptflow_dsl.datasets import RowOutcome  # noqa: E402

LABELS = ("positive", "negative", "mixed")


def make_dataset(path: Path, rows: int) -> None:
    text = ("The battery died after two days and support never answered my emails; "
            "the screen is lovely though, and the keyboard feels solid. ") * 2
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"id": i, "text": text[: 150 + i % 50],
                                "gold": LABELS[i % 3]}) + "\n")


def _spec(dataset: Path) -> Any:
    from promptflow_dsl.datasets import DatasetSpec

    return DatasetSpec(dataset, program_digest="sha256:bench", metrics=["label_ok"],
                       thresholds=["label_ok >= 0.3"], args=["eval", "bench.pflow"])


async def _noop(line: int, row: dict[str, Any]) -> Any:
    return RowOutcome(fields={"out": row["gold"]},
                      metrics={"label_ok": line % 3 != 0}, tokens=42, cost=0.00001)


def child_run(dataset: Path, root: Path) -> dict[str, Any]:
    """One whole run in this process; timings and peak RSS."""
    import promptflow_dsl.datasets as ds
    from promptflow_dsl.datasets import runner

    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loop_time = 0.0
    original = runner.run_rows

    async def timed(*a: Any, **k: Any) -> Any:
        nonlocal loop_time
        t = time.perf_counter()
        try:
            return await original(*a, **k)
        finally:
            loop_time = time.perf_counter() - t

    runner.run_rows = timed  # type: ignore[assignment]
    with open(os.devnull, "w") as devnull:
        t0 = time.perf_counter()
        run = asyncio.run(ds.run_dataset(_spec(dataset), _noop, root=root, concurrency=16,
                                         progress=ds.PlainProgress(devnull, interval=1.0)))
        total = time.perf_counter() - t0
    rows = run.summary["rows"]["ok"] + run.summary["rows"]["failed"]
    return {"rows": rows, "total_s": total, "loop_s": loop_time,
            "per_row_us": total / rows * 1e6, "loop_per_row_us": loop_time / rows * 1e6,
            "import_rss_kb": import_rss,
            "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "run_id": run.run_id}


def child_resume(dataset: Path, root: Path, run_id: str) -> dict[str, Any]:
    import promptflow_dsl.datasets as ds

    first: list[float] = []

    async def row(line: int, r: dict[str, Any]) -> Any:
        if not first:
            first.append(time.perf_counter())
        return await _noop(line, r)

    t0 = time.perf_counter()
    run = asyncio.run(ds.run_dataset(_spec(dataset), row, root=root, resume=run_id,
                                     concurrency=16))
    end = time.perf_counter()
    return {"first_new_row_s": (first[0] - t0) if first else None,
            "first_new_row_from_start_s": (first[0] - START) if first else None,
            "total_s": end - t0,
            "new_rows": run.result.recorded, "status": run.summary["status"]}


def child_validate(dataset: Path) -> dict[str, Any]:
    from promptflow_dsl.datasets import validate_rows

    def check(row: dict[str, Any]) -> str | None:
        if not isinstance(row.get("text"), str):
            return "text must be a string"
        return None if row.get("gold") in LABELS else "gold must be a label"

    t0 = time.perf_counter()
    report = validate_rows(dataset, check)
    return {"rows": report.rows, "errors": report.error_count, "s": time.perf_counter() - t0}


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "_child", *args], check=True,
                         capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        mode, rest = sys.argv[2], sys.argv[3:]
        if mode == "run":
            result = child_run(Path(rest[0]), Path(rest[1]))
        elif mode == "resume":
            result = child_resume(Path(rest[0]), Path(rest[1]), rest[2])
        else:
            result = child_validate(Path(rest[0]))
        print(json.dumps(result))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--json", type=Path)
    opts = ap.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        big, small = base / "big.jsonl", base / "small.jsonl"
        make_dataset(big, opts.rows)
        make_dataset(small, opts.small)

        report["validate"] = _child("validate", str(big))
        print(f"validate_rows: {report['validate']['rows']} rows in "
              f"{report['validate']['s']:.2f} s")

        small_run = _child("run", str(small), str(base / "runs-small"))
        big_run = _child("run", str(big), str(base / "runs"))
        report["run_small"], report["run_big"] = small_run, big_run
        print(f"no-op run, {big_run['rows']} rows: {big_run['total_s']:.2f} s in all "
              f"({big_run['per_row_us']:.1f} us/row), row loop {big_run['loop_s']:.2f} s "
              f"({big_run['loop_per_row_us']:.1f} us/row)")
        ratio = big_run["peak_rss_kb"] / small_run["peak_rss_kb"]
        report["rss_ratio"] = ratio
        print(f"peak RSS: {small_run['peak_rss_kb'] / 1024:.1f} MiB at {small_run['rows']} rows, "
              f"{big_run['peak_rss_kb'] / 1024:.1f} MiB at {big_run['rows']} rows "
              f"(x{ratio:.3f}); after imports {big_run['import_rss_kb'] / 1024:.1f} MiB")

        run_dir = base / "runs" / big_run["run_id"]
        results = run_dir / "results.jsonl"
        report["resume_complete"] = _child("resume", str(big), str(base / "runs"),
                                           big_run["run_id"])
        print(f"resume of a complete run: {report['resume_complete']['total_s']:.2f} s "
              f"(nothing to run)")
        with open(results, "rb+") as f:  # lose the last 100 lines, as after kill -9
            lines = f.readlines()
            f.seek(0)
            f.truncate(sum(len(x) for x in lines[:-100]))
        report["resume_partial"] = r = _child("resume", str(big), str(base / "runs"),
                                              big_run["run_id"])
        print(f"resume with {r['new_rows']} rows left: first new row after "
              f"{r['first_new_row_s']:.2f} s ({r['first_new_row_from_start_s']:.2f} s from "
              f"process start, imports included), done after {r['total_s']:.2f} s")
    if opts.json:
        opts.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
