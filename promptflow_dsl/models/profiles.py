"""Server profiles: what an OpenAI-compatible server really does, learned from the server.

A model with ``api_base`` talks to some server — vLLM, llama.cpp's own server,
llama-cpp-python, Ollama, TGI, a LiteLLM proxy — and each offers a different subset of
the protocol: how it constrains output to a JSON schema, whether it continues a
final assistant message, whether ``/v1/completions`` echoes prompt log-probabilities.
A **profile** records that per server kind (:data:`KINDS`). The kind is the model
parameter ``server`` when given, else it is **probed** once per ``api_base`` (a few
``GET`` requests with a short time-out: ``/v1/models`` and its headers, then
``/openapi.json``, ``/props``, ``/api/version``, ``/version``, ``/info`` at the server's
root) and the answer is kept for :data:`PROFILE_TTL` seconds in
``.pflow-cache/servers.json`` (``$PFLOW_SERVER_CACHE`` names another file). A server that
does not answer gives no profile (nothing is written): the model's declared flags and
the static table apply, as before. ``PFLOW_SERVER_PROBE=0`` turns probing off.

Declared capability flags (``json_schema: false``, ``prefill: true``, ...) always win
over the profile (:func:`profiled_capabilities`).

The llama.cpp family (``llama.cpp``, ``llama-cpp-python``) does not continue a final
assistant message in chat; pflow continues a text there by raw completion on
``/v1/completions`` of the prompt the model's **own** chat template gives
(:func:`chat_prefix`), rendered here with Jinja2 in a sandbox. The template comes from
the model parameter ``chat_template``, else from the server: ``/props`` of llama.cpp's
server, or for llama-cpp-python the GGUF file its ``/v1/models`` names (read when that
path exists on this machine: ``tokenizer.chat_template`` and the BOS/EOS tokens of the
GGUF metadata). Without a template the runtime uses its continuation prompt.

Nothing here imports litellm or the runtime; the probe uses ``urllib`` (blocking, at
most :data:`PROBE_TIMEOUT` seconds per request, stopped at the first refused
connection).
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, BinaryIO

from ..atomic import write_atomic
from .base import Capabilities, Message

KINDS = ("openai", "vllm", "llama.cpp", "llama-cpp-python", "ollama", "tgi", "litellm-proxy")
PROFILE_TTL = 24 * 3600.0
PROBE_TIMEOUT = 1.5
CACHE_ENV = "PFLOW_SERVER_CACHE"
PROBE_ENV = "PFLOW_SERVER_PROBE"
CACHE_VERSION = 1

# structured output: how a JSON schema is asked for
NATIVE_SCHEMA = "json_schema"  # response_format {"type": "json_schema", ...}
JSON_OBJECT_SCHEMA = "json_object"  # response_format {"type": "json_object", "schema": ...}
SCHEMA_FIELD = "schema_field"  # llama.cpp's own request field "json_schema"
INSTRUCTIONS = "instructions"  # the schema in words; the runtime validates


@dataclass(frozen=True)
class ServerProfile:
    """What pflow uses of one server (see :func:`profile_of_kind` for the table).

    ``structured`` is one of :data:`NATIVE_SCHEMA`, :data:`JSON_OBJECT_SCHEMA`,
    :data:`SCHEMA_FIELD`, :data:`INSTRUCTIONS`; ``prefill_fields`` says the server
    continues a final assistant message when asked with ``continue_final_message``
    (vLLM); ``raw_template`` says a continuation is a raw completion of the model's own
    chat template (``chat_template``, with ``bos_token`` / ``eos_token``)."""

    kind: str
    structured: str = INSTRUCTIONS
    completion: bool = False
    logprobs: bool = False  # prompt log-probs from an echoed completion (scoring)
    grammar: bool = False  # GBNF in the request's "grammar" field
    prefill: bool = False  # a final assistant message is continued natively
    prefill_fields: bool = False
    raw_template: bool = False
    embeddings: bool | None = None  # None: as declared (depends on how the server was started)
    chat_template: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    detail: str = ""  # how the kind was found

    def capabilities(self, base: Capabilities) -> Capabilities:
        """``base`` with what this server really offers (before declared flags)."""
        if self.kind not in _TABLE:
            return base  # a server not recognized: the static table and declared flags
        out = replace(base, completion=self.completion, logprobs=self.logprobs,
                      grammar=self.grammar, prefill=self.prefill,
                      json_schema=self.structured != INSTRUCTIONS,
                      json_schema_object_only=self.structured == NATIVE_SCHEMA
                      and self.kind in ("openai", "litellm-proxy"))
        if self.embeddings is not None:
            out = replace(out, embeddings=self.embeddings)
        return out


_TABLE: dict[str, dict[str, Any]] = {
    "openai": {"structured": NATIVE_SCHEMA},
    "vllm": {"structured": NATIVE_SCHEMA, "completion": True, "logprobs": True, "prefill": True,
             "prefill_fields": True},
    "llama.cpp": {"structured": SCHEMA_FIELD, "completion": True, "grammar": True,
                  "raw_template": True},
    "llama-cpp-python": {"structured": JSON_OBJECT_SCHEMA, "completion": True, "logprobs": True,
                         "grammar": True, "raw_template": True},
    "ollama": {"structured": NATIVE_SCHEMA, "completion": True},
    "tgi": {"completion": True},
    "litellm-proxy": {"structured": NATIVE_SCHEMA},
}


def profile_of_kind(kind: str, **more: Any) -> ServerProfile:
    """The profile of a server kind (one of :data:`KINDS`). Raises ``ValueError`` for
    another name."""
    if kind not in _TABLE:
        raise ValueError(f"unknown server kind {kind!r}; one of: {', '.join(KINDS)}")
    return ServerProfile(kind, **{**_TABLE[kind], **more})


def profiled_capabilities(base: Capabilities, profile: ServerProfile | None,
                          params: Mapping[str, Any]) -> Capabilities:
    """``base`` (the static table) changed by ``profile``, then by the declared flags of
    ``params`` (a model parameter named like a capability, with a bool value, wins)."""
    caps = profile.capabilities(base) if profile is not None else base
    names = {f.name for f in fields(Capabilities)} - {"json_schema_object_only"}
    overrides = {k: bool(v) for k, v in params.items() if k in names and isinstance(v, bool)}
    return replace(caps, **overrides) if overrides else caps


# ------------------------------------------------------------------ requests


def structured_fields(profile: ServerProfile | None, schema: dict[str, Any],
                      name: str) -> dict[str, Any] | None:
    """The request fields that ask ``profile``'s server for JSON matching ``schema``
    (``extra_body`` holds fields outside the OpenAI protocol), or None: ask in words."""
    mode = profile.structured if profile is not None and profile.kind in _TABLE else NATIVE_SCHEMA
    if mode == INSTRUCTIONS:  # declared json_schema: true on a server the table doubts
        mode = NATIVE_SCHEMA
    if mode == NATIVE_SCHEMA:
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": name, "schema": schema}}}
    if mode == JSON_OBJECT_SCHEMA:
        return {"response_format": {"type": "json_object", "schema": schema}}
    if mode == SCHEMA_FIELD:
        return {"extra_body": {"json_schema": schema}}
    return None


def prefill_fields(profile: ServerProfile | None, messages: list[Message]) -> dict[str, Any]:
    """The fields that make a server continue a final assistant message (vLLM:
    ``continue_final_message``, without a new generation prompt); else nothing."""
    if profile is None or not profile.prefill_fields or not messages or messages[-1].role != "assistant":
        return {}
    return {"continue_final_message": True, "add_generation_prompt": False}


def chat_prefix(profile: ServerProfile | None, messages: list[Message]) -> str | None:
    """``messages`` rendered with the model's own chat template up to where the
    assistant writes (the generation prompt), or None when no template is known or it
    cannot be rendered."""
    if profile is None or not profile.raw_template or not profile.chat_template:
        return None
    try:
        template = _compiled(profile.chat_template)
        return str(template.render(messages=[m.as_dict() for m in messages],
                                   add_generation_prompt=True, bos_token=profile.bos_token,
                                   eos_token=profile.eos_token))
    except Exception:  # noqa: BLE001 - a template this environment cannot render
        return None


#: end-of-turn markers of common chat templates, looked for in a template without a known EOS
TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")


def end_of_turn(profile: ServerProfile | None) -> tuple[str, ...]:
    """Stop strings that end an assistant turn of ``profile``'s template: its EOS token,
    else the common end-of-turn markers its template writes."""
    if profile is None:
        return ()
    if profile.eos_token:
        return (profile.eos_token,)
    return tuple(t for t in TURN_ENDS if t in (profile.chat_template or ""))


_templates: dict[str, Any] = {}


def _compiled(source: str) -> Any:
    template = _templates.get(source)
    if template is None:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        template = _templates[source] = env.from_string(source)
    return template


# ------------------------------------------------------------------ finding the profile

Fetch = Callable[[str], "tuple[int, dict[str, str], Any] | None"]

_memo: dict[tuple[str, str | None], ServerProfile | None] = {}
_lock = threading.Lock()


def probing_enabled() -> bool:
    return os.environ.get(PROBE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def server_profile(api_base: str | None, params: Mapping[str, Any], *,
                   fetch: Fetch | None = None, now: float | None = None,
                   api_key: str | None = None) -> ServerProfile | None:
    """The profile of the server at ``api_base`` for a model with ``params``: the
    declared ``server`` kind, else the cached or probed one (None when unknown, the
    server does not answer, or probing is off). Once per ``api_base`` and process;
    the declared ``chat_template`` parameter replaces the server's. ``api_key`` is sent
    with the probe (a server that wants one answers ``/v1/models`` only then). Raises
    ``ValueError`` for an unknown ``server`` value."""
    declared = params.get("server")
    if declared is not None and str(declared) not in KINDS:
        raise ValueError(f"unknown server kind {declared!r}; one of: {', '.join(KINDS)}")
    if not api_base:
        return profile_of_kind("openai") if declared == "openai" else None
    base = api_base.rstrip("/")
    key = (base, str(declared) if declared is not None else None)
    with _lock:
        if key in _memo:
            profile = _memo[key]
        else:
            if fetch is None:
                headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
                fetch = functools.partial(_http_get, headers=headers)
            profile = _find(base, key[1], fetch, now)
            _memo[key] = profile
    template = params.get("chat_template")
    if isinstance(template, str) and template:  # the declared template wins
        profile = replace(profile or ServerProfile("unknown", detail="chat_template declared"),
                          chat_template=template, raw_template=True)
    return profile


def forget() -> None:
    """Drop the profiles found in this process (tests)."""
    with _lock:
        _memo.clear()


def _find(base: str, declared: str | None, fetch: Fetch,
          now: float | None) -> ServerProfile | None:
    now = time.time() if now is None else now
    cached = read_cached(base, now=now)
    if cached is not None and (declared is None or cached.kind == declared):
        return cached
    if declared is not None and (declared in ("openai", "litellm-proxy") or not probing_enabled()):
        return profile_of_kind(declared, detail="declared")
    if not probing_enabled():
        return None
    profile = probe(base, fetch=fetch, kind=declared)
    if profile is not None:
        write_cached(base, profile, now=now)
    elif declared is not None:
        return profile_of_kind(declared, detail="declared (the server did not answer)")
    return profile


def probe(base: str, *, fetch: Fetch, kind: str | None = None) -> ServerProfile | None:
    """Ask the server at ``base`` (an OpenAI-style base URL, usually ending in ``/v1``)
    what it is; None when it does not answer ``/models``. ``kind`` skips recognition
    (only the chat template is fetched)."""
    models = fetch(base + "/models")
    if models is None:
        return None
    root = base[:-3] if base.endswith("/v1") else base
    status, headers, body = models
    model_ids = [str(m.get("id")) for m in _data(body)]
    owners = {str(m.get("owned_by", "")).lower() for m in _data(body)}
    detail = ""
    if kind is None:
        kind, detail = _recognize(root, base, headers, owners, fetch)
        if kind is None:  # an error (a key missing, a fault) is not remembered
            return None if status >= 400 else ServerProfile("unknown", detail="not recognized")
    else:
        detail = "declared"
    profile = profile_of_kind(kind, detail=detail)
    if kind == "llama.cpp":
        props = fetch(root + "/props")
        if props is not None and isinstance(props[2], dict):
            p = props[2]
            profile = replace(profile, chat_template=p.get("chat_template") or None,
                              bos_token=str(p.get("bos_token") or ""),
                              eos_token=str(p.get("eos_token") or ""))
    elif kind == "llama-cpp-python":
        for model_id in model_ids:
            found = gguf_chat_template(Path(model_id))
            if found is not None:
                template, bos, eos = found
                profile = replace(profile, chat_template=template, bos_token=bos, eos_token=eos)
                break
    return profile


def _data(body: Any) -> list[dict[str, Any]]:
    data = body.get("data") if isinstance(body, dict) else None
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def _recognize(root: str, base: str, headers: Mapping[str, str], owners: set[str],
               fetch: Fetch) -> tuple[str | None, str]:
    if any(h.startswith("x-litellm") for h in headers):
        return "litellm-proxy", "x-litellm headers"
    if "api.openai.com" in base:
        return "openai", "the host"
    if "vllm" in owners:
        return "vllm", "owned_by vllm"
    if "llamacpp" in owners:
        return "llama.cpp", "owned_by llamacpp"
    if owners & {"library", "ollama"}:
        return "ollama", "owned_by library"
    spec = fetch(root + "/openapi.json")
    title = str(((spec[2] or {}).get("info") or {}).get("title", "")) if spec and isinstance(
        spec[2], dict) else ""
    if "llama.cpp python" in title.lower():
        return "llama-cpp-python", f"openapi title {title!r}"
    if "vllm" in title.lower():
        return "vllm", f"openapi title {title!r}"
    if "litellm" in title.lower():  # the proxy sends no x-litellm headers on /v1/models
        return "litellm-proxy", f"openapi title {title!r}"
    alive = fetch(root + "/health/liveliness")  # the proxy's (its first /openapi.json is slow)
    if alive and alive[0] == 200 and alive[2] == "I'm alive!":
        return "litellm-proxy", "/health/liveliness"
    props = fetch(root + "/props")
    if props and props[0] == 200 and isinstance(props[2], dict) and (
            "default_generation_settings" in props[2] or "chat_template" in props[2]):
        return "llama.cpp", "/props"
    version = fetch(root + "/api/version")
    if version and version[0] == 200 and isinstance(version[2], dict) and "version" in version[2]:
        return "ollama", "/api/version"
    info = fetch(root + "/info")
    if info and info[0] == 200 and isinstance(info[2], dict) and "model_id" in info[2]:
        return "tgi", "/info"
    version = fetch(root + "/version")
    if version and version[0] == 200 and isinstance(version[2], dict) and "version" in version[2]:
        return "vllm", "/version"
    return None, ""


def _http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], Any] | None:
    """GET ``url`` (through the proxy the environment names for it, as every request):
    (status, lower-cased headers, JSON body or None); None when the server cannot be
    reached or does not answer within :data:`PROBE_TIMEOUT`."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:
            status, headers, raw = response.status, dict(response.headers.items()), response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, dict(exc.headers.items()), b""
    except (OSError, ValueError):
        return None
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = _openapi_head(raw)
    return status, {k.lower(): v for k, v in headers.items()}, body


