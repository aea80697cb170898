"""``pflow lsp`` on the command line: without its extra it says how to install it."""

from __future__ import annotations

import importlib.util

import pytest

from promptflow_dsl.cli import main


def test_without_pygls_it_exits_2_with_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pygls" else real(name, *a))
    assert main(["lsp"]) == 2
    err = capsys.readouterr().err
    assert "pflow lsp: the language server needs pygls" in err
    assert "pip install 'promptflow-dsl[lsp]'" in err


def test_help_names_the_transport(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lsp", "--help"])
    assert exc.value.code == 0
    assert "--stdio" in capsys.readouterr().out
