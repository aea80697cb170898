"""The ```pflow blocks of the documentation, checked as programs (a plain module:
conftest.py names are not unique)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promptflow_dsl as pf
from promptflow_dsl import cli

_BLOCK = re.compile(r"```pflow\n(.*?)```", re.S)


def pflow_blocks(page: Path) -> list[str]:
    """The text of each ```pflow block of the Markdown file ``page``, in order."""
    return _BLOCK.findall(page.read_text())


def check_blocks(blocks: list[str], folder: Path, capsys: Any) -> None:
    """Write each block to ``folder/blockN.pflow`` and load it (raises the checker's
    error when it does not check); a block with ``test`` declarations must pass
    ``pflow test`` (an ``AssertionError`` with its output otherwise)."""
    for i, block in enumerate(blocks):
        path = folder / f"block{i}.pflow"
        path.write_text(block)
        pf.load(path)
        if "test \"" in block:
            assert cli.main(["test", str(path)]) == 0, capsys.readouterr().out
