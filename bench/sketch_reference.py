"""LMQL's documented queries, written as pflow sketches (``examples/sketch/lmql_*.pflow``),
run on the same model as LMQL itself.

    python bench/sketch_reference.py                       # pflow on local/smollm2
    python bench/sketch_reference.py --json out.json
    python bench/sketch_reference.py --lmql-python /path/to/lmql-venv/bin/python  # and LMQL

pflow runs each sketch on the embedded model (``local/smollm2``, greedy) and prints
the value and the filled sketch.  With ``--lmql-python``, the same queries run under
LMQL 0.7.3 in that interpreter (``bench/sketch_lmql_runner.py``: ``lmql.run_sync`` with
``lmql.model("local:llama.cpp:<gguf>", tokenizer=..., n_ctx=...)``) on the same GGUF
file, and the two sides are printed together: each value, whether it meets the
query's constraints (checked here, the same way for both), seconds, and a Markdown
table.  LMQL is not a dependency of this project; make its interpreter apart from
pflow's, e.g. (llama-cpp-python 0.2.90 builds from source, about 7 minutes on 2 cores)::

    python3 -m venv /tmp/lmqlvenv
    CMAKE_ARGS="-DGGML_NATIVE=OFF" /tmp/lmqlvenv/bin/pip install llama-cpp-python==0.2.90
    /tmp/lmqlvenv/bin/pip install lmql==0.7.3 transformers tokenizers gguf

or with pflow's llama-cpp-python (0.3 series, a wheel), for which the runner adapts
``Llama.generate`` to the 0.2 contract LMQL's backend expects (the only glue; see the
runner's docstring).  The tokenizer LMQL needs is built from the GGUF's own vocabulary
unless ``--lmql-tokenizer`` names one, and checked to give llama.cpp's token ids.
``--explain`` adds plain greedy continuations of each query's first prompt, as LMQL
and as pflow send it, to tell the model's own choices from the constraints'.  Each
LMQL query runs in its own process, stopped after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "sketch"
REPORT = "sketch-lmql-report: "  # the runner's report line starts so

# name -> (pflow file, handler, inputs, the LMQL query as documented, with the decoder and the
# token bound pflow uses written out; a hole inside a loop also appends its value to a list
# given as an input, see LISTS)
QUERIES: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "list-multi": ("lmql_list.pflow", "things", {}, '''
        argmax
            "A list of things not to forget when going to the sea (not travelling): \\n"
            for i in range(5):
                "-[THING]" where STOPS_AT(THING, "\\n") and len(TOKENS(THING)) < 12
                THINGS.append(THING)
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
                THINGS.append(THING)
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

# a variant: the number query with the 16-token bound pflow gives an int hole by default
VARIANTS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "number-16": ("lmql_number.pflow", "number", {}, '''
        argmax "A number: [N]" where INT(N) and len(TOKENS(N)) < 17
        '''),
}
ALL = {**QUERIES, **VARIANTS}

# lists the LMQL query appends a loop's values to (LMQL keeps only a variable's last value)
LISTS: dict[str, list[str]] = {"list-multi": ["THINGS"], "set": ["THINGS"]}

# LMQL variable -> pflow hole (a sketch with one hole returns the value itself)
HOLES: dict[str, dict[str, str]] = {
    "list-multi": {"THINGS": "thing"}, "number": {"N": "n"}, "number-16": {"N": "n"},
    "set": {"THINGS": "thing"}, "length": {"NAME": "name"}, "token-length": {"GREETINGS": "greetings"},
    "regex": {"DATE": "date"}, "stops": {"ANSWER": "answer", "C": "confidence"},
    "sketch": {"REASONING": "reasoning", "ANSWER": "answer"},
}


# the text before each query's first hole: (LMQL's prompt, pflow's rendered template, whose
# trailing spaces pflow holds back so that the model writes " value")
SEA = "A list of things not to forget when going to the sea (not travelling):"
FIRST_HOLE: dict[str, tuple[str, str]] = {
    "list-multi": (SEA + " \n-", SEA + "\n-"),
    "number": ("A number: ", "A number:"),
    "number-16": ("A number: ", "A number:"),
    "set": (SEA + " \n- Sunglasses \n- ", SEA + "\n- Sunglasses\n-"),
    "length": ("Hello ", "Hello"),
    "token-length": ("Greet the user in four different ways: ", "Greet the user in four different ways:"),
    "regex": ("It's the last day of June so today is ", "It's the last day of June so today is"),
    "stops": ("Q: What is the capital of France?\nA: ", "Q: What is the capital of France?\nA:"),
    "sketch": ("Q: Is the sun a star?\nAnswer Choices: (A) yes (B) no\nA: Let's think step by step.",) * 2,
}

def _is_int(x: Any) -> bool:
    return isinstance(x, int) or bool(re.fullmatch(r"\s*[+-]?\d+\s*", str(x)))


def _stops_at(x: str, stop: str) -> bool:
    """``x`` contains ``stop`` at most once, at its end."""
    return stop not in x[: len(x) - len(stop)] if x.endswith(stop) else stop not in x


def _check(name: str, v: dict[str, Any], ntok: Callable[[str], int]) -> list[str]:
    """The query's constraints ``v`` breaks (``v``: hole -> value); [] when it meets them all.
    Token counts are of each value on its own, with llama.cpp's tokenizer."""
    bad: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            bad.append(what)

    if name == "list-multi":
        need(len(v["thing"]) == 5, "5 items")
        for x in v["thing"]:
            need(_stops_at(x, "\n"), f"STOPS_AT(THING, '\\n'): {x!r}")
            need(ntok(x) < 12, f"len(TOKENS(THING)) < 12: {x!r}")
    elif name in ("number", "number-16"):
        need(_is_int(v["n"]), "INT(N)")
        if name == "number-16":
            need(ntok(str(v["n"])) < 17, "len(TOKENS(N)) < 17")
    elif name == "set":
        need(len(v["thing"]) == 4, "4 items")
        need(all(x in ("Volleyball", "Sunscreen", "Bathing Suit") for x in v["thing"]), "THING in set")
    elif name == "length":
        need(len(v["name"]) < 10, "len(NAME) < 10")
    elif name == "token-length":
        need(ntok(v["greetings"]) < 10, "len(TOKENS(GREETINGS)) < 10")
    elif name == "regex":
        need(bool(re.fullmatch(r"[0-9]{2}/[0-9]{2}", v["date"])), "REGEX(DATE)")
    elif name == "stops":
        a = v["answer"]
        need("." not in a and "\n" not in a, "STOPS_BEFORE(ANSWER, '.' / '\\n')")
        need(ntok(a) < 16, "len(TOKENS(ANSWER)) < 16")
        need(v["confidence"] in ("low", "high"), "C in [low, high]")
    elif name == "sketch":
        r = v["reasoning"]
        need(_stops_at(r, ".") or ntok(r) < 24, "STOPS_AT(REASONING, '.')")
        need(ntok(r) < 24, "len(TOKENS(REASONING)) < 24")
        need(v["answer"] in ("A", "B"), "ANSWER in [A, B]")
    return bad


