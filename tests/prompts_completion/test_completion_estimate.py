"""``pflow estimate`` counts a completion prompt's text as it is sent (the model's
tokenizer on the raw text, no chat template), and one call unless it samples."""

from __future__ import annotations

import json
from pathlib import Path

import promptflow_dsl as pf
from promptflow_dsl.estimate import estimate

PROGRAM = '''
model default = "echo"
model sampler = "echo" { temperature: 0.8 }

prompt greedy(question: str) -> list[int] {
  completion "{{ shots }}\\n\\nQ: {{ question }}\\nA:"
  shots "shots.txt"
}

prompt sampled(question: str) -> list[int] {
  model sampler
  completion "Q: {{ question }}\\nA:"
}

prompt chat(question: str) -> str {
  user "{{ shots }}\\n\\nQ: {{ question }}\\nA:"
  shots "shots.txt"
}
'''


def test_the_raw_text_is_counted_without_a_chat_template(tmp_path: Path) -> None:
    shots = "Q: one and two\nA: [1, 2]\n" * 10
    (tmp_path / "shots.txt").write_text(shots, encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"question": "three"}) + "\n",
                                         encoding="utf-8")
    p = pf.loads(PROGRAM, name="e.pflow", base_dir=tmp_path)
    raw = estimate(p, "greedy", tmp_path / "rows.jsonl")
    t = raw.usage.total
    tok = raw.models.tokenizer("echo")
    assert t.input_min == t.input_max == tok.count(shots + "\n\nQ: three\nA:")
    assert (t.calls_min, t.calls_max) == (1, 1)  # greedy: never sent again
    chat = estimate(p, "chat", tmp_path / "rows.jsonl").usage.total
    assert chat.input_min > t.input_min  # the chat template's tokens on top
    s = estimate(p, "sampled").usage.total
    assert (s.calls_min, s.calls_max) == (1, 3)  # sampled: up to `retries` (2) more
