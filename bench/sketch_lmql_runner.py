"""Run LMQL's queries on a GGUF file with LMQL's own ``local:llama.cpp:`` backend.

This script runs in *LMQL's* interpreter (a separate venv with ``lmql``, ``llama-cpp-python``,
``transformers``, ``tokenizers`` and ``gguf``), never in pflow's; ``bench/sketch_reference.py
--lmql-python`` starts it once to build and check the tokenizer, then once per query (a
fresh process each time: after a failed generation LMQL's query waits forever, and the
bench ends it after its time limit).  It reads a JSON job on stdin: ``gguf``, ``tokenizer``
(a directory, or null to build one), ``check_texts`` (texts to compare tokenizations on),
and for a query ``query``, ``n_ctx``, ``lists`` (see below) and ``calls_log`` (a file that
gets one line per backend ``generate`` call: its prompt length in tokens).  It prints one
line ``sketch-lmql-report: {JSON}``: ``versions``, ``tokenizer``, ``tokenizer_check``, ``shim``, ``variables``,
``text`` (LMQL's filled prompt), ``seconds`` or ``error``.  A job with ``greedy`` (a list of
``{"text", "bos", "n"}``) also gets plain llama.cpp greedy continuations (:func:`greedy`),
which the bench's ``--explain`` uses to tell the model's own choice from LMQL's masks.

Tokenizer: LMQL tokenizes prompts itself, with a Hugging Face tokenizer.  Unless one is
given, it is built from the GGUF file's own vocabulary and merges (:func:`build_tokenizer`:
byte-level BPE, digits split one by one as llama.cpp's ``smollm`` pre-tokenizer does, the
GGUF's BOS/EOS tokens) and checked against llama.cpp's own tokenization of every query's
text (and a few more): the ids must be identical (``tokenizer_check``).

Glue, the only code here that is not LMQL's: with llama-cpp-python 0.3 or later,
:func:`shim_generate_for_03` gives ``Llama.generate`` the 0.2 series' contract (a single
logits processor; the step's *processed* scores handed to the ``stopping_criteria``
callback LMQL reads them from).  With the 0.2 series nothing is patched.  LMQL's
decoding, its constraint masks and its backend are LMQL's code unchanged
(:func:`count_generate_calls` only counts the backend's calls).

A query inside a loop appends each value to a list passed in as an input (``lists``:
LMQL's result keeps only a variable's last value); the lists are returned with the variables.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPORT = "sketch-lmql-report: "  # starts the report's line (LMQL prints to stdout too)


def build_tokenizer(gguf_path: str, out_dir: Path) -> Path:
    """Write a Hugging Face tokenizer (``tokenizer.json``, ``tokenizer_config.json``) made
    from the GGUF's vocabulary to ``out_dir``; returns ``out_dir``.

    Raises ValueError when the GGUF's tokenizer is not byte-level BPE (``gpt2``).
    """
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(gguf_path)

    def field(key: str) -> Any:
        f = reader.fields[key]
        if len(f.types) > 1:  # an array: strings or numbers
            if f.types[1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [int(f.parts[i][0]) for i in f.data]
        value = f.parts[f.data[0]]
        return bytes(value).decode("utf-8") if f.types[0] == gguf.GGUFValueType.STRING else int(value[0])

    if field("tokenizer.ggml.model") != "gpt2":
        raise ValueError(f"{gguf_path}: tokenizer {field('tokenizer.ggml.model')!r} is not byte-level BPE")
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    bos, eos = field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id")
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    control = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types, strict=True) if ty == control])
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": tokens[bos], "eos_token": tokens[eos],
        "add_bos_token": False, "model_max_length": 8192}))
    return out_dir


def check_tokenizer(tokenizer_dir: str, gguf_path: str, texts: list[str]) -> dict[str, Any]:
    """Compare the Hugging Face tokenizer's ids with llama.cpp's on ``texts``."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocab = Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    bad = []
    for text in texts:
        a = hf(text, add_special_tokens=False)["input_ids"]
        b = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if a != b:
            bad.append({"text": text[:80], "hf": a[:20], "llama.cpp": b[:20]})
    return {"texts": len(texts), "identical": len(texts) - len(bad), "mismatches": bad[:3]}


