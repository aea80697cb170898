"""Prompt sketching benchmark: an unconstrained prompt vs sketches with a choice hole.

On the questions in ``bench/data/sketch/questions.jsonl`` (30 yes/no and 14
multiple-choice A-D, written for this benchmark), every question is answered by:

* ``prompt``       — a plain prompt ("Answer the question with yes or no"); the reply
  is valid only when its first word is one of the answers (case and punctuation
  ignored) or, for multiple choice, exactly one option's text, and *exact* when it is
  nothing but an answer (``"Yes."``, ``"B"``, ``"B) blue"``);
* ``sketch seq``   — a sketch whose answer is a choice hole, ``decoder sequential``;
* ``sketch seq+r`` — the same with a reasoning hole before the answer
  (``[reasoning stop="\\n" max_tokens=40]``), ``decoder sequential``;
* ``sketch beam2+r`` — the reasoning sketch with ``decoder beam(2)``.

It reports, side by side, the rate of invalid answers, the rate of replies that
are more than an answer (a parser would have to dig the answer out), the accuracy
(an invalid answer counts as wrong), the wall time and the tokens of each.  On a model with
token log-probabilities the choice hole is decided by scoring each option, so a
sketch answer is never invalid; on other models the runtime validates and
re-asks (``retries 2``), and a hole that never validates counts as invalid.

Usage::

    python bench/sketch_eval.py                                  # local/smollm2, offline
    python bench/sketch_eval.py --model openai/gpt-4o-mini       # any litellm model
    python bench/sketch_eval.py --model openai/m --api-base http://127.0.0.1:8000/v1 --completion
    python bench/sketch_eval.py --limit 5 --variants prompt,seq --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "sketch" / "questions.jsonl"

VARIANTS = {  # name -> (label, yes/no handler, multiple-choice handler)
    "prompt": ("prompt (unconstrained)", "yn_prompt", "mc_prompt"),
    "seq": ("sketch sequential", "yn_seq", "mc_seq"),
    "seq_r": ("sketch sequential + reasoning", "yn_seq_r", "mc_seq_r"),
    "beam_r": ("sketch beam(2) + reasoning", "yn_beam_r", "mc_beam_r"),
}

PROGRAM = '''
model default = {model} {params}

prompt yn_prompt(question: str) -> str = """
  Answer the question with yes or no.

  Question: {{{{ question }}}}
"""

prompt mc_prompt(question: str, options: str) -> str = """
  Answer the multiple-choice question with the letter of the correct option (A, B, C or D).

  Question: {{{{ question }}}}
  {{{{ options }}}}
