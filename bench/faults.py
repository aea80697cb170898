"""Fault injection at scale: an eval over 1,000 rows against a server that fails 20%
of the requests in every way it can, killed with SIGKILL mid-run and resumed.

The loopback fake OpenAI server (tests/fakeserver.py) runs in this process; with
probability --rate each POST gets one fault, drawn evenly from: HTTP 500, HTTP 429
(``Retry-After: 0.2``), no answer past the client's time-out, a 200 whose body is not
JSON, a body cut off mid-way, a malformed 200 (``{"choices": "abc"}``), and a reply
that does not validate (a JSON object missing a field). ``pflow eval`` runs in a
process of its own (``--concurrency 16``, the model's ``timeout`` 1 s, 4 attempts),
is killed with SIGKILL after --kill-after rows are recorded, resumed with
``--resume RUN``, then once more with ``--retry-failed``.

Printed (and written to --out): rows recorded, rows ok and failed after each
session, whether every row appears exactly once, the faults injected per kind, the
requests, the exit statuses, and any traceback or internal error (exit 70) seen.

    python bench/faults.py [--rows 1000] [--rate 0.2] [--kill-after 300] [--seed 0]
                           [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
# the loopback fake server is no server kind: no profile probe (its GETs would be counted)
os.environ.setdefault("PFLOW_SERVER_PROBE", "0")

from fakeserver import FakeOpenAI, _Fault  # noqa: E402

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-faults-000000000000",
                                timeout: 1.0, num_retries: 3 }}
type Row {{ id: int, text: str }}
type Verdict {{ label: "good" | "bad", score: int }}
prompt judge(text: str) -> Verdict = "Judge {{{{ text }}}} as JSON."
eval faults {{
  data "rows.jsonl" as Row
  run judge(text=row.text)
  metric good = out.label == "good"
}}
'''

KINDS = ["http_500", "http_429", "timeout", "garbage", "truncated", "malformed_200",
         "invalid_reply"]


class ChaosServer(FakeOpenAI):
    """The fake server with a fault on a share of the POST requests."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.chaos_lock = threading.Lock()
        super().__init__()

    def _draw(self) -> str | None:
        with self.chaos_lock:
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(KINDS)
            self.injected[kind] += 1
            return kind

    def _enter(self, method: str, path: str, body: dict[str, Any] | None,
               headers: dict[str, str]) -> _Fault | None:
        fault = super()._enter(method, path, body, headers)
        if fault is not None or method != "POST":
            return fault
        kind = self._draw()
        if kind == "http_500":
            return _Fault("status", status=500)
        if kind == "http_429":
            return _Fault("status", status=429, retry_after=0.2)
        if kind == "timeout":
            return _Fault("hang", seconds=2.0)
        if kind == "garbage":
            return _Fault("garbage")
        if kind == "truncated":
            return _Fault("truncate", after_chunks=1)
        if kind == "malformed_200":
            return _Fault("raw", body=b'{"choices": "abc"}')
        if kind == "invalid_reply":
            return _Fault("raw", body=json.dumps({
                "id": "x", "object": "chat.completion", "model": "fake",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": "{\"label\": \"good\"}"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }).encode())
        return None


def verdict(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"]
    n = sum(map(ord, text))
    return json.dumps({"label": "good" if n % 3 else "bad", "score": n % 10})


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_bytes().splitlines(keepends=True)
            if x.endswith(b"\n")]


def session(cmd: list[str], cwd: Path, kill_after: int | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PFLOW_DEBUG": "1"})
    killed = False
    if kill_after is not None:
        root = cwd / ".pflow-cache" / "evals"
        while proc.poll() is None:
            found = list(root.glob("*/results.jsonl")) if root.is_dir() else []
            if found and len(lines(found[0])) >= kill_after:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
    out, err = proc.communicate(timeout=3600)
    return {"exit": proc.returncode, "killed": killed, "seconds": round(time.perf_counter() - t0, 1),
            "traceback": "Traceback" in err, "internal_error": proc.returncode == 70,
            "stderr_tail": err.strip().splitlines()[-3:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--kill-after", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", metavar="FILE")
    opts = ap.parse_args()
    report: dict[str, Any] = {"rows": opts.rows, "rate": opts.rate}
    with tempfile.TemporaryDirectory() as tmpdir, ChaosServer(opts.rate, opts.seed) as server:
        server.set_reply(verdict)
        tmp = Path(tmpdir)
        (tmp / "pflow.toml").write_text("")
        (tmp / "e.pflow").write_text(PROGRAM.format(base=server.base_url))
        with open(tmp / "rows.jsonl", "w") as f:
            for i in range(opts.rows):
                f.write(json.dumps({"id": i, "text": f"row {i}"}) + "\n")
        base = [sys.executable, "-m", "promptflow_dsl", "eval", "e.pflow", "-q",
                "--concurrency", "16"]
        sessions = [session(base, tmp, kill_after=opts.kill_after)]
        [results] = list((tmp / ".pflow-cache" / "evals").glob("*/results.jsonl"))
        run_id = results.parent.name
        sessions[0]["rows_recorded"] = len(lines(results))
        sessions.append(session([*base, "--resume", run_id], tmp))
        after_resume = lines(results)
        sessions[1]["rows_recorded"] = len({x["row"] for x in after_resume})
        sessions.append(session([*base, "--resume", run_id, "--retry-failed"], tmp))
        final = lines(results)
        winners: dict[int, dict[str, Any]] = {}
        for line in final:
            if line["row"] not in winners or winners[line["row"]]["status"] != "ok":
                winners[line["row"]] = line
        ok_lines = Counter(x["row"] for x in final if x["status"] == "ok")
        report.update(
            sessions=sessions,
            exactly_once=(sorted(winners) == list(range(1, opts.rows + 1))
                          and all(k == 1 for k in ok_lines.values())),
            ok=sum(1 for x in winners.values() if x["status"] == "ok"),
            failed=sum(1 for x in winners.values() if x["status"] != "ok"),
            failed_after_first_resume=sum(1 for x in after_resume if x["status"] != "ok"),
            errors=Counter((x.get("error_type") or "?") for x in winners.values()
                           if x["status"] != "ok"),
            injected=dict(server.injected), requests=server.count,
            summary=json.loads((results.parent / "summary.json").read_text())["rows"])
    print(json.dumps(report, indent=2))
    if opts.out:
        Path(opts.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