def pflow_holes(name: str, value: Any) -> dict[str, Any]:
    holes = HOLES[name]
    return value if isinstance(value, dict) else {next(iter(holes.values())): value}


def lmql_holes(name: str, variables: dict[str, Any]) -> dict[str, Any]:
    return {hole: variables.get(var) for var, hole in HOLES[name].items()}


def run_pflow(names: list[str]) -> dict[str, dict[str, Any]]:
    """Each query's pflow sketch on local/smollm2: value, filled text, seconds, calls."""
    sys.path.insert(0, str(REPO))
    import promptflow_dsl as pf
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode

    out = {}
    for name in names:
        file, handler, inputs, _ = ALL[name]
        program = pf.load(EXAMPLES / file)
        t0 = time.perf_counter()
        r = program.run(handler, config=RunConfig(cache=CacheMode.OFF, write_trace=False), **inputs)
        step = r.trace.steps[0]
        out[name] = {"value": r.value, "text": step.reply, "seconds": round(time.perf_counter() - t0, 2),
                     "calls": sum(1 for e in step.events if e["type"] == "hole")}
    return out


def _runner(python: str, job: dict[str, Any], timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run ``bench/sketch_lmql_runner.py`` in ``python`` on ``job``: (its report or None, the
    lines of its stderr that report errors).  A runner still going after ``timeout`` seconds
    is ended with its process group (LMQL's model process too)."""
    proc = subprocess.Popen([python, str(REPO / "bench" / "sketch_lmql_runner.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(job), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\nno result within {timeout:g} s"
    errors = [ln.replace("[Error during generate()] ", "") for ln in (out + "\n" + err).splitlines()
              if ln.startswith(("[Error during generate()]", "no result"))]  # LMQL prints to stdout
    lines = [ln for ln in out.splitlines() if ln.startswith(REPORT)]
    report = json.loads(lines[-1][len(REPORT):]) if lines else None
    if report is None and not errors:
        errors = err.strip().splitlines()[-3:]
    return report, " | ".join(dict.fromkeys(errors))


def run_lmql(python: str, tokenizer: str | None, gguf: str, names: list[str], *, n_ctx: int,
             timeout: float) -> dict[str, Any]:
    """The LMQL queries in interpreter ``python`` (with lmql installed), on ``gguf``, one
    runner process per query: versions, the tokenizer and its check against llama.cpp,
    and by query name the variables, LMQL's text, seconds and the backend's generate
    calls (or the error)."""
    queries = {n: textwrap.dedent(ALL[n][3]).strip() for n in names}
    texts = list(queries.values()) + ["A number: 2024-06-30, 12345", "Hello  world\n\n - naïve café"]
    report, errors = _runner(python, {"gguf": gguf, "tokenizer": tokenizer, "check_texts": texts}, 600)
    if report is None:
        return {"error": errors, "results": {n: {"error": errors} for n in names}}
    out: dict[str, Any] = {**report, "results": {}}
    for name, query in queries.items():
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "calls"
            job = {"gguf": gguf, "tokenizer": report["tokenizer"], "query": query, "n_ctx": n_ctx,
                   "lists": LISTS.get(name, []), "calls_log": str(log)}
            t0 = time.perf_counter()
            r, errors = _runner(python, job, timeout)
            calls = [int(x) for x in log.read_text().split()] if log.exists() else []
        entry: dict[str, Any] = {"generate_calls": len(calls), "prompt_tokens_max": max(calls, default=0)}
        if r is not None and "variables" in r:
            entry.update(variables=r["variables"], text=r["text"], seconds=r["seconds"])
            out["shim"] = r.get("shim")
        else:
            entry.update(error=(r or {}).get("error") or errors,
                         seconds=round(time.perf_counter() - t0, 2))
        out["results"][name] = entry
    return out


def explain(python: str, gguf: str, names: list[str]) -> list[dict[str, Any]]:
    """Plain greedy continuations (llama.cpp in ``python``, no LMQL, no constraints) of the
    text before each query's first hole, as LMQL sends it (BOS token first, trailing
    space kept), the same without the BOS token, and as pflow sends it."""
    prompts = []
    for name in names:
        lmql_text, pflow_text = FIRST_HOLE[name]
        prompts += [{"query": name, "as": "lmql", "text": lmql_text, "bos": True, "n": 12},
                    {"query": name, "as": "lmql without BOS", "text": lmql_text, "bos": False, "n": 12},
                    {"query": name, "as": "pflow", "text": pflow_text, "bos": False, "n": 12}]
    report, errors = _runner(python, {"gguf": gguf, "greedy": prompts}, 600)
    if report is None:
        raise RuntimeError(f"the LMQL interpreter failed: {errors}")
    rows: list[dict[str, Any]] = report["greedy"]
    for row in rows:
        row["llama-cpp-python"] = report["versions"]["llama-cpp-python"]
    return rows


def token_counter() -> Callable[[str], int]:
    """Counts a text's tokens with the embedded model's vocabulary (llama.cpp)."""
    from llama_cpp import Llama

    from promptflow_dsl.models.local import find_gguf

    vocab = Llama(model_path=str(find_gguf()), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)


def _cell(value: Any) -> str:
    return "`" + json.dumps(value, ensure_ascii=False).replace("|", "\\|") + "`"


def table(names: list[str], results: dict[str, Any]) -> str:
    """A Markdown table of both sides: value, constraints met, seconds."""
    lmql = results.get("lmql", {}).get("results")
    head = "| query | pflow value | meets | s |" + (" LMQL value | meets | s |" if lmql else "")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in names:
        p = results["pflow"][name]
        row = f"| {name} | {_cell(p['holes'])} | {'yes' if not p['broken'] else 'no'} | {p['seconds']} |"
        if lmql:
            q = lmql.get(name, {})
            if "holes" in q:
                row += f" {_cell(q['holes'])} | {'yes' if not q['broken'] else 'no'} | {q['seconds']} |"
            else:
                row += f" {q.get('error', 'not run')} | – | {q.get('seconds', '–')} |"
        rows.append(row)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated query names (default: all)")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--lmql-python", help="an interpreter with lmql installed: run LMQL too")
    ap.add_argument("--lmql-tokenizer", default=None,
                    help="the tokenizer LMQL loads (a transformers name or directory; default: "
                         "built from the GGUF's vocabulary)")
    ap.add_argument("--explain", action="store_true",
                    help="also print plain greedy continuations of each query's first prompt (in the "
                         "LMQL interpreter's llama.cpp) as LMQL and as pflow send it")
    ap.add_argument("--no-queries", action="store_true", help="with --explain: do not run LMQL's queries")
    ap.add_argument("--n-ctx", type=int, default=2048, help="LMQL's llama.cpp context (default 2048)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per LMQL query (default 300)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(ALL)
    unknown = [n for n in names if n not in ALL]
    if unknown:
        print(f"unknown query: {', '.join(unknown)} (known: {', '.join(ALL)})", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"pflow": run_pflow(names)}
    ntok = token_counter()
    for name, p in results["pflow"].items():
        p["holes"] = pflow_holes(name, p["value"])
        p["broken"] = _check(name, p["holes"], ntok)
    if args.lmql_python and not args.no_queries:
        from promptflow_dsl.models.local import find_gguf

        results["lmql"] = run_lmql(args.lmql_python, args.lmql_tokenizer, str(find_gguf()), names,
                                   n_ctx=args.n_ctx, timeout=args.timeout)
        for name, q in results["lmql"]["results"].items():
            if "variables" in q:
                q["holes"] = lmql_holes(name, q["variables"])
                try:
                    q["broken"] = _check(name, q["holes"], ntok)
                except (KeyError, TypeError) as exc:
                    q["broken"] = [f"missing value: {exc}"]
    for name in names:
        p = results["pflow"][name]
        print(f"## {name}")
        print(f"pflow ({p['seconds']} s): {show(p['holes'])}  constraints: {p['broken'] or 'met'}")
        print(textwrap.indent(p["text"].rstrip(), "  | "))
        if "lmql" in results:
            q = results["lmql"]["results"].get(name, {})
            if "holes" in q:
                print(f"lmql ({q['seconds']} s, {q['generate_calls']} generate calls): {show(q['holes'])}"
                      f"  constraints: {q['broken'] or 'met'}")
                print(textwrap.indent(str(q["text"]).rstrip(), "  | "))
            else:
                print(f"lmql ({q.get('seconds', '–')} s): {q.get('error', 'not run')}")
        print()
    if "lmql" in results and not args.lmql_tokenizer:
        results["lmql"]["tokenizer"] = "built from the GGUF's vocabulary"  # a temporary directory
    if args.explain and args.lmql_python:
        from promptflow_dsl.models.local import find_gguf

        results["greedy"] = explain(args.lmql_python, str(find_gguf()), names)
        print("plain greedy continuations of the text before the first hole "
              f"(llama-cpp-python {results['greedy'][0]['llama-cpp-python']}):")
        for row in results["greedy"]:
            print(f"  {row['query']:12} {row['as']:17} ...{row['ids'][-3:]}: {row['continuation']!r}  "
                  f"top: {row['top3']}")
    if "lmql" in results:
        meta = {k: v for k, v in results["lmql"].items() if k != "results"}
        print(json.dumps(meta, ensure_ascii=False))
    print(table(names, results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