def shim_generate_for_03() -> str | None:
    """For llama-cpp-python >= 0.3: give ``Llama.generate`` the 0.2 series' contract, which
    LMQL's backend is written against.  Returns a description of the patch, or None (0.2).

    Two differences matter.  0.3 takes a *list* of logits processors where LMQL passes one
    callable; and in 0.2 the processed logits were written back into ``Llama.scores``, so
    the ``stopping_criteria`` callback, through which LMQL reads each step's scores, saw
    the constraint-masked log-probabilities, while 0.3 applies processors to a copy and
    the callback sees the raw logits (LMQL's ``beam_var`` then ranks tokens its masks
    forbid).  The patch wraps the callable in a list and hands the callback the
    processor's output of the same step.
    """
    import llama_cpp

    major, minor = (int(x) for x in llama_cpp.__version__.split(".")[:2])
    if (major, minor) < (0, 3):
        return None
    original = llama_cpp.Llama.generate

    def generate(self: Any, tokens: Any, logits_processor: Any = None, stopping_criteria: Any = None,
                 **kwargs: Any) -> Any:
        last: dict[str, Any] = {}
        if callable(logits_processor) and not isinstance(logits_processor, list):
            one = logits_processor

            def recorded(input_ids: Any, scores: Any) -> Any:
                last["scores"] = one(input_ids, scores)
                return last["scores"]

            logits_processor = [recorded]
        if stopping_criteria is not None:
            criteria = stopping_criteria

            def stopping(input_ids: Any, scores: Any) -> Any:
                return criteria(input_ids, last.pop("scores", scores))

            stopping_criteria = stopping
        kwargs.update(logits_processor=logits_processor, stopping_criteria=stopping_criteria)
        return original(self, tokens, **kwargs)

    setattr(llama_cpp.Llama, "generate", generate)  # noqa: B010 (a method replaced on purpose)
    return ("Llama.generate (llama-cpp-python >= 0.3) takes LMQL's logits processor as a one-item "
            "list and passes its output, as 0.2 did, to the stopping_criteria callback")


def count_generate_calls(log: Path) -> None:
    """Append one line per backend ``generate`` call (its prompt length) to ``log``.

    LMQL runs the model in a forked worker process, so the count goes through a file.
    """
    from lmql.models.lmtp.backends import llama_cpp_model

    original = llama_cpp_model.LlamaCppModel.generate

    def counted(self: Any, input_ids: Any, *args: Any, **kwargs: Any) -> Any:
        with log.open("a") as f:
            f.write(f"{int(input_ids.size)}\n")
        return original(self, input_ids, *args, **kwargs)

    llama_cpp_model.LlamaCppModel.generate = counted


def greedy(gguf_path: str, n_ctx: int, prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain llama.cpp greedy continuations, no LMQL: for each ``{"text", "bos", "n"}``, the
    prompt's token ids (the BOS token first when ``bos``), the ``n`` tokens greedy decoding
    writes after them, and the three highest logits of the first step.  Each prompt is
    evaluated whole: llama.cpp's logits move by a few hundredths with how a prompt is split
    into batches (e.g. a prefix kept from the previous call), enough to flip near-ties."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=gguf_path, n_ctx=n_ctx, logits_all=True, verbose=False)
    out = []
    for p in prompts:
        ids = ([llm.token_bos()] if p["bos"] else []) + llm.tokenize(p["text"].encode("utf-8"), add_bos=False)
        llm.reset()  # a whole-prompt evaluation: no prefix kept from the previous prompt
        tokens = [t for _, t in zip(range(p["n"]), llm.generate(ids, temp=0.0), strict=False)]
        first = np.array(llm.scores[len(ids) - 1])
        top = [(llm.detokenize([int(t)]).decode("utf-8", "replace"), round(float(first[t]), 3))
               for t in np.argsort(-first)[:3]]
        out.append({**p, "ids": ids, "continuation": llm.detokenize(tokens).decode("utf-8", "replace"),
                    "top3": top})
    return out


def main() -> int:
    job = json.loads(sys.stdin.read())
    import llama_cpp
    import lmql

    report: dict[str, Any] = {"versions": {"lmql": getattr(lmql, "__version__", "?"),
                                           "llama-cpp-python": llama_cpp.__version__}}
    tokenizer = job.get("tokenizer")
    if not tokenizer and (job.get("query") or job.get("check_texts")):
        tokenizer = str(build_tokenizer(job["gguf"], Path(tempfile.mkdtemp(prefix="lmql-tok-"))))
    report["tokenizer"] = tokenizer
    if job.get("check_texts"):
        report["tokenizer_check"] = check_tokenizer(tokenizer, job["gguf"], job["check_texts"])
    if job.get("greedy"):
        report["greedy"] = greedy(job["gguf"], job.get("n_ctx", 2048), job["greedy"])
    if job.get("query"):
        report["shim"] = shim_generate_for_03()
        count_generate_calls(Path(job["calls_log"]))
        model = lmql.model("local:llama.cpp:" + job["gguf"], tokenizer=tokenizer, n_ctx=job["n_ctx"])
        lists: dict[str, list[Any]] = {n: [] for n in job.get("lists", [])}
        t0 = time.perf_counter()
        try:
            r = lmql.run_sync(job["query"], model=model, **lists)
            r = r[0] if isinstance(r, list) else r
            report.update(variables={**r.variables, **lists}, text=r.prompt)
        except Exception as exc:  # reported as the query's result
            report["error"] = f"{type(exc).__name__}: {exc}"[:400]
        report["seconds"] = round(time.perf_counter() - t0, 2)
    print(REPORT + json.dumps(report, default=str), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # LMQL's model process and event loop would otherwise linger at exit
