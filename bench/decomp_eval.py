"""Decomposed Prompting against chain of thought on k-th letter concatenation.

Generates N questions (seeded) — 3 to 5 names from the lists below, a position 1..5
or `last`, a space or a semicolon as the delimiter:

    Take the letters at position 3 of the words in "Odile Brannock Tamsin" and
    concatenate them using a semicolon.              (gold: "i;a;m")

and scores exact match for
  (a) `decompose concat` — the few-shot file examples/decomp/prompts/letter_concat.txt,
      the handlers of std.decomp (split, letter, merge), one model call per step;
  (b) `prompt cot` — one chain-of-thought call over the same three worked examples,
      the answer read after "So the answer is".
It prints both accuracies, the model calls, tokens and wall time side by side.

    python bench/decomp_eval.py --model local/smollm2 -n 50      # offline, the embedded model
    python bench/decomp_eval.py --model openai/my-model --api-base http://127.0.0.1:8000/v1 \\
        --completion -n 100                                       # any OpenAI-compatible server
    python bench/decomp_eval.py --oracle -n 200                   # must score 100% on both
    python bench/decomp_eval.py --json ...                        # the numbers as JSON

`--oracle` replaces the model with a scripted one that writes the correct decomposer
lines (and a correct chain of thought), read from the prompt it is sent: a harness
that measured anything but the answers would not score 100% with it.  The response
cache is off unless `--cache`; a failed run (a malformed line, a limit) counts as wrong.
On `local/smollm2` the questions run one at a time and llama.cpp reuses the evaluated
prompt prefix between calls (`--no-reuse-kv` turns that off); `-n 50` takes about 3 to 5
minutes on two CPU cores, most of it the chain-of-thought generations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FEWSHOT = "../examples/decomp/prompts/letter_concat.txt"  # relative to this folder

# Our own name lists (every name has at least five letters, so positions 1..5 exist).
FIRST = ("Odile Tamsin Jorah Hester Marlo Ebony Caspar Idris Linnea Rufus Saoirse Thaddeus "
         "Wilhelmina Bertram Cosima Dmitri Ephraim Fenella Gideon Honora Isolde Jasper Kerensa "
         "Leander Mirela Nikolai Oswin Petra Quentin Rosalind Sylvan Tobias Ursula Viggo Winona "
         "Xavier Yvaine Zenobia Anselm Briony").split()
LAST = ("Brannock Quillfeather Ostrander Velasquez Harrowgate Kettering Lindqvist Marchetti "
        "Nakamura Oyelaran Pemberton Rasmussen Saltonstall Thistlewood Underhill Vanterpool "
        "Whitcombe Yamamoto Zielinski Abernathy Blackwood Castellano Drummond Eriksson Fairweather "
        "Galloway Hollister Ibarra Jankowski Kowalczyk").split()
SEPARATORS = {" ": "a space", ";": "a semicolon"}
COT_EXAMPLES = [
    ("Grace Brewster Hopper", 1, " "),
    ("Ada Byron Lovelace Parker", "last", ";"),
    ("Alan Mathison Turing", 3, " "),
]


@dataclass(frozen=True)
class Question:
    words: tuple[str, ...]
    position: int | str  # 1..5 or "last"
    sep: str

    @property
    def question(self) -> str:
        where = ("the last letters" if self.position == "last"
                 else f"the letters at position {self.position}")
        return (f'Take {where} of the words in "{" ".join(self.words)}" and concatenate them '
                f"using {SEPARATORS[self.sep]}.")

    def letters(self) -> list[str]:
        return [w[-1] if self.position == "last" else w[int(self.position) - 1]
                for w in self.words]

    @property
    def gold(self) -> str:
        return self.sep.join(self.letters())


def make_questions(n: int, seed: int = 0) -> list[Question]:
    """``n`` distinct questions, the same for the same seed."""
    rng = random.Random(seed)
    pool = FIRST + LAST
    out: list[Question] = []
    seen: set[str] = set()
    while len(out) < n:
        q = Question(tuple(rng.sample(pool, rng.randint(3, 5))),
                     rng.choice([1, 2, 3, 4, 5, "last"]), rng.choice(list(SEPARATORS)))
        if q.question not in seen:
            seen.add(q.question)
            out.append(q)
    return out


def parse_question(text: str) -> Question:
    """Read a generated question back (the oracle's side: it sees only the prompt)."""
    words = re.search(r'words in "([^"]*)"', text).group(1).split()
    pos = re.search(r"at position (\d+)", text)
    sep = ";" if "using a semicolon" in text else " "
    return Question(tuple(words), int(pos.group(1)) if pos else "last", sep)


def chain_of_thought(q: Question) -> str:
    """The worked reasoning for ``q``, ending with the answer (the CoT demonstrations)."""
    what = "last letter" if q.position == "last" else f"letter {q.position}"
    steps = " ".join(f'The {what} of "{w}" is "{c}".' for w, c in zip(q.words, q.letters(),
                                                                      strict=True))
    quoted = ", ".join(f'"{w}"' for w in q.words)
    letters = ", ".join(f'"{c}"' for c in q.letters())
    return (f"The words are {quoted}. {steps} Concatenating {letters} using "
            f"{SEPARATORS[q.sep]} gives \"{q.gold}\". So the answer is {q.gold}")


def cot_template() -> str:
    demos = []
    for words, pos, sep in COT_EXAMPLES:
        q = Question(tuple(words.split()), pos, sep)
        demos.append(f"Q: {q.question}\nA: {chain_of_thought(q)}")
    return "\n\n".join(demos) + "\n\nQ: {{ question }}\nA:"


def program_text(model: str, api_base: str | None, api_key_env: str | None,
                 completion: bool) -> str:
    params = ["temperature: 0"]
    if api_base:
        params.append(f"api_base: {json.dumps(api_base)}")
    if api_key_env:
        params.append(f"api_key_env: {json.dumps(api_key_env)}")
    if completion:
        params.append("completion: true")
    return f'''
import std.decomp

model default = {json.dumps(model)} {{ {", ".join(params)} }}

decompose concat(question: str) -> str {{
  handlers {{ split: decomp.split_words_q, letter: decomp.letter_at_q, merge: decomp.merge_q }}
  prompt "{FEWSHOT}"
  params {{ max_tokens: 64 }}
  max_steps 5
  max_depth 1
}}

prompt cot(question: str) -> str {{
  params {{ max_tokens: 160 }}
  user """
{cot_template()}
  """
}}
'''


_ANSWER = re.compile(r"answer is:?\s*(.*)", re.I)


def cot_answer(text: str) -> str:
    """The answer a chain-of-thought reply gives: after the first "the answer is", up to
    the end of that line or sentence (else the reply's last line), without quotes."""
    m = _ANSWER.search(text)
    line = m.group(1) if m else (text.strip().splitlines() or [""])[-1]
    line = (line.strip().splitlines() or [""])[0].split(". ")[0]
    return line.strip().strip('"').rstrip(".").strip().strip('"')


# ------------------------------------------------------------------ models


class Counting:
    """Wraps a backend and counts its calls and tokens per handler."""

    def __init__(self, inner: Any, stats: Counter[str]) -> None:
        self.inner = inner
        self.stats = stats
        self.model_id = inner.model_id
        self.capabilities = inner.capabilities

    def _count(self, params: Any, reply: Any) -> None:
        handler = str(params.extra.get("pflow_handler", "?"))
        self.stats[f"{handler}.calls"] += 1
        self.stats[f"{handler}.prompt_tokens"] += reply.usage.prompt_tokens
        self.stats[f"{handler}.completion_tokens"] += reply.usage.completion_tokens

    async def chat(self, messages: list[Any], params: Any) -> Any:
        reply = await self.inner.chat(messages, params)
        self._count(params, reply)
        return reply

    async def complete(self, prefix: str, params: Any) -> Any:
        reply = await self.inner.complete(prefix, params)
        self._count(params, reply)
        return reply

    def stream(self, messages: Any, prefix: Any, params: Any) -> AsyncIterator[Any]:
        return self.inner.stream(messages, prefix, params)

    async def score(self, prefix: str, continuations: list[str]) -> Any:
        return await self.inner.score(prefix, continuations)

    async def embed(self, texts: list[str]) -> Any:
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Oracle:
    """A scripted model that answers correctly, from the prompt alone: the decomposer's
    next line for the question after the last ``QC:``, and the chain of thought for the
    question after the last ``Q:``."""

    model_id = "oracle"

    def __init__(self) -> None:
        from promptflow_dsl.models.base import Capabilities

        self.capabilities = Capabilities(chat=True, completion=True, streaming=False)

    @staticmethod
    def next_line(prefix: str) -> str:
        qc = prefix.rindex("QC: ")
        q = parse_question(prefix[qc:].splitlines()[0])
        done = prefix[qc:].count("\nQS:") - 1  # the last QS: is the one asked for
        pos = q.position
        lines = [f'[split] What are the words in "{" ".join(q.words)}"?',
                 f'(foreach) [letter] What is letter {pos} of "#1"?',
                 f"[merge] Concatenate #2 using {SEPARATORS[q.sep]}.", "[EOQ]"]
        return " " + lines[done] + "\nA:"  # as a model would: a space, then past the stop

    def _reply(self, prompt: str, text: str) -> Any:
        from promptflow_dsl.models.base import Reply
        from promptflow_dsl.models.emulate import word_usage

        return Reply(text, self.model_id, word_usage(prompt, text), "stop")

    async def complete(self, prefix: str, params: Any) -> Any:
        return self._reply(prefix, self.next_line(prefix))

    async def chat(self, messages: list[Any], params: Any) -> Any:
        text = messages[-1].content
        q = parse_question(text[text.rindex("Q: "):])
        return self._reply("\n".join(m.content for m in messages), " " + chain_of_thought(q))

    async def stream(self, messages: Any, prefix: Any, params: Any) -> AsyncIterator[Any]:
        from promptflow_dsl.models.emulate import stream_via_chat

        async for event in stream_via_chat(self, messages, prefix, params):
            yield event

    async def score(self, prefix: str, continuations: list[str]) -> Any:
        from promptflow_dsl.models.emulate import no_scoring

        raise no_scoring(self.model_id)

    async def embed(self, texts: list[str]) -> Any:
        from promptflow_dsl.models.emulate import no_embeddings

        raise no_embeddings(self.model_id)

    async def aclose(self) -> None:
        return None


# ------------------------------------------------------------------ the run


async def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run both handlers on every question in one run context (one set of backends, so
    concurrent questions share connections), and score them."""
    import promptflow_dsl as pf
    from promptflow_dsl.runtime import RunConfig, RunError
    from promptflow_dsl.runtime.cache import CacheMode, ResponseCache, default_cache_dir
    from promptflow_dsl.runtime.context import RunContext
    from promptflow_dsl.runtime.trace import TraceRecorder

    questions = make_questions(args.n, args.seed)
    program = pf.loads(program_text(args.model, args.api_base, args.api_key_env,
                                    args.completion), name="decomp_eval.pflow", base_dir=HERE)
    stats: Counter[str] = Counter()
    config = RunConfig(cache=CacheMode.DEFAULT if args.cache else CacheMode.OFF,
                       write_trace=False, wrap=lambda name, b: Counting(b, stats))
    if args.oracle:
        config.backends["default"] = Counting(Oracle(), stats)
        config.cache = CacheMode.OFF
    elif args.model == "local/smollm2" and not args.no_reuse_kv:
        # The decomposer's prompts share long prefixes (the few-shot text, the steps so
        # far): let llama.cpp reuse the evaluated prefix (see models/local.py).
        from promptflow_dsl.models.local import LocalBackend

        config.backends["default"] = Counting(LocalBackend(reuse_kv=True), stats)
    cache = ResponseCache(default_cache_dir(HERE.parent)) if args.cache else None
    ctx = RunContext(program, config, TraceRecorder("decomp_eval", "bench"), cache)
    limit = asyncio.Semaphore(args.concurrency)
    report: dict[str, Any] = {"model": "oracle" if args.oracle else args.model, "n": args.n,
                              "seed": args.seed}

    async def one(handler: str, q: Question) -> tuple[str, str | None]:
        async with limit:
            try:
                value = await ctx.call(program.handler(handler).key, {"question": q.question},
                                       call_span=None, caller=None)
            except RunError as exc:
                return "", exc.message
        return (cot_answer(str(value)) if handler == "cot" else str(value).strip()), None

    try:
        for handler, label in (("concat", "decompose"), ("cot", "cot")):
            started = time.perf_counter()
            results = await asyncio.gather(*(one(handler, q) for q in questions))
            wall = time.perf_counter() - started
            right = sum(pred == q.gold for (pred, _), q in zip(results, questions, strict=True))
            report[label] = {
                "accuracy": right / len(questions), "correct": right,
                "failed_runs": sum(err is not None for _, err in results),
                "model_calls": stats[f"{handler}.calls"],
                "prompt_tokens": stats[f"{handler}.prompt_tokens"],
                "completion_tokens": stats[f"{handler}.completion_tokens"],
                "wall_s": round(wall, 2),
                "samples": [{"question": q.question, "gold": q.gold, "predicted": pred,
                             "error": err}
                            for (pred, err), q in list(zip(results, questions, strict=True))
                            [: args.samples]],
            }
    finally:
        await ctx.aclose()
    return report


def render(report: dict[str, Any]) -> str:
    d, c = report["decompose"], report["cot"]
    n = report["n"]
    rows = [
        ("accuracy (exact match)", f"{d['correct']}/{n} = {d['accuracy']:.0%}",
         f"{c['correct']}/{n} = {c['accuracy']:.0%}"),
        ("model calls", f"{d['model_calls']} ({d['model_calls'] / n:.1f}/question)",
         f"{c['model_calls']} ({c['model_calls'] / n:.1f}/question)"),
        ("tokens (prompt+completion)", f"{d['prompt_tokens']}+{d['completion_tokens']}",
         f"{c['prompt_tokens']}+{c['completion_tokens']}"),
        ("failed runs", str(d["failed_runs"]), str(c["failed_runs"])),
        ("wall time", f"{d['wall_s']:.1f} s", f"{c['wall_s']:.1f} s"),
    ]
    lines = [f"k-th letter concatenation: {n} questions (seed {report['seed']}), "
             f"model {report['model']}", "",
             f"{'':28}{'decompose':>26}{'chain of thought':>26}"]
    lines += [f"{name:28}{a:>26}{b:>26}" for name, a, b in rows]
    for label, r in (("decompose", d), ("chain of thought", c)):
        wrong = [s for s in r["samples"] if s["predicted"] != s["gold"]]
        if wrong:
            lines += ["", f"{label}: first wrong answers"]
            lines += [f"  gold {s['gold']!r}  got {s['predicted']!r}"
                      + (f"  ({s['error'][:100]})" if s["error"] else "") for s in wrong[:5]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50, help="number of questions (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="local/smollm2", help="a litellm model id or local/smollm2")
    ap.add_argument("--api-base", help="the URL of an OpenAI-compatible server")
    ap.add_argument("--api-key-env", help="the environment variable that holds the API key")
    ap.add_argument("--completion", action="store_true",
                    help="the server has a raw completion endpoint (used by the decomposer)")
    ap.add_argument("--oracle", action="store_true",
                    help="a scripted model that writes the correct lines: must score 100%%")
    ap.add_argument("--concurrency", type=int,
                    help="questions in flight at once (default 1 for local/smollm2, else 8)")
    ap.add_argument("--cache", action="store_true", help="use the response cache")
    ap.add_argument("--no-reuse-kv", action="store_true",
                    help="local/smollm2: evaluate every prompt from scratch (slower)")
    ap.add_argument("--samples", type=int, default=50, help="questions kept in the JSON report")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if args.concurrency is None:
        args.concurrency = 1 if args.model == "local/smollm2" and not args.oracle else 8
    if args.n < 1 or args.concurrency < 1:
        ap.error("-n and --concurrency must be at least 1")
    report = asyncio.run(evaluate(args))
    print(json.dumps(report, indent=1) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
