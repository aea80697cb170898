"""Front-end throughput: parse, build, check and the whole ``pflow check`` on generated
files of about 1,000, 10,000 and 100,000 lines, in lines per second.

Each generated project is a ``main.pflow`` made of repeated blocks, every block a
realistic mix of what programs hold: commented record types with defaults, optional
fields and constraints, type aliases of literal unions, short and block prompts whose
Jinja templates loop and branch, a sketch, a tool backed by a Python module, flows with
comprehensions, conditionals, ``try`` and calls into imported modules, a rule route, a
hook, and a test with mocks.  ``main.pflow`` imports ``std.text`` and a ``lib.pflow``
beside it (by path).

Stages are timed in CPU seconds (user + system, children included: on a machine
shared with other work, wall time mostly measures the others), each the best of
``--repeat`` runs, in this process: *parse+build* (text to AST: the parser builds
the AST as it reduces, one pass), *check* (loading imports excluded: the loaded
modules are checked), and *pflow check* as a user runs it, a fresh
``python -m promptflow_dsl check main.pflow`` subprocess (interpreter start-up and
imports included).

    python bench/check_throughput.py [--lines 1000 10000 100000] [--repeat 3]
                                     [--profile N]   # cProfile of one check of N lines
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LIB = '''\
# Shared declarations of the generated program.

model fast = "openai/gpt-4o-mini" { temperature: 0.2, max_tokens: 200 }

type Sentiment = "positive" | "negative" | "mixed"

# A finding: a label and the evidence for it.
type Finding {
  label: Sentiment
  evidence: list[str]
  score: float = 0.5
}

prompt shout(text: str) -> str = "Say {{ text }} loudly, in capitals."

flow bullets(items: list[str]) -> str {
  kept = [strip(i) for i in items if len(strip(i)) > 0]
  return join(["- " + i for i in kept], "\\n")
}
'''

TOOLS = '''\
def score(text: str) -> float:
    return float(len(text) % 7) / 7.0
'''

HEAD = '''\
# Generated program: {blocks} blocks.
import std.text
import "lib.pflow" as lib

model default = "openai/gpt-4o-mini" {{ temperature: 0 }}
model careful = "openai/gpt-4o" {{ temperature: 0, max_tokens: 400 }}
model small = "local/smollm2"

tool score(text: str) -> float = python "tools:score"
'''

BLOCK = '''\
# ---- block {i}: a review pipeline
type Urgency{i} = "low" | "medium" | "high"

# What classify{i} replies, as JSON.
type Verdict{i} {{
  label: lib.Sentiment
  reason: str(max_length=400)
  urgency: Urgency{i} = "low"
  topics: list[str]?
  confidence: int(min=1, max=5) = 3
}}

prompt classify{i}(review: str, hints: list[str] = []) -> Verdict{i} {{
  model careful
  params {{ temperature: 0.1 }}
  system "You label product reviews ({i}). Reply with one JSON object."
  user """
    {{% if hints %}}Hints:
    {{% for h in hints %}}- {{{{ h | trim }}}}
    {{% endfor %}}{{% endif %}}
    Review: {{{{ review }}}}
  """
  retries 2
}}

prompt reply{i}(review: str, label: str) -> str = """
  Write a one-sentence reply to this {{{{ label }}}} review ({{{{ review | length }}}} chars):
  {{{{ review }}}}
