"""``check_loaded(..., reuse=...)``: imported modules checked before are taken from the
store (same module object, same diagnostics), the entry module is always checked, and
an import whose text (or whose own import's text) changed is checked again."""

from __future__ import annotations

from pathlib import Path

from promptflow_dsl.check.checker import check_loaded, project_for
from promptflow_dsl.check.loader import load
from promptflow_dsl.check.program import CheckedModule
from promptflow_dsl.diagnostics import Diagnostic
from promptflow_dsl.syntax import read_source

BASE = 'type Word = str\n'
LIB = ('import "base.pflow" as base\n'
       'prompt shout(text: base.Word) -> str = "Say {{ text }} loudly"\n'
       'flow unused(x: str) -> str {\n  y = 1\n  return x\n}\n')
MAIN = ('import "lib.pflow" as lib\nmodel default = "openai/gpt-4o-mini"\n'
        'flow main(x: str) -> str {\n  return lib.shout(text=x)\n}\n')


class Store:
    def __init__(self) -> None:
        self.kept: dict[str, tuple[CheckedModule, list[Diagnostic]]] = {}
        self.hits = 0

    def get(self, stamp: str) -> tuple[CheckedModule, list[Diagnostic]] | None:
        found = self.kept.get(stamp)
        self.hits += found is not None
        return found

    def put(self, stamp: str, value: tuple[CheckedModule, list[Diagnostic]]) -> None:
        self.kept[stamp] = value


def _check(folder: Path, store: Store | None):  # noqa: ANN202
    entry = folder / "main.pflow"
    source, problem = read_source(entry)
    assert source is not None, problem
    project = project_for(entry)
    loaded = load(source, project)
    return loaded, check_loaded(loaded, project, reuse=store)


def _messages(diags: list[Diagnostic]) -> list[str]:
    return sorted(f"{d.span.file}:{d.span.line}:{d.span.col} {d.message}" for d in diags)


def test_imports_are_reused_by_content(tmp_path: Path) -> None:
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "base.pflow").write_text(BASE)
    (tmp_path / "lib.pflow").write_text(LIB)
    (tmp_path / "main.pflow").write_text(MAIN)
    loaded, (plain, plain_diags) = _check(tmp_path, None)
    store = Store()
    _, (first, first_diags) = _check(tmp_path, store)
    assert store.hits == 0 and len(store.kept) == 2  # base and lib; never the entry
    _, (second, second_diags) = _check(tmp_path, store)
    assert store.hits == 2
    assert plain is not None and first is not None and second is not None
    assert _messages(plain_diags) == _messages(first_diags) == _messages(second_diags)
    lib_key = loaded.modules[loaded.entry].imports["lib"]
    assert second.modules[lib_key] is first.modules[lib_key]
    assert second.modules[loaded.entry] is not first.modules[loaded.entry]

    # a change in base.pflow changes the stamp of lib.pflow, which imports it
    (tmp_path / "base.pflow").write_text("type Word = int\n")
    store.hits = 0
    _, (third, third_diags) = _check(tmp_path, store)
    assert store.hits == 0
    assert third is not None and third.modules[lib_key] is not first.modules[lib_key]
    assert _messages(third_diags) == _messages(_check(tmp_path, None)[1][1])
