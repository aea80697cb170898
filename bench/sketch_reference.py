"""LMQL's documented queries, written as pflow sketches (``examples/sketch/lmql_*.pflow``),
run on the same model as LMQL itself where LMQL can be run.

    python bench/sketch_reference.py                       # pflow on local/smollm2
    python bench/sketch_reference.py --json out.json
    python bench/sketch_reference.py --lmql-python /path/to/venv/bin/python \\
        --lmql-tokenizer /path/to/tokenizer_dir           # and LMQL, in its own interpreter

pflow runs each sketch on the embedded model (``local/smollm2``, greedy) and prints
the value and the filled sketch.  With ``--lmql-python``, the same queries run under
LMQL (``lmql.run_sync`` with ``lmql.model("local:llama.cpp:<gguf>", tokenizer=...)``)
in that interpreter, on the same GGUF file, and the two outputs are printed side by
side.  LMQL is not a dependency of this project: it is run only when given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "sketch"

# name -> (pflow file, handler, inputs, the LMQL query as documented, with the decoder and the
# token bound pflow uses written out)
QUERIES: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "list-multi": ("lmql_list.pflow", "things", {}, '''
        argmax
            "A list of things not to forget when going to the sea (not travelling): \\n"
            for i in range(5):
                "-[THING]" where STOPS_AT(THING, "\\n") and len(TOKENS(THING)) < 12
        '''),
    "number": ("lmql_number.pflow", "number", {}, '''
        argmax "A number: [N]" where INT(N)
        '''),
    "set": ("lmql_set.pflow", "packing", {}, '''
        argmax
            "A list of things not to forget when going to the sea (not travelling): \\n"
            "- Sunglasses \\n"
            for i in range(4):
                "- [THING] \\n" where THING in set(["Volleyball", "Sunscreen", "Bathing Suit"])
        '''),
    "length": ("lmql_length.pflow", "hello", {}, '''
        argmax "Hello [NAME]" where len(NAME) < 10
        '''),
    "token-length": ("lmql_tokens.pflow", "greetings", {}, '''
        argmax "Greet the user in four different ways: [GREETINGS]" where len(TOKENS(GREETINGS)) < 10
        '''),
    "regex": ("lmql_regex.pflow", "today", {}, '''
        argmax "It's the last day of June so today is [DATE]" where REGEX(DATE, r"[0-9]{2}/[0-9]{2}")
        '''),
    "stops": ("lmql_stops.pflow", "capital", {}, '''
        argmax
            "Q: What is the capital of France?\\nA: [ANSWER]" where STOPS_BEFORE(ANSWER, ".") and STOPS_BEFORE(ANSWER, "\\n") and len(TOKENS(ANSWER)) < 16
            "So the answer is {ANSWER}. Confidence (low/high): [C]" where C in ["low", "high"]
        '''),
    "sketch": ("lmql_sketch.pflow", "yes_no", {"question": "Is the sun a star?"}, '''
        beam_var(n=2)
            "Q: Is the sun a star?\\nAnswer Choices: (A) yes (B) no\\n"
            "A: Let's think step by step.[REASONING]" where STOPS_AT(REASONING, ".") and len(TOKENS(REASONING)) < 24
            "Therefore, among A through B, the answer is [ANSWER]" where ANSWER in ["A", "B"]
        '''),
}


def run_pflow(names: list[str]) -> dict[str, dict[str, Any]]:
    """Each query's pflow sketch on local/smollm2: value, filled text, seconds, calls."""
    sys.path.insert(0, str(REPO))
    import promptflow_dsl as pf
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode

    out = {}
    for name in names:
        file, handler, inputs, _ = QUERIES[name]
        program = pf.load(EXAMPLES / file)
        t0 = time.perf_counter()
        r = program.run(handler, config=RunConfig(cache=CacheMode.OFF, write_trace=False), **inputs)
        step = r.trace.steps[0]
        out[name] = {"value": r.value, "text": step.reply, "seconds": round(time.perf_counter() - t0, 2),
                     "calls": sum(1 for e in step.events if e["type"] == "hole")}
    return out


_LMQL_RUNNER = '''
import json, sys, time, lmql
gguf, tokenizer, queries = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
model = lmql.model("local:llama.cpp:" + gguf, tokenizer=tokenizer, n_ctx=2048)
out = {}
for name, query in queries.items():
    t0 = time.perf_counter()
    try:
        r = lmql.run_sync(query, model=model)
        r = r[0] if isinstance(r, list) else r
        out[name] = {"value": r.variables, "text": r.prompt, "seconds": round(time.perf_counter() - t0, 2)}
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
print(json.dumps(out, default=str))
'''


def run_lmql(python: str, tokenizer: str, gguf: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """The LMQL queries in interpreter ``python`` (with lmql installed), on ``gguf``."""
    queries = {n: textwrap.dedent(QUERIES[n][3]).strip() for n in names}
    proc = subprocess.run([python, "-c", _LMQL_RUNNER, gguf, tokenizer], input=json.dumps(queries),
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-5:]
        return {n: {"error": " | ".join(tail)} for n in names}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated query names (default: all)")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--lmql-python", help="an interpreter with lmql installed: run LMQL too")
    ap.add_argument("--lmql-tokenizer", default="HuggingFaceTB/SmolLM2-135M-Instruct",
                    help="the tokenizer LMQL loads (a transformers name or directory)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(QUERIES)
    unknown = [n for n in names if n not in QUERIES]
    if unknown:
        print(f"unknown query: {', '.join(unknown)} (known: {', '.join(QUERIES)})", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"pflow": run_pflow(names)}
    if args.lmql_python:
        sys.path.insert(0, str(REPO))
        from promptflow_dsl.models.local import find_gguf

        results["lmql"] = run_lmql(args.lmql_python, args.lmql_tokenizer, str(find_gguf()), names)
    for name in names:
        p = results["pflow"][name]
        print(f"## {name}  ({p['seconds']} s)")
        print(f"pflow value: {show(p['value'])}")
        print(textwrap.indent(p["text"].rstrip(), "  | "))
        if "lmql" in results:
            q = results["lmql"].get(name, {})
            print(f"lmql value:  {q.get('error') or show(q.get('value'))}")
            if "text" in q:
                print(textwrap.indent(str(q["text"]).rstrip(), "  | "))
        print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
