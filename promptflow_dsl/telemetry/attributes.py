"""What a pflow span says: OpenTelemetry GenAI semantic conventions and OpenInference
attributes for runs, steps and model calls, as plain ``{name: value}`` dicts.

Nothing here imports OpenTelemetry.  Every text that goes into an attribute passes
through the run's scrubber first (secret-looking keys and the values of the run's API
keys masked, long texts cut), and no attribute is ever made from a request's
settings other than the generation parameters: never an API key, a header or a
server address.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..runtime.observe import ModelCall
from ..runtime.trace import Step

Scrub = Callable[[Any], Any]

# OpenInference span kinds by step kind (model calls are LLM, embeddings EMBEDDING)
SPAN_KIND = {"tool": "TOOL", "route": "CHAIN", "flow": "CHAIN", "prompt": "CHAIN"}

OPERATION = {"chat": "chat", "complete": "text_completion", "embed": "embeddings",
             "score": "score"}


def to_json(value: Any) -> str:
    """``value`` as compact JSON text (``repr`` for what JSON cannot hold)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def provider_of(model_id: str) -> str:
    """The GenAI provider name of a pflow model id: the prefix before ``/``
    (``openai/gpt-4o`` → ``openai``, ``local/smollm2`` → ``local``), ``pflow`` for the
    built-in ``echo``, else ``openai`` (litellm's reading of a bare model name)."""
    if "/" in model_id:
        return model_id.split("/", 1)[0] or "unknown"
    return "pflow" if model_id in ("echo", "scripted") else "openai"


def _value(value: Any, scrub: Scrub) -> tuple[str, str]:
    """(text, MIME type) of a value for ``input.value`` / ``output.value``."""
    clean = scrub(value)
    if isinstance(clean, str):
        return clean, "text/plain"
    return to_json(clean), "application/json"


def run_attributes(run_id: str, program: str, entry: str, inputs: Mapping[str, Any],
                   scrub: Scrub) -> dict[str, Any]:
    text, mime = _value(dict(inputs), scrub)
    return {"openinference.span.kind": "CHAIN", "pflow.run_id": run_id,
            "pflow.program": scrub(program), "pflow.entry": entry,
            "input.value": text, "input.mime_type": mime}


def step_attributes(step: Step) -> dict[str, Any]:
    """A step's attributes when it starts (its inputs were scrubbed by the recorder)."""
    out: dict[str, Any] = {
        "openinference.span.kind": SPAN_KIND.get(step.kind, "CHAIN"),
        "pflow.step.id": step.id, "pflow.handler": step.handler, "pflow.kind": step.kind,
        "input.value": to_json(step.inputs), "input.mime_type": "application/json"}
    if step.kind == "tool":
        out["tool.name"] = step.handler
        out["gen_ai.tool.name"] = step.handler
    if step.file:
        out["code.filepath"] = step.file
    if step.line is not None:
        out["code.lineno"] = step.line
    return out


def step_end_attributes(step: Step) -> dict[str, Any]:
    """A finished step's attributes (output, status, model, tokens, cache)."""
    text, mime = _value(step.output, lambda v: v)  # the recorder scrubbed the output
    out: dict[str, Any] = {"pflow.status": step.status}
    if step.status == "ok":
        out["output.value"], out["output.mime_type"] = text, mime
    if step.model:
        out["pflow.model"] = step.model
    if step.calls is not None:
        out["pflow.model_calls"] = step.calls
    if step.cache_hit is not None:
        out["pflow.cache_hit"] = step.cache_hit
    if step.usage is not None:
        out["pflow.usage.input_tokens"] = step.usage.prompt_tokens
        out["pflow.usage.output_tokens"] = step.usage.completion_tokens
    if step.cost is not None:
        out["pflow.cost_usd"] = step.cost
    if step.attempts > 1:
        out["pflow.attempts"] = step.attempts
    return out


def model_call_name(call: ModelCall) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, as the conventions name it."""
    return f"{OPERATION.get(call.operation, call.operation)} {call.model_id}"


def model_call_attributes(call: ModelCall, scrub: Scrub) -> dict[str, Any]:
    """A model call's attributes (GenAI conventions and OpenInference)."""
    provider = provider_of(call.model_id)
    embedding = call.operation == "embed"
    out: dict[str, Any] = {
        "openinference.span.kind": "EMBEDDING" if embedding else "LLM",
        "gen_ai.operation.name": OPERATION.get(call.operation, call.operation),
        "gen_ai.system": provider, "gen_ai.provider.name": provider,
        "gen_ai.request.model": call.model_id,
        "llm.model_name": call.model_id, "llm.provider": provider, "llm.system": provider,
        "pflow.cache_hit": call.cache_hit}
    if embedding:
        out["embedding.model_name"] = call.model_id
    params = call.params
    if params is not None:
        invocation: dict[str, Any] = {}
        for name in ("temperature", "max_tokens", "top_p", "seed"):
            value = getattr(params, name)
            if value is not None:
                out[f"gen_ai.request.{name}"] = value
                invocation[name] = value
        if params.stop:
            out["gen_ai.request.stop_sequences"] = list(params.stop)
            invocation["stop"] = list(params.stop)
        if params.json_schema is not None:
            invocation["response_format"] = "json_schema"
        out["llm.invocation_parameters"] = to_json(invocation)
    request = scrub(dict(call.request))
    messages = request.get("messages")
    if isinstance(messages, list):
        for i, m in enumerate(messages):
            if isinstance(m, dict):
                out[f"llm.input_messages.{i}.message.role"] = str(m.get("role", ""))
                out[f"llm.input_messages.{i}.message.content"] = str(m.get("content", ""))
        out["input.value"], out["input.mime_type"] = to_json(messages), "application/json"
    elif "prefix" in request:
        out["input.value"], out["input.mime_type"] = str(request["prefix"]), "text/plain"
        out["llm.prompts"] = [str(request["prefix"])]
    elif request:
        out["input.value"], out["input.mime_type"] = to_json(request), "application/json"
    result = call.result
    if result is None:
        if call.error:
            out["error.type"] = "ModelError"
        return out
    if "text" in result:
        text = scrub(str(result["text"]))
        out["output.value"], out["output.mime_type"] = text, "text/plain"
        out["llm.output_messages.0.message.role"] = "assistant"
        out["llm.output_messages.0.message.content"] = text
    if result.get("model"):
        out["gen_ai.response.model"] = str(result["model"])
    if result.get("finish_reason"):
        out["gen_ai.response.finish_reasons"] = [str(result["finish_reason"])]
    usage = result.get("usage")
    if isinstance(usage, Mapping) and not call.cache_hit:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        out["gen_ai.usage.input_tokens"] = prompt
        out["gen_ai.usage.output_tokens"] = completion
        out["llm.token_count.prompt"] = prompt
        out["llm.token_count.completion"] = completion
        out["llm.token_count.total"] = prompt + completion
        if usage.get("cost") is not None:
            out["pflow.cost_usd"] = float(usage["cost"])
    return out