_OPENAPI_TITLE = re.compile(rb'^\s*\{\s*"openapi"\s*:\s*"[^"]*"\s*,\s*"info"\s*:\s*\{[^{}]*?'
                            rb'"title"\s*:\s*"((?:[^"\\]|\\.){0,200})"')


def _openapi_head(raw: bytes) -> dict[str, Any] | None:
    """The title of an OpenAPI document cut at the read limit (the LiteLLM proxy's is
    2 MB), as ``{"info": {"title": ...}}``; None for anything else."""
    found = _OPENAPI_TITLE.match(raw[:65536])
    if found is None:
        return None
    try:
        return {"info": {"title": json.loads(b'"' + found.group(1) + b'"')}}
    except ValueError:
        return None


# ------------------------------------------------------------------ the cache file


def cache_file() -> Path:
    """``$PFLOW_SERVER_CACHE``, else ``.pflow-cache/servers.json`` in the working directory."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.cwd() / ".pflow-cache" / "servers.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def read_cached(base: str, *, now: float | None = None, path: Path | None = None) -> ServerProfile | None:
    """The unexpired profile cached for ``base``, if any."""
    entry = _load(path or cache_file()).get("servers", {}).get(base.rstrip("/"))
    now = time.time() if now is None else now
    if not isinstance(entry, dict) or float(entry.get("expires", 0)) <= now:
        return None
    known = {f.name for f in fields(ServerProfile)}
    try:
        return ServerProfile(**{k: v for k, v in entry.get("profile", {}).items() if k in known})
    except TypeError:
        return None


def write_cached(base: str, profile: ServerProfile, *, now: float | None = None,
                 path: Path | None = None) -> None:
    """Keep ``profile`` for ``base`` (best effort: an unwritable folder is ignored).
    The entry also holds the capabilities the profile gives, for ``pflow check``."""
    path = path or cache_file()
    now = time.time() if now is None else now
    data = _load(path) or {"version": CACHE_VERSION, "servers": {}}
    known = profile.kind in _TABLE
    data.setdefault("servers", {})[base.rstrip("/")] = {
        "kind": profile.kind, "probed_at": now, "expires": now + PROFILE_TTL,
        "capabilities": profile.capabilities(Capabilities()).as_dict() if known else None,
        "profile": asdict(profile)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1).encode("utf-8"), prefix=".servers.")
    except OSError:
        return


# ------------------------------------------------------------------ GGUF metadata

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}
_WANTED = ("tokenizer.chat_template", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
           "tokenizer.ggml.tokens")


def gguf_chat_template(path: Path) -> tuple[str, str, str] | None:
    """(chat template, BOS token, EOS token) from a GGUF file's metadata, or None
    (no such file, not GGUF, no template)."""
    try:
        if not path.is_file():
            return None
        with path.open("rb") as f:
            meta = _gguf_metadata(f)
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        return None
    template = meta.get("tokenizer.chat_template")
    if not isinstance(template, str) or not template:
        return None
    tokens = meta.get("tokenizer.ggml.tokens") or []

    def token(key: str) -> str:
        i = meta.get(key)
        return str(tokens[i]) if isinstance(i, int) and 0 <= i < len(tokens) else ""

    return template, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")


def _gguf_metadata(f: BinaryIO) -> dict[str, Any]:
    """The wanted key/value pairs of a GGUF header (version 2 or 3). Raises
    ``ValueError`` for a file that is not GGUF."""
    if f.read(4) != b"GGUF":
        raise ValueError("not a GGUF file")
    (version,) = struct.unpack("<I", f.read(4))
    if version < 2:
        raise ValueError(f"GGUF version {version} is not supported")
    _tensors, count = struct.unpack("<QQ", f.read(16))
    out: dict[str, Any] = {}
    for _ in range(count):
        key = _gguf_string(f)
        (kind,) = struct.unpack("<I", f.read(4))
        value = _gguf_value(f, kind, keep=key in _WANTED)
        if key in _WANTED:
            out[key] = value
        if len(out) == len(_WANTED):
            break
    return out


def _gguf_string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n).decode("utf-8")


def _gguf_value(f: BinaryIO, kind: int, *, keep: bool) -> Any:
    if kind in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == 8:
        if keep:
            return _gguf_string(f)
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(n, 1)
        return None
    if kind == 9:
        item, n = struct.unpack("<IQ", f.read(12))
        if item in _GGUF_SCALARS and not keep:
            f.seek(n * struct.calcsize(_GGUF_SCALARS[item]), 1)
            return None
        return [_gguf_value(f, item, keep=keep) for _ in range(n)]
    raise ValueError(f"unknown GGUF value type {kind}")
