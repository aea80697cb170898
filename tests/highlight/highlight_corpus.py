"""The compiler's own reading of the repository's .pflow files, which the highlighting
tests compare the highlighters with: where its strings and comments are (the grammar's
terminals), its declarations, its templates (the AST) and the holes of sketch templates.
A plain module (conftest.py names are not unique)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from corpus_paths import REPO
from lark import Lark

from promptflow_dsl.kinds.prompt.ast import PromptDecl
from promptflow_dsl.kinds.sketch.ast import SketchDecl
from promptflow_dsl.syntax import SourceFile, ast, normalize, parse_module


def pflow_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.pflow"], cwd=REPO, capture_output=True, text=True)
    files = [REPO / p for p in out.stdout.split()] if out.returncode == 0 else []
    return files or sorted(p for p in REPO.rglob("*.pflow") if ".venv" not in p.parts)


def terminals() -> dict[str, re.Pattern[str]]:
    """The grammar's string, name and comment terminals, as its lexer reads them."""
    parser = Lark.open(str(REPO / "grammar" / "pflow.lark"), parser="lalr")
    return {t.name: re.compile(t.pattern.to_regexp()) for t in parser.terminals
            if t.name in ("LONG_STRING", "RAW_STRING", "STRING", "NAME", "COMMENT")}


def regions(text: str, terms: dict[str, re.Pattern[str]]) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) offsets of the strings and comments of a program that parses."""
    pos = 0
    while pos < len(text):
        for name in ("LONG_STRING", "RAW_STRING", "STRING", "COMMENT", "NAME"):
            m = terms[name].match(text, pos)
            if m:
                if name != "NAME":
                    yield ("comment" if name == "COMMENT" else "string"), pos, m.end()
                pos = m.end()
                break
        else:
            pos += 1


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def nodes(value: Any) -> Iterator[Any]:
    """Every AST node under ``value``."""
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from nodes(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield value
        for f in dataclasses.fields(value):
            yield from nodes(getattr(value, f.name))


def templates(module: ast.Module) -> Iterator[tuple[ast.Str, bool]]:
    """Each template string of the module, and whether it is a sketch's (holes)."""
    for decl in module.decls:
        if isinstance(decl, PromptDecl):
            for m in decl.messages:
                yield m.text, False
            if decl.completion is not None:
                yield decl.completion, False
        elif isinstance(decl, SketchDecl) and decl.template is not None:
            yield decl.template, True


def parsed(path: Path) -> tuple[str, ast.Module] | None:
    text = normalize(path.read_bytes().decode("utf-8", "replace"))
    module, diagnostics = parse_module(SourceFile(str(path), text, path))
    if module is None:
        return None
    return text, module
