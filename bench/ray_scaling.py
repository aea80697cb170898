"""Benchmark of ``--executor ray``: how dataset runs scale with Ray workers, and what
the Ray path costs per row, against the loopback fake OpenAI server (tests/fakeserver.py,
run in this process; every ``pflow eval`` runs in a process of its own, with a local
Ray instance it starts and stops).

  scaling   ROWS rows, one model call each, the server answering after --latency
            seconds (default 0.2), each worker capped at 8 rows in flight: rows/s with
            the local executor (8 in flight) and with 1, 2 and 4 Ray workers
            (``--worker-cpus 0.5``, so that 4 fit on 2 CPUs), and the ratio 2 : 1
  overhead  the same program with a server that answers at once, 8 rows in flight:
            the local executor against 1 Ray worker; the difference per row is what
            sending a row to a worker and its outcome back costs

Rows/s are measured over the rows themselves (the session's elapsed time in
``summary.json``: Ray's start-up is reported apart, not counted).

    python bench/ray_scaling.py [--rows 1200] [--overhead-rows 4000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
# the loopback fake server is no server kind: no profile probe (its GETs would be counted)
os.environ.setdefault("PFLOW_SERVER_PROBE", "0")

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-bench-0000000000" }}
type Row {{ id: int, text: str }}
prompt say(text: str) -> str = "{{{{ text }}}}"
eval echoes {{
  data "rows.jsonl" as Row
  run say(text=row.text)
  metric ok = out == row.text
}}
'''

PER_WORKER = 8


def project(base: str, folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pflow.toml").write_text("")
    (folder / "e.pflow").write_text(PROGRAM.format(base=base))
    with open(folder / "rows.jsonl", "w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": i, "text": f"row {i}"}) + "\n")
    return folder


def run_eval(folder: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "promptflow_dsl", "eval", "e.pflow", "-q", "--json",
           "--no-cache", "--no-trace", *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    summary = json.loads(done.stdout)["summary"]
    rows = summary["rows"]["ok"]
    elapsed = float(summary["session"]["elapsed"])
    return {"rows": rows, "failed": summary["rows"]["failed"], "elapsed_s": round(elapsed, 3),
            "rows_per_s": round(rows / elapsed, 1), "process_wall_s": round(wall, 2),
            "startup_s": round(wall - elapsed, 2)}


def ray_args(workers: int) -> list[str]:
    return ["--executor", "ray", "--workers", str(workers), "--worker-cpus", "0.5",
            "--concurrency", str(PER_WORKER * workers)]


def bench_scaling(server: Any, tmp: Path, rows: int, latency: float) -> dict[str, Any]:
    server.set_latency(latency)
    out: dict[str, Any] = {"latency_s": latency, "per_worker": PER_WORKER}
    out["local"] = run_eval(project(server.base_url, tmp / "local", rows),
                            "--concurrency", str(PER_WORKER))
    for n in (1, 2, 4):
        out[f"ray_{n}"] = run_eval(project(server.base_url, tmp / f"ray{n}", rows), *ray_args(n))
    out["ratio_2_to_1"] = round(out["ray_2"]["rows_per_s"] / out["ray_1"]["rows_per_s"], 2)
    out["ratio_4_to_1"] = round(out["ray_4"]["rows_per_s"] / out["ray_1"]["rows_per_s"], 2)
    out["bound_rows_per_s"] = {n: round(PER_WORKER * n / latency, 1) for n in (1, 2, 4)}
    return out


def bench_overhead(server: Any, tmp: Path, rows: int) -> dict[str, Any]:
    server.set_latency(0.0)
    local = run_eval(project(server.base_url, tmp / "olocal", rows), "--concurrency",
                     str(PER_WORKER))
    ray = run_eval(project(server.base_url, tmp / "oray", rows), *ray_args(1))
    per_row_ms = (ray["elapsed_s"] - local["elapsed_s"]) / rows * 1000
    return {"local": local, "ray_1": ray, "overhead_ms_per_row": round(per_row_ms, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1200)
    ap.add_argument("--overhead-rows", type=int, default=4000)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--only", default="scaling,overhead")
    ap.add_argument("--json", metavar="OUT")
    opts = ap.parse_args()
    from fakeserver import FakeOpenAI

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmpdir, FakeOpenAI() as server:
        tmp = Path(tmpdir)
        if "scaling" in opts.only:
            results["scaling"] = bench_scaling(server, tmp, opts.rows, opts.latency)
            print(json.dumps(results["scaling"], indent=2), flush=True)
        if "overhead" in opts.only:
            results["overhead"] = bench_overhead(server, tmp, opts.overhead_rows)
            print(json.dumps(results["overhead"], indent=2), flush=True)
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