"""

prompt general{i}(message: str) -> str = "Answer briefly and plainly: {{{{ message }}}}"

sketch rate{i}(review: str) -> {{why: str, stars: int}} {{
  model small
  template """
    Review: {{{{ review }}}}
    Why: [why stop="\\n" max_tokens=40]
    Stars (1-5): [stars: int]
  """
}}

flow triage{i}(review: str) -> {{label: str, reply: str?, words: int}} {{
  v = classify{i}(review=review, hints=["be brief", "block {i}"])
  r = reply{i}(review=review, label=v.label) if v.label != "positive" else none
  words = text.split_words(text=review)
  return {{label: upper(v.label), reply: r, words: len(words)}}
}}

flow batch{i}(reviews: list[str]) -> {{count: int, digest: str, best: float}} {{
  kept = [strip(x) for x in reviews if len(strip(x)) > 0]
  out = [triage{i}(review=x) for x in kept]
  digest = lib.bullets(items=[o.label + ": " + str(o.words) for o in out])
  best = try score(text=digest) else 0.0
  return {{count: len(out), digest: digest, best: best}}
}}

route desk{i}(message: str) -> str {{
  by rule
  expert empty when len(strip(message)) == 0 -> lib.shout
  expert refund when lower(message) contains "refund" {{
    instruction "You handle refunds ({i}). Explain the 30-day policy."
  }}
  expert other -> general{i}
}}

test "block {i}: a negative review gets a reply" {{
  mock model careful replies ["{{\\"label\\": \\"negative\\", \\"reason\\": \\"broke\\"}}"]
  mock model default replies ["Sorry about that."]
  out = triage{i}(review="It broke on day one.")
  expect out.label == "NEGATIVE"
  expect out.reply contains "Sorry"
  expect calls(reply{i}) == 1
}}
'''


def generate(folder: Path, lines: int) -> Path:
    """Write a project of about ``lines`` lines of ``main.pflow`` into ``folder``."""
    (folder / "pflow.toml").write_text("")
    (folder / "lib.pflow").write_text(LIB)
    (folder / "tools.py").write_text(TOOLS)
    per_block = BLOCK.format(i=0).count("\n") + 1
    blocks = max(1, round((lines - HEAD.count("\n")) / per_block))
    parts = [HEAD.format(blocks=blocks)] + [BLOCK.format(i=i) for i in range(blocks)]
    path = folder / "main.pflow"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def best(fn, repeat: int, fresh=None) -> tuple[float, object]:  # noqa: ANN001
    """The least CPU time of ``repeat`` calls of ``fn`` (this process and the children it
    waited for: on a shared machine, wall time mostly measures the neighbours) and the
    last result; ``fresh`` is called before each, untimed)."""
    times, out = [], None
    for _ in range(repeat):
        if fresh is not None:
            fresh()
        start = _cpu()
        out = fn()
        times.append(_cpu() - start)
    return min(times), out


def _cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def stages(path: Path, repeat: int) -> dict[str, float]:
    from promptflow_dsl.check import check_source
    from promptflow_dsl.check.checker import check_loaded, project_for
    from promptflow_dsl.check.loader import load
    from promptflow_dsl.syntax import parse_module, read_source

    source, problem = read_source(path)
    assert source is not None, problem
    project = project_for(path)
    out: dict[str, float] = {}
    # the parser builds the AST as it reduces: parse and build are one pass
    out["parse+build"], _ = best(lambda: parse_module(source), repeat)
    loaded = load(source, project)
    # caches of a process (templates checked by text) emptied before each run: the
    # numbers are those of a first check
    out["check"], found = best(lambda: check_loaded(loaded, project), repeat, _forget)
    errors = [d for d in found[1] if d.is_error]  # type: ignore[index]
    assert not errors, errors[:3]
    out["load+check"], _ = best(lambda: check_source(source, project), repeat, _forget)
    return out


def _forget() -> None:
    from promptflow_dsl.check import templates

    cached = getattr(templates, "_analysed_cached", None)
    if cached is not None:
        cached.cache_clear()


def cli(path: Path, repeat: int) -> float:
    def run() -> None:
        done = subprocess.run([sys.executable, "-m", "promptflow_dsl", "check", str(path)],
                              capture_output=True, text=True, cwd=path.parent)
        assert done.returncode == 0, done.stdout + done.stderr

    return best(run, repeat)[0]


def _cell(t: float | None, lines: int) -> str:
    if t is None:
        return f"{'-':>16}"
    rate = f"{lines / t / 1000:.0f}k/s" if t > 0 else "-"
    return f"{t:7.3f}s {rate:>7}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, help="profile one check of N lines")
    ap.add_argument("--no-cli", action="store_true", help="skip the pflow check subprocess")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile:
            import cProfile
            import pstats

            from promptflow_dsl.check import check_file

            path = generate(Path(tmp), args.profile)
            check_file(path)  # warm: parser tables, imports
            prof = cProfile.Profile()
            prof.runcall(check_file, path)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
            return 0
        print(f"{'lines':>8} {'parse+build':>16} {'check':>16} {'load+check':>16} "
              f"{'pflow check':>16}   (CPU seconds, thousands of lines/s)")
        for lines in args.lines:
            folder = Path(tmp) / str(lines)
            folder.mkdir()
            path = generate(folder, lines)
            n = path.read_text(encoding="utf-8").count("\n") + 1
            got = stages(path, args.repeat)
            if not args.no_cli:
                got["pflow check"] = cli(path, args.repeat)
            cells = " ".join(_cell(got.get(k), n) for k in ("parse+build", "check", "load+check",
                                                              "pflow check"))
            print(f"{n:8d} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
