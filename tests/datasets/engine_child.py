"""A dataset run in its own process, for the crash and Ctrl-C tests.

    python engine_child.py DATASET ROOT CALLS [--resume RUN] [--delay S]
        [--concurrency N] [--grace S] [--sigint] [--retry-failed]

Each row appends its line number to CALLS (one write) when it starts, sleeps, and
records ``{"x": ...}`` with an ``even`` metric. At the end one JSON line goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from promptflow_dsl.datasets import DatasetSpec, RowOutcome, run_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("root")
    ap.add_argument("calls")
    ap.add_argument("--resume")
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--grace", type=float, default=5.0)
    ap.add_argument("--sigint", action="store_true")
    ap.add_argument("--retry-failed", action="store_true")
    opts = ap.parse_args()
    fd = os.open(opts.calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def row(line: int, data: dict[str, Any]) -> RowOutcome:
        os.write(fd, f"{line}\n".encode())
        await asyncio.sleep(opts.delay)
        return RowOutcome(fields={"x": data["x"]}, metrics={"even": data["x"] % 2 == 0},
                          tokens=1)

    spec = DatasetSpec(opts.dataset, program_digest="sha256:prog", metrics=["even"],
                       args=["eval", "x.pflow"])
    run = asyncio.run(run_dataset(spec, row, root=opts.root, resume=opts.resume,
                                  concurrency=opts.concurrency, grace=opts.grace,
                                  handle_sigint=opts.sigint, retry_failed=opts.retry_failed))
    print(json.dumps({"status": run.result.status, "run_id": run.run_id,
                      "resume_command": run.resume_command,
                      "recorded": run.result.recorded, "cancelled": run.result.cancelled,
                      "summary_status": run.summary["status"]}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
