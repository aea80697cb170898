"""Spans of a real run reach a real Arize Phoenix, nested and with their attributes.

The test starts ``phoenix serve`` on 127.0.0.1 (free HTTP and gRPC ports, a temporary
working directory), waits until it answers ``/healthz``, runs ``pflow run`` in a
subprocess with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at it (the model is the
loopback fake OpenAI server), then reads the spans back through Phoenix's REST API
(``GET /v1/projects/default/spans``) and stops Phoenix by its PID.  It is skipped
only when Phoenix is not installed (CI installs it: ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("phoenix") is None or importlib.util.find_spec(
        "opentelemetry.exporter.otlp.proto.http") is None,
    reason="arize-phoenix (and the otel extra) not installed: pip install arize-phoenix")

READY_WAIT = 300.0  # Phoenix creates its database on first start: slow on a busy machine
KEY = "sk-phoenix-test-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    work = tmp_path_factory.mktemp("phoenix")
    port, grpc = free_port(), free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(work), "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    exe = shutil.which("phoenix", path=str(Path(sys.executable).parent))
    cmd = [exe, "serve"] if exe else [sys.executable, "-m", "phoenix.server.main", "serve"]
    log = (work / "phoenix.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_WAIT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"phoenix serve exited with {proc.returncode}:\n"
                            + (work / "phoenix.log").read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"phoenix did not answer /healthz in {READY_WAIT:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "{key}", temperature: 0.2 }}
prompt outline(topic: str) -> str = "Outline {{{{ topic }}}}"
tool shout(text: str) -> str = python "tools:shout"
flow essay(topic: str) -> str {{
  o = outline(topic=topic)
  return shout(text=o)
}}
'''


def spans_of(base: str, run_id: str, want: int) -> list[dict]:
    deadline = time.monotonic() + 60
    while True:
        data = get_json(f"{base}/v1/projects/default/spans?limit=1000")
        assert isinstance(data, dict)
        spans = data.get("data", [])
        roots = [s for s in spans if s["attributes"].get("pflow.run_id") == run_id]
        if roots:
            trace_id = roots[0]["context"]["trace_id"]
            ours = [s for s in spans if s["context"]["trace_id"] == trace_id]
            if len(ours) >= want:
                return ours
        if time.monotonic() > deadline:
            pytest.fail(f"phoenix has no spans of run {run_id}: {json.dumps(spans)[:2000]}")
        time.sleep(0.5)


def test_a_run_exports_its_spans_to_phoenix(phoenix, fake_openai, tmp_path):
    fake_openai.set_replies(["first second third"])
    (tmp_path / "tools.py").write_text("def shout(text):\n    return text.upper()\n")
    path = tmp_path / "essay.pflow"
    path.write_text(PROGRAM.format(base=fake_openai.base_url, key=KEY))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = phoenix
    env["PFLOW_SERVER_PROBE"] = "0"
    out = subprocess.run([sys.executable, "-m", "promptflow_dsl", "run", str(path), "essay",
                          "-i", "topic=otters", "--no-cache", "--trace-dir",
                          str(tmp_path / "traces")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "FIRST SECOND THIRD"
    run_id = next((tmp_path / "traces").glob("*.json")).stem
    spans = spans_of(phoenix, run_id, 5)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"pflow.run essay", "flow essay", "prompt outline", "tool shout",
                            "chat openai/fake"}
    sid = {name: s["context"]["span_id"] for name, s in by_name.items()}
    assert by_name["pflow.run essay"]["parent_id"] is None
    assert by_name["flow essay"]["parent_id"] == sid["pflow.run essay"]
    assert by_name["prompt outline"]["parent_id"] == sid["flow essay"]
    assert by_name["tool shout"]["parent_id"] == sid["flow essay"]
    assert by_name["chat openai/fake"]["parent_id"] == sid["prompt outline"]
    # Phoenix read the OpenInference span kinds
    assert by_name["chat openai/fake"]["span_kind"] == "LLM"
    assert by_name["tool shout"]["span_kind"] == "TOOL"
    assert by_name["pflow.run essay"]["span_kind"] == "CHAIN"
    llm = by_name["chat openai/fake"]["attributes"]
    assert llm["gen_ai.operation.name"] == "chat"
    assert llm["gen_ai.request.model"] == "openai/fake"
    assert llm["gen_ai.request.temperature"] == 0.2
    assert llm["gen_ai.usage.output_tokens"] == 3 and llm["gen_ai.usage.input_tokens"] > 0
    assert llm["llm.token_count.completion"] == 3
    assert llm["llm.model_name"] == "openai/fake"
    assert "Outline otters" in llm["input.value"]
    assert llm["output.value"] == "first second third"
    assert by_name["pflow.run essay"]["status_code"] == "OK"
    assert by_name["pflow.run essay"]["attributes"]["output.value"] == "FIRST SECOND THIRD"
    # the key the run sent is nowhere in what Phoenix stored
    assert KEY not in json.dumps(spans)
