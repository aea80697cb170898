"""The sketch hole options completion offers are the ones sketch templates accept."""

from __future__ import annotations

from promptflow_dsl.lang.holes import Hole, parse_template
from promptflow_dsl.lsp.completion import HOLE_OPTIONS

# each offered option, completed as a user would finish it
FINISHED = {
    'stop="': 'stop="\\n"', "stop=[": 'stop=["a", "b"]', "keep_stop": 'stop="." keep_stop',
    "min_chars=": "min_chars=1", "max_chars=": "max_chars=9", "in {": 'in {"a", "b"}',
    ": int": ": int", ": float": ": float", ": bool": ": bool", ": str": ": str",
    'regex=r"': 'regex=r"[a-z]+"', "max_tokens=": "max_tokens=8",
}


def test_every_offered_option_parses() -> None:
    assert sorted(label for label, _ in HOLE_OPTIONS) == sorted(FINISHED)
    for label, finished in FINISHED.items():
        template = parse_template(f"Answer: [value {finished}]")
        assert template.errors == (), (label, template.errors)
        assert any(isinstance(s, Hole) for s in template.segments), label
