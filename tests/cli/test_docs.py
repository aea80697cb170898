"""The command-line documentation covers the real command line.

Every command and sub-command of ``pflow`` is read from the argparse parser itself
(nested ``_SubParsersAction`` parsers such as ``route explain``, and the words of a
positional argument with fixed choices such as ``trace show`` or ``cache clear``), so
a command added to the parser without documentation fails here.

- ``docs/cli.md`` names every one as ``pflow NAME`` in a heading or a table row, and
  the section of each command (its ``## `pflow NAME` `` heading up to the next heading
  of that level) mentions each of its long options;
- README.md's "The command line" table has a row for every top-level command, and
  that row lists the command's sub-commands.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from promptflow_dsl.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
CLI_MD = REPO / "docs" / "cli.md"
README = REPO / "README.md"


@dataclass
class Command:
    path: tuple[str, ...]  # ("route", "explain"), ("trace",), ...
    parser: argparse.ArgumentParser | None  # None for a choice word (``trace show``)
    options: list[str] = field(default_factory=list)  # long options, ``--help`` left out

    @property
    def name(self) -> str:
        return "pflow " + " ".join(self.path)


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted({s for a in parser._actions for s in a.option_strings
                   if s.startswith("--") and s != "--help"})


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[Command]:
    found: list[Command] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(Command((*path, name), sub, _long_options(sub)))
                found.extend(_walk(sub, (*path, name)))
        elif path and not action.option_strings and action.choices:
            # a positional argument with fixed words: `trace {show,list}`, `cache {info,clear}`
            found.extend(Command((*path, str(word)), None) for word in action.choices)
    return found


COMMANDS = _walk(build_parser(), ())


def _heading_and_table_lines(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced and (line.startswith("#") or line.lstrip().startswith("|")):
            lines.append(line)
    return lines


def _section(text: str, name: str) -> str | None:
    """The text under the heading that names `name` (in backticks) exactly, up to the
    next heading of the same or a higher level; ``None`` when there is no such heading."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#+)\s+`([^`]*)`\s*$", line)
        if m and m.group(2) == name:
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if (h := re.match(r"(#+)\s", lines[j])) and len(h.group(1)) <= level),
                       len(lines))
            return "\n".join(lines[i + 1:end])
    return None


def _readme_table() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The command line")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append(line)
    return rows


def test_the_parser_walk_finds_nested_commands():
    names = {c.name for c in COMMANDS}
    assert {"pflow check", "pflow route", "pflow route explain", "pflow trace show",
            "pflow trace list", "pflow cache info", "pflow cache clear"} <= names
    explain = next(c for c in COMMANDS if c.path == ("route", "explain"))
    assert "--input" in explain.options and "--help" not in explain.options


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_cli_md_names_every_command(command: Command):
    lines = _heading_and_table_lines(CLI_MD.read_text(encoding="utf-8"))
    pattern = re.compile(re.escape(command.name) + r"(?![\w-])")
    assert any(pattern.search(line) for line in lines), \
        f"docs/cli.md has no heading or table row naming `{command.name}`"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.parser is not None
                                     and not any(isinstance(a, argparse._SubParsersAction)
                                                 for a in c.parser._actions)],
                         ids=lambda c: c.name)
def test_cli_md_section_lists_every_long_option(command: Command):
    section = _section(CLI_MD.read_text(encoding="utf-8"), command.name)
    assert section is not None, f"docs/cli.md has no section headed `{command.name}`"
    missing = [o for o in command.options
               if not re.search(re.escape(o) + r"(?![\w-])", section)]
    assert not missing, f"the section `{command.name}` of docs/cli.md does not mention {missing}"


@pytest.mark.parametrize("top", sorted({c.path[0] for c in COMMANDS}))
def test_readme_table_lists_every_command(top: str):
    rows = [r for r in _readme_table()
            if re.match(r"\|\s*`pflow " + re.escape(top) + r"(?![\w-])", r)]
    assert rows, f"README.md's command table has no row for `pflow {top}`"
    for sub in (c for c in COMMANDS if len(c.path) == 2 and c.path[0] == top):
        assert any(re.search(r"(?<![\w-])" + re.escape(sub.path[1]) + r"(?![\w-])", r)
                   for r in rows), \
            f"README.md's row for `pflow {top}` does not list its sub-command `{sub.path[1]}`"


def test_cli_md_mentions_the_top_level_options():
    text = CLI_MD.read_text(encoding="utf-8")
    for option in _long_options(build_parser()):
        assert re.search(re.escape(option) + r"(?![\w-])", text), f"docs/cli.md does not mention {option}"
