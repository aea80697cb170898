"""What a model can enforce, known before anything runs: the static capability
table the checker uses for sketches, and the warnings it gives where a sketch's
model cannot enforce its decoder or a hole's constraint.

Nothing here imports litellm, llama-cpp or the model layer: the table mirrors
``models.remote.capabilities_for(..., ask_litellm=False)`` and the built-in
backends (a test keeps them in agreement), because importing the model layer
would cost ``pflow check`` a third of its time.

=========================================  ==========  =======  ========  =======
model id                                   completion  prefill  logprobs  grammar
=========================================  ==========  =======  ========  =======
``local/smollm2``                          ✓           ✓        ✓         ✓
``echo``                                   ✓           –        –         –
``text-completion-openai/…``               ✓           –        ✓         –
any id with ``api_base`` (OpenAI-style)    if declared –        = compl.  if declared
``anthropic/…``, ``claude-…``              –           ✓        –         –
anything else (``openai/…`` chat, …)       –           –        –         –
=========================================  ==========  =======  ========  =======

A model parameter named like a capability (``completion: true``, ``logprobs:
true``, ``grammar: true``, ...) overrides its row, as at run time. For a model with
``api_base``, the capabilities of its server profile replace the row when a run has
cached one (``.pflow-cache/servers.json`` of the project root or of the working
directory, or ``$PFLOW_SERVER_CACHE``;
written by ``models/profiles.py``, read here as plain JSON — ``pflow check`` never asks
a server anything); without one, a declared ``server`` kind gives its row of
:data:`SERVER_CAPABILITIES`.

The fallback rules (:func:`~promptflow_dsl.lang.decoding.decoder_plan`,
:func:`~promptflow_dsl.lang.decoding.hole_method`) take any object with the
capability attributes, so the checker (with :class:`ModelCaps`) and the runtime
(with a backend's ``Capabilities``) decide the same way.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..lang.decoding import decoder_plan, hole_method
from ..lang.holes import hole_kind

__all__ = ["ModelCaps", "static_capabilities", "cached_server_capabilities", "reask_phrase",
           "sketch_warnings",
           "check_sketch_capabilities", "check_completion_model"]


@dataclass(frozen=True)
class ModelCaps:
    """The capabilities that decide how a sketch is decoded (names as in ``models.base``)."""

    chat: bool = True
    completion: bool = False
    prefill: bool = False
    logprobs: bool = False
    grammar: bool = False
    json_schema: bool = False


_NAMES = frozenset(f.name for f in fields(ModelCaps))
_PREFILL_PROVIDERS = frozenset({"anthropic", "bedrock_anthropic"})


#: what a declared ``server`` kind gives (``models.profiles``; a test keeps them equal)
SERVER_CAPABILITIES: dict[str, dict[str, bool]] = {
    "openai": {"completion": False, "prefill": False, "logprobs": False, "grammar": False,
               "json_schema": True},
    "vllm": {"completion": True, "prefill": True, "logprobs": True, "grammar": False,
             "json_schema": True},
    "llama.cpp": {"completion": True, "prefill": False, "logprobs": False, "grammar": True,
                  "json_schema": True},
    "llama-cpp-python": {"completion": True, "prefill": False, "logprobs": True, "grammar": True,
                         "json_schema": True},
    "ollama": {"completion": True, "prefill": False, "logprobs": False, "grammar": False,
               "json_schema": True},
    "tgi": {"completion": True, "prefill": False, "logprobs": False, "grammar": False,
            "json_schema": False},
    "litellm-proxy": {"completion": False, "prefill": False, "logprobs": False, "grammar": False,
                      "json_schema": True},
}


def cached_server_capabilities(root: Path | None, api_base: Any) -> dict[str, bool] | None:
    """The capabilities cached for the server at ``api_base`` by a run (unexpired), if any."""
    if not isinstance(api_base, str) or not api_base:
        return None
    env = os.environ.get("PFLOW_SERVER_CACHE")
    # a run writes the file in its working directory: the project root, else where check runs
    paths = [Path(env)] if env else [
        (folder / ".pflow-cache" / "servers.json") for folder in dict.fromkeys([root or Path.cwd(),
                                                                               Path.cwd()])]
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entry = data["servers"][api_base.rstrip("/")]
            caps = entry["capabilities"] if float(entry["expires"]) > time.time() else None
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(caps, dict):
            return {k: v for k, v in caps.items() if k in _NAMES and isinstance(v, bool)}
    return None


def static_capabilities(model_id: str, params: Mapping[str, Any] | None = None,
                        server: Mapping[str, bool] | None = None) -> ModelCaps:
    """The table of the module docstring (``server``: a cached server profile's
    capabilities replace the row), then overrides from the model's ``params``."""
    params = dict(params or {})
    lower = model_id.lower()
    provider = lower.split("/", 1)[0] if "/" in lower else ("anthropic" if lower.startswith("claude")
                                                             else "")
    if model_id == "local/smollm2":
        caps = ModelCaps(completion=True, prefill=True, logprobs=True, grammar=True, json_schema=True)
    elif model_id == "echo":
        caps = ModelCaps(completion=True)
    elif "embed" in lower:
        caps = ModelCaps(chat=False)
    elif provider == "text-completion-openai":
        caps = ModelCaps(completion=True, logprobs=True)
    elif params.get("api_base"):
        completion = bool(params.get("completion", False))
        caps = ModelCaps(completion=completion, logprobs=completion,
                         json_schema=bool(params.get("json_schema", False)))
    else:
        caps = ModelCaps(prefill=provider in _PREFILL_PROVIDERS)
    if params.get("api_base") and model_id not in ("local/smollm2", "echo"):
        known = server or SERVER_CAPABILITIES.get(str(params.get("server")))
        if known:
            caps = replace(caps, **known)
    overrides = {k: v for k, v in params.items() if k in _NAMES and isinstance(v, bool)}
    return replace(caps, **overrides) if overrides else caps


