"""How fast the trace viewer opens a large trace.

Writes a trace of ``--steps`` steps (default 10,000: flows of 50 prompts, each
prompt with its messages, reply, tokens and cost), times ``pflow trace view`` on it
(process wall time: read, validate, write the page), then opens the page in headless
chromium ``--repeat`` times (a fresh tab each time) and reports the milliseconds from
navigation start to the viewer's first rows (the ``pflow-rows-rendered``
performance mark), and the time to expand every step and scroll to the end.

Needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)
and selenium (the project's `test` extra).

    python bench/trace_view.py [--steps 10000] [--repeat 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "report"))

from headless import console_errors, start, time_to_rows  # noqa: E402
from report_fixtures import big_trace  # noqa: E402

from promptflow_dsl.runtime.trace import write_trace  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trace_file = write_trace(big_trace(args.steps), folder / "traces", durable=False)
        page = folder / "view.html"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "promptflow_dsl", "trace", "view", str(trace_file),
                        "-o", str(page)], check=True, capture_output=True)
        build_s = time.perf_counter() - t0
        driver = start(folder / "profile")
        try:
            opens = []
            for _ in range(args.repeat):
                driver.switch_to.new_window("tab")
                opens.append(time_to_rows(driver, page.as_uri()))
            t0 = time.perf_counter()
            driver.execute_script("document.getElementById('expand').click();"
                                  "var l = document.getElementById('list');"
                                  "l.scrollTop = l.scrollHeight;")
            driver.execute_script("return new Promise(r => requestAnimationFrame(() => r()))")
            expand_ms = (time.perf_counter() - t0) * 1000.0
            errors = console_errors(driver)
        finally:
            driver.quit()
        result = {
            "steps": args.steps,
            "trace_mb": round(trace_file.stat().st_size / 1e6, 2),
            "page_mb": round(page.stat().st_size / 1e6, 2),
            "pflow_trace_view_s": round(build_s, 2),
            "open_to_first_rows_ms": {"median": round(statistics.median(opens)),
                                      "max": round(max(opens)), "all": [round(x) for x in opens]},
            "expand_all_and_scroll_ms": round(expand_ms),
            "console_errors": errors,
        }
    print(f"{args.steps:,} steps: trace {result['trace_mb']} MB, page {result['page_mb']} MB, "
          f"`pflow trace view` {build_s:.2f} s")
    print(f"open in chromium to first rows: median {result['open_to_first_rows_ms']['median']} ms, "
          f"max {result['open_to_first_rows_ms']['max']} ms ({args.repeat} opens; target < 3000 ms)")
    print(f"expand all {args.steps:,} steps and scroll to the end: {round(expand_ms)} ms")
    if errors:
        print(f"console errors: {errors}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
