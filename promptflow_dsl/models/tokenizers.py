"""Counting tokens without calling a model: what ``pflow estimate`` counts inputs with.

:func:`tokenizer_for` picks, for a model id:

* **tiktoken** for OpenAI models (``openai/…``, ``azure/…``,
  ``text-completion-openai/…`` and bare names such as ``gpt-4o-mini``) whose name
  tiktoken maps to an encoding (``tiktoken.encoding_name_for_model``: ``o200k_base``
  for gpt-4o, gpt-4.1, gpt-5 and the o-series, ``cl100k_base`` for gpt-4 and
  gpt-3.5). tiktoken downloads its encoding files on first use; here they are only
  ever read from disk, never downloaded: from tiktoken's own cache
  (``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR``, else ``data-gym-cache`` in the
  temporary folder) or from the copies litellm ships (``o200k_base``, ``cl100k_base``,
  ``p50k_base``), each checked against tiktoken's published SHA-256 first. An
  encoding found nowhere falls back to the approximation, and the tokenizer says so.
  A chat is counted with OpenAI's published rule: 3 tokens per message, plus its
  role and content, plus 3 that prime the reply.
* **the embedded model's own vocabulary** for ``local/smollm2``: llama.cpp loads only
  the vocabulary of the gguf (``Llama(vocab_only=True)``, about 0.4 s, no weights),
  and a chat is rendered with the model's chat template and tokenized exactly as
  :class:`~promptflow_dsl.models.local.LocalBackend` does, so the count is the
  ``prompt_tokens`` the model would report.
* **an approximation** otherwise: one token per 4 characters (rounded up), and 4
  tokens of overhead per chat message plus 3 for the reply (:data:`CHARS_PER_TOKEN`).

Nothing here calls a model or the network. Tokenizers are made once per process and
model family (:func:`tokenizer_for` caches them).
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import math
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .base import Message

__all__ = ["CHARS_PER_TOKEN", "ApproxTokenizer", "Tokenizer", "tokenizer_for"]

#: the approximation: characters per token (English text on BPE vocabularies is 3.5–4.5)
CHARS_PER_TOKEN = 4
#: the approximation's overhead per chat message, and for the reply's start
APPROX_MESSAGE_TOKENS = 4
APPROX_REPLY_TOKENS = 3

_OPENAI_PROVIDERS = frozenset({"openai", "azure", "text-completion-openai"})
_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# encoding -> (file it is built from, that file's SHA-256 as tiktoken publishes it)
_TIKTOKEN_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "o200k_harmony": ("o200k_base",
                      "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": ("cl100k_base",
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    "p50k_base": ("p50k_base", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),
    "p50k_edit": ("p50k_base", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),
    "r50k_base": ("r50k_base", "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"),
}


class Tokenizer(Protocol):
    """Counts tokens the way one model family does.

    ``name`` says which tokenizer it is (``tiktoken o200k_base``); ``exact`` is false
    for the approximation; ``note`` says why a better tokenizer was not available
    (``""`` when nothing is missing).
    """

    name: str
    exact: bool
    note: str

    def count(self, text: str) -> int:
        """Tokens of ``text`` as a raw completion prompt or a reply."""
        ...

    def count_chat(self, messages: list[Message]) -> int:
        """Prompt tokens of a chat request with ``messages`` (template overhead included)."""
        ...


@dataclass
class ApproxTokenizer:
    """One token per :data:`CHARS_PER_TOKEN` characters (rounded up)."""

    note: str = ""
    name: str = f"approximation ({CHARS_PER_TOKEN} characters per token)"
    exact: bool = False

    def count(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def count_chat(self, messages: list[Message]) -> int:
        return APPROX_REPLY_TOKENS + sum(APPROX_MESSAGE_TOKENS + self.count(m.content)
                                         for m in messages)


@dataclass
class TiktokenTokenizer:
    """An OpenAI encoding; chats by OpenAI's published counting rule."""

    encoding: Any
    name: str = ""
    exact: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"tiktoken {self.encoding.name}"

    def count(self, text: str) -> int:
        return len(self.encoding.encode(text, disallowed_special=()))

    def count_chat(self, messages: list[Message]) -> int:
        return 3 + sum(3 + self.count(m.role) + self.count(m.content) for m in messages)


@dataclass
class LlamaVocabTokenizer:
    """The embedded model's vocabulary; chats rendered with its own chat template."""

    llama: Any
    render: Any  # the chat formatter of models.local
    name: str = "local/smollm2 vocabulary (llama.cpp)"
    exact: bool = True
    note: str = ""

    def count(self, text: str) -> int:
        with _LOCK:
            return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_chat(self, messages: list[Message]) -> int:
        with _LOCK:
            prompt = self.render(messages=[m.as_dict() for m in messages]).prompt
            return len(self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))


