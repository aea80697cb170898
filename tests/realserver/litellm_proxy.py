"""Starting and stopping a real LiteLLM proxy (``litellm --config``, the proxy that ships
inside the ``litellm`` package) in front of the llama-cpp-python server fixture: a temp
config with one model (``smollm2``) and a master key, on 127.0.0.1 (a free port),
stopped by its PID.

:func:`start_proxy` skips the calling test, saying why, only when the proxy cannot be
imported (its server dependencies are in the ``test`` extra).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
from llama_server import Server, free_port, launch

MASTER_KEY = "sk-pflow-proxy-master-0001"
START_TIMEOUT = 150.0  # the proxy imports most of litellm: tens of seconds on 2 busy cores


def _proxy_importable() -> str | None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        importlib.import_module("litellm.proxy.proxy_server")
    except Exception as exc:  # noqa: BLE001 - any reason means: no proxy to test against
        return (f"the LiteLLM proxy cannot be imported ({exc}); install the test extra "
                f"(pip install -e '.[test]')")
    return None


def start_proxy(log_dir: Path, upstream: Server) -> Server:
    """Start ``litellm --config`` serving ``upstream`` as model ``smollm2`` (key
    :data:`MASTER_KEY`) and wait for it to answer; stopping it is the caller's. Raises
    ``RuntimeError`` (with the end of its log) when it does not come up."""
    reason = _proxy_importable()
    if reason is not None:
        pytest.skip(reason)
    port = free_port()
    config = log_dir / "litellm_proxy.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: smollm2\n"
        "    litellm_params:\n"
        "      model: openai/smollm2\n"
        f"      api_base: {upstream.base_url}\n"
        "      api_key: none\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  num_retries: 0\n")
    log = log_dir / f"litellm_proxy_{port}.log"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1",
           "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"}
    env.pop("DATABASE_URL", None)
    # the tests read uvicorn's access log; a LITELLM_LOG left by litellm's import in this
    # process (pflow sets ERROR there) would turn it off in the proxy
    for name in ("LITELLM_LOG", "JSON_LOGS"):
        env.pop(name, None)
    cli = Path(sys.executable).with_name("litellm")
    cmd = [str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    return launch("the LiteLLM proxy", cmd, env, port, log, START_TIMEOUT,
                  headers={"Authorization": f"Bearer {MASTER_KEY}"})