# ------------------------------------------------------------------ the checker's warnings


def reask_phrase(retries: int) -> str:
    if retries <= 0:
        return "validates the answer and fails if it is not valid (retries 0)"
    times = "once" if retries == 1 else f"up to {retries} times"
    return f"validates the answer and re-asks {times}"


def sketch_warnings(caps: Any, model_id: str, decoder: str, width: int, holes: Any,
                    retries: int) -> tuple[str | None, list[tuple[Any, str]]]:
    """The checker's warnings: (for the decoder clause or None, [(hole, message)])."""
    used, why = decoder_plan(caps, decoder, width)
    on_decoder = None
    if why is not None:
        gives = "does not give" if decoder == "beam" else "does not offer"
        what = why.split(" needs ", 1)
        on_decoder = (f"{what[0]} needs {what[1]}, which model '{model_id}' {gives}: the runtime "
                      f"falls back to {used} decoding")
    out = []
    for hole in holes:
        method, reason = hole_method(caps, hole)
        if method != "validated":
            continue
        kind = hole_kind(hole)
        label = {"choice": "the choices", "bool": "a bool", "int": "an integer",
                 "float": "a number", "regex": "the regex"}[kind]
        if reason and reason.startswith("the regex"):
            msg = f"hole '{hole.name}': {reason}, so model '{model_id}' cannot enforce it while decoding"
        else:
            msg = (f"hole '{hole.name}': model '{model_id}' cannot enforce {label} while decoding "
                   f"({reason})")
        out.append((hole, f"{msg}: the runtime {reask_phrase(retries)}"))
    return on_decoder, out


# ------------------------------------------------------------------ the checker's entry point


def check_sketch_capabilities(env: Any, d: Any, holes: Any, decoder: str, beam: int, retries: int,
                              hole_span: Any) -> None:
    """Warn where the sketch's model cannot do what its decoder (``decoder``, ``beam``
    width) or a hole's constraint needs, saying which fallback the runtime will use.
    ``env`` is the module's ``ModuleEnv``, ``d`` the ``SketchDecl``; the model is the
    sketch's ``model`` clause or ``default`` (an unknown model was reported already: no
    warning)."""
    info = _model_info(env, d.model)
    if info is None or info.embed:
        return
    caps = _caps_of(env, info)
    on_decoder, on_holes = sketch_warnings(caps, info.model_id, decoder, beam or 1, holes, retries)
    if on_decoder is not None and d.decoder is not None:
        env.warn(d.decoder.span, on_decoder)
    for hole, message in on_holes:
        env.warn(hole_span(hole), message)


def _model_info(env: Any, ref: Any) -> Any:
    """The ``ModelInfo`` a handler's ``model`` clause (``ref``, None: ``default``) names,
    or None when it is not declared (an unknown name was reported already; an undeclared
    ``default`` is ``local/smollm2``)."""
    if ref is None:
        return env.cm.models.get("default")
    if len(ref.parts) == 1:
        return env.cm.models.get(ref.parts[0])
    mod = env.checked.get(env.lm.imports.get(ref.parts[0]))
    return mod.models.get(ref.parts[1]) if mod is not None else None


def _caps_of(env: Any, info: Any) -> ModelCaps:
    return static_capabilities(info.model_id, info.params,
                               cached_server_capabilities(env.project.root,
                                                          info.params.get("api_base")))


def check_completion_model(env: Any, ref: Any, span: Any, owner: str) -> None:
    """Report an error when the model of a completion prompt (``ref``: its ``model``
    clause, None for ``default``) cannot complete raw text, at the ``model`` clause (or
    at ``span``, the completion text, when the prompt uses ``default``): a chat-only
    model would have to wrap the text in a chat, which is not what the prompt says."""
    info = _model_info(env, ref)
    if info is None or info.embed or _caps_of(env, info).completion:
        return
    name = ref.dotted if ref is not None else "default"
    env.err(ref.span if ref is not None else span,
            f"{owner} is a completion prompt, and model '{name}' (\"{info.model_id}\") cannot "
            f"complete raw text: use a model with a completion endpoint (local/smollm2, "
            f"text-completion-openai/..., or a server model declared with `completion: true`)")