_LOCK = threading.RLock()
_CACHE: dict[str, Tokenizer] = {}


def tokenizer_for(model_id: str, params: Mapping[str, Any] | None = None) -> Tokenizer:
    """The tokenizer for ``model_id`` (see the module docstring). Never raises and never
    touches the network; without a better one it returns an :class:`ApproxTokenizer`
    whose ``note`` says why."""
    from .local import MODEL_ID as LOCAL_ID

    if model_id == LOCAL_ID:
        return _cached("local", _local_tokenizer)
    encoding = _openai_encoding_name(model_id)
    if encoding is None:
        return _cached("approx", ApproxTokenizer)
    return _cached(f"tiktoken:{encoding}", lambda: _tiktoken_tokenizer(encoding))


def _cached(key: str, make: Any) -> Tokenizer:
    with _LOCK:
        tok = _CACHE.get(key)
        if tok is None:
            tok = _CACHE[key] = make()
        return tok


def _openai_encoding_name(model_id: str) -> str | None:
    """The tiktoken encoding of an OpenAI model id, or None (not OpenAI, or unknown to
    tiktoken, or tiktoken not installed)."""
    provider, _, name = model_id.rpartition("/")
    if provider and provider.lower() not in _OPENAI_PROVIDERS:
        return None
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return None
    try:
        return str(encoding_name_for_model(name))
    except KeyError:
        return None


def _tiktoken_dirs() -> list[Path]:
    """Folders that may hold tiktoken's encoding files, in the order they are tried."""
    dirs = [os.environ.get("TIKTOKEN_CACHE_DIR"), os.environ.get("DATA_GYM_CACHE_DIR"),
            os.path.join(tempfile.gettempdir(), "data-gym-cache")]
    out = [Path(d) for d in dirs if d]
    try:  # litellm's copies, found without importing litellm (its import takes seconds)
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        out.append(Path(loc) / "litellm_core_utils" / "tokenizers")
    return out


def _tiktoken_file(encoding: str) -> Path | None:
    """An on-disk copy of the file ``encoding`` is built from whose SHA-256 matches."""
    known = _TIKTOKEN_FILES.get(encoding)
    if known is None:
        return None
    base, digest = known
    key = hashlib.sha1(_TIKTOKEN_URL.format(base).encode()).hexdigest()
    for folder in _tiktoken_dirs():
        path = folder / key
        try:
            if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                return path
        except OSError:
            continue
    return None


def _tiktoken_tokenizer(encoding: str) -> Tokenizer:
    path = _tiktoken_file(encoding)
    if path is None:
        return ApproxTokenizer(note=f"tiktoken's {encoding} file is not on this machine (tiktoken "
                                    f"downloads it once, with network: python -c \"import tiktoken; "
                                    f"tiktoken.get_encoding('{encoding}')\")")
    import tiktoken

    # tiktoken reads TIKTOKEN_CACHE_DIR when it loads; the file there is present and
    # verified, so it is read and nothing is downloaded. The variable is restored at once.
    with _LOCK:
        saved = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(path.parent)
        try:
            enc = tiktoken.get_encoding(encoding)
        except Exception as exc:  # noqa: BLE001 - any failure: the approximation
            return ApproxTokenizer(note=f"tiktoken could not load {encoding}: {exc}")
        finally:
            if saved is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return TiktokenTokenizer(enc)


def _local_tokenizer() -> Tokenizer:
    from .local import _capture_fd2, _chat_formatter, find_gguf

    path = find_gguf()
    if path is None or not path.is_file():
        return ApproxTokenizer(note="the local/smollm2 model file is not installed")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as LocalBackend does, before the import
    try:
        import llama_cpp
    except ImportError:
        return ApproxTokenizer(note="llama-cpp-python is not installed")

    def load() -> Any:
        return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)

    try:
        llama, _ = _capture_fd2(load)  # llama.cpp prints on the C stderr even when quiet
        render, _ = _chat_formatter(llama)
    except Exception as exc:  # noqa: BLE001 - a broken file or library: the approximation
        return ApproxTokenizer(note=f"could not load the local/smollm2 vocabulary: {exc}")
    # freed before the interpreter tears llama_cpp down (its finalizer fails after that)
    atexit.register(llama.close)
    return LlamaVocabTokenizer(llama, render)
