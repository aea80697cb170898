"""Parse speed: the shared LALR parser on every ``.pflow`` file of ``examples/`` and
``stdlib/`` (concatenated many times into one large module), in MB/s: building a Lark
tree, the same with keywords lexed as in the grammar alone (no ``NAME`` in every lexer
state: what the identifier-boundary rule for keywords costs), and ``parse_module``,
which builds the AST as it parses (no tree; what ``pflow check`` runs).  Times are
CPU seconds of this process.

    python bench/parse_speed.py [--repeat 5] [--copies 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def corpus(copies: int) -> str:
    files = sorted((REPO / "examples").rglob("*.pflow")) + sorted((REPO / "stdlib").rglob("*.pflow"))
    # each file once, then the whole set `copies` times: import declarations repeat, which
    # the parser does not mind
    text = "\n".join(f.read_text(encoding="utf-8") for f in files)
    return "\n".join([text] * copies)


def parser(boundary: bool):  # noqa: ANN201
    from lark import Lark

    from promptflow_dsl.resources import grammar_path
    from promptflow_dsl.syntax import parser as p

    class NoBoundary(p._KeywordsAsNames):
        always_accept = ()

    post = p._KeywordsAsNames() if boundary else NoBoundary()
    return Lark(grammar_path().read_text(encoding="utf-8"), postlex=post, **p._OPTIONS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--copies", type=int, default=200)
    args = ap.parse_args()
    from promptflow_dsl.syntax import parser as p

    text = corpus(args.copies)
    mb = len(text.encode("utf-8")) / 1e6
    for label, boundary in (("keywords end at word boundaries", True), ("grammar keywords only", False)):
        lark = parser(boundary)
        times = []
        for _ in range(args.repeat):
            p._TEXT.value = text
            start = time.process_time()
            lark.parse(text)
            times.append(time.process_time() - start)
        report(label, mb, times)
    from promptflow_dsl.syntax import SourceFile, parse_module

    source = SourceFile("corpus.pflow", text)
    times = []
    for _ in range(args.repeat):
        start = time.process_time()
        module, diags = parse_module(source)
        times.append(time.process_time() - start)
        assert module is not None, diags[:1]
    report("AST in one pass (parse_module)", mb, times)
    return 0


def report(label: str, mb: float, times: list[float]) -> None:
    best, median = min(times), statistics.median(times)
    print(f"{label:34s} {mb:.2f} MB: median {median:.3f} s ({mb / median:.2f} MB/s), "
          f"best {best:.3f} s")


if __name__ == "__main__":
    raise SystemExit(main())
