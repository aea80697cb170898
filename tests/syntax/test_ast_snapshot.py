"""Stage build: AST snapshots of the example programs.

Each snapshot in ``snapshots/`` is the :func:`promptflow_dsl.syntax.dump.dump` of one
example file.  Regenerate with ``PFLOW_UPDATE_GOLDEN=1 pytest tests/syntax``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corpus_paths import REPO, SHARED_EXAMPLES

from promptflow_dsl.syntax import parse_module, read_source
from promptflow_dsl.syntax.dump import dump

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _cases() -> list[tuple[str, Path]]:
    cases = [(f"examples__{p.relative_to(REPO / 'examples').as_posix().replace('/', '__')}", p)
             for p in sorted((REPO / "examples").rglob("*.pflow"))]
    if SHARED_EXAMPLES.is_dir():
        cases += [(f"spec__{p.name}", p) for p in sorted(SHARED_EXAMPLES.glob("*.pflow"))]
    return cases


@pytest.mark.parametrize("name,path", _cases(), ids=[c[0] for c in _cases()])
def test_ast_snapshot(name: str, path: Path):
    source, diag = read_source(path, uri=path.name)
    assert source is not None, diag
    module, diags = parse_module(source)
    assert module is not None and not [d for d in diags if d.is_error]
    text = dump(module) + "\n"
    snap = SNAPSHOTS / (name.removesuffix(".pflow") + ".ast")
    if os.environ.get("PFLOW_UPDATE_GOLDEN") or not snap.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        snap.write_text(text, encoding="utf-8")
    assert text == snap.read_text(encoding="utf-8")