"""
{sketches}
'''

SKETCH = '''
sketch {name}(question: str{extra_param}) -> {{{fields}answer: {answer_type}}} {{
  decoder {decoder}
  template """
    Question: {{{{ question }}}}{options}{reasoning}
    Answer ({label}): [answer in {{{choices}}}]
  """
}}
'''

YES_NO = ("yes", "no")
LETTERS = ("A", "B", "C", "D")


def sketch_source() -> str:
    out = []
    for kind, choices, label in (("yn", YES_NO, "yes or no"), ("mc", LETTERS, "A, B, C or D")):
        for suffix, decoder, reasoning in (("seq", "sequential", False), ("seq_r", "sequential", True),
                                           ("beam_r", "beam(2)", True)):
            out.append(SKETCH.format(
                name=f"{kind}_{suffix}", decoder=decoder, label=label,
                extra_param=", options: str" if kind == "mc" else "",
                fields="reasoning: str, " if reasoning else "",
                answer_type=" | ".join(json.dumps(c) for c in choices),
                options="\n    {{ options }}" if kind == "mc" else "",
                reasoning='\n    Reasoning: [reasoning stop="\\n" max_tokens=40]' if reasoning else "",
                choices=", ".join(json.dumps(c) for c in choices)))
    return "".join(out)


def program_text(model: str, api_base: str | None, completion: bool, api_key_env: str | None) -> str:
    params: dict[str, Any] = {}
    if api_base:
        params["api_base"] = api_base
    if completion:
        params["completion"] = True
    if api_key_env:
        params["api_key_env"] = api_key_env
    shown = "{ " + ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items()) + " }" if params else ""
    return PROGRAM.format(model=json.dumps(model), params=shown, sketches=sketch_source())


def load_questions(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def options_text(q: dict[str, Any]) -> str:
    return "\n".join(f"{k}) {v}" for k, v in q.get("options", {}).items())


_WORD = re.compile(r"[A-Za-z0-9]+")


def strict_answer(reply: str, q: dict[str, Any]) -> str | None:
    """The answer when the reply is nothing but an answer (``"Yes."``, ``"B"``, ``"B) blue"``,
    ``"blue"``), else None."""
    text = reply.strip().strip("\"'*`").strip().rstrip(".!").strip()
    if q["kind"] == "yes_no":
        return text.lower() if text.lower() in YES_NO else None
    for letter, option in q.get("options", {}).items():
        if re.fullmatch(rf"{letter}(?:[).:]?(?:\s+{re.escape(str(option))})?)?", text, re.I) \
                or text.lower() == str(option).lower():
            return letter
    return None


def parse_free_answer(reply: str, q: dict[str, Any]) -> str | None:
    """The answer an unconstrained reply gives (its first word is one, or it is exactly an
    option's text), or None when it is not a valid answer."""
    text = reply.strip()
    if q["kind"] == "yes_no":
        m = _WORD.match(text.lstrip("\"'*`"))
        word = m.group().lower() if m else ""
        return word if word in YES_NO else None
    m = re.match(r"[\"'*`(]*([A-Da-d])(?:[).:\s]|$)", text)
    if m:
        return m.group(1).upper()
    for letter, option in q.get("options", {}).items():  # the option's text on its own
        if text.strip(".!\"' ").lower() == str(option).lower():
            return letter
    return None


@dataclass
class Score:
    label: str
    answered: int = 0
    invalid: int = 0
    not_exact: int = 0  # the reply is more than an answer (always 0 for sketches)
    correct: int = 0
    seconds: float = 0.0
    tokens: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        n = max(self.answered, 1)
        return (f"{self.label:<32} {self.invalid:>3}/{self.answered:<3} {100 * self.invalid / n:5.1f}%  "
                f"{self.not_exact:>3}/{self.answered:<3} {100 * self.not_exact / n:5.1f}%  "
                f"{self.correct:>3}/{self.answered:<3} {100 * self.correct / n:5.1f}%  "
                f"{self.seconds:7.1f}  {self.tokens:>7}")


async def run_variant(program: Any, variant: str, questions: list[dict[str, Any]],
                      concurrency: int) -> Score:
    from promptflow_dsl.runtime import RunConfig, RunFailed
    from promptflow_dsl.runtime.cache import CacheMode

    label, yn, mc = VARIANTS[variant]
    score = Score(label)
    limit = asyncio.Semaphore(concurrency)

    async def one(q: dict[str, Any]) -> dict[str, Any]:
        handler = yn if q["kind"] == "yes_no" else mc
        inputs = {"question": q["question"]}
        if q["kind"] != "yes_no":
            inputs["options"] = options_text(q)
        config = RunConfig(cache=CacheMode.OFF, write_trace=False)
        async with limit:
            try:
                result = await program.arun(handler, config=config, **inputs)
            except RunFailed as exc:
                return {"id": q["id"], "answer": None, "exact": False, "raw": None,
                        "error": exc.message, "tokens": 0}
        value = result.value
        raw = value if isinstance(value, str) else value["answer"]
        answer = parse_free_answer(raw, q) if variant == "prompt" else raw
        exact = strict_answer(raw, q) if variant == "prompt" else raw
        usage = result.trace.totals
        return {"id": q["id"], "answer": answer, "exact": exact is not None, "raw": raw,
                "tokens": usage.prompt_tokens + usage.completion_tokens}

    t0 = time.perf_counter()
    rows = await asyncio.gather(*(one(q) for q in questions))
    score.seconds = time.perf_counter() - t0
    for q, row in zip(questions, rows, strict=True):
        row["expected"] = q["answer"]
        score.answered += 1
        score.tokens += row["tokens"]
        score.not_exact += not row["exact"]
        if row["answer"] is None:
            score.invalid += 1
        elif row["answer"] == q["answer"]:
            score.correct += 1
        score.rows.append(row)
    return score


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import promptflow_dsl as pf

    text = program_text(args.model, args.api_base, args.completion, args.api_key_env)
    program = pf.loads(text, base_dir=Path.cwd())
    questions = load_questions(Path(args.data))
    if args.limit:
        questions = questions[: args.limit]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    yn = sum(q["kind"] == "yes_no" for q in questions)
    print(f"model: {args.model}{' at ' + args.api_base if args.api_base else ''}   questions: "
          f"{len(questions)} ({yn} yes/no, {len(questions) - yn} multiple choice)", flush=True)
    print(f"{'variant':<32} {'invalid':<13}  {'not exact':<13}  {'accuracy':<13}  {'seconds':>7}  "
          f"{'tokens':>7}", flush=True)
    scores = []
    for v in variants:
        s = await run_variant(program, v, questions, args.concurrency)
        print(s.line(), flush=True)
        scores.append(s)
    return {"model": args.model, "api_base": args.api_base, "questions": len(questions),
            "variants": {v: {"label": s.label, "invalid": s.invalid, "not_exact": s.not_exact,
                             "correct": s.correct,
                             "answered": s.answered, "seconds": round(s.seconds, 2),
                             "tokens": s.tokens, "rows": s.rows}
                         for v, s in zip(variants, scores, strict=True)}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="local/smollm2", help="model id (default local/smollm2)")
    p.add_argument("--api-base", help="an OpenAI-compatible server's base URL")
    p.add_argument("--completion", action="store_true",
                   help="the server offers /v1/completions with log-probs (enables scoring, beam)")
    p.add_argument("--api-key-env", help="environment variable holding the API key")
    p.add_argument("--data", default=str(DATA), help="questions (JSONL)")
    p.add_argument("--limit", type=int, default=0, help="only the first N questions")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated, from: {', '.join(VARIANTS)}")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--json", help="write the results (with every answer) to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
