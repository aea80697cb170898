"""``pflow`` run in-process by the tests (a plain module: conftest.py names are not unique)."""

from __future__ import annotations

from typing import Any

from promptflow_dsl import cli


def run(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    """``pflow ARGV`` in this process: its exit code and what it wrote to stdout and
    stderr (read from pytest's ``capsys``)."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err
