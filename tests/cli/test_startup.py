"""`pflow check` starts without the later stages: no plan, runtime, testing or model
code, no litellm or networkx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = 'model default = "echo"\nprompt greet(name: str) -> str = "Hello {{ name }}"\n'
LATER = ("promptflow_dsl.plan", "promptflow_dsl.runtime", "promptflow_dsl.models",
         "promptflow_dsl.testing", "promptflow_dsl.datasets")
# the modules of a handler kind that pflow check may load (the rest are later stages)
KIND_CHECK = ("ast", "clauses", "details", "check")


def test_check_loads_no_later_stage(tmp_path: Path):
    f = tmp_path / "g.pflow"
    f.write_text(GOOD)
    code = ("import sys; from promptflow_dsl import cli; status = cli.main(['check', '-q', sys.argv[1]]);"
            f"later = {LATER!r};"
            f"kind_check = {KIND_CHECK!r};"
            "bad = sorted(m for m in sys.modules if m.startswith(later) "
            "or m.split('.')[0] in ('litellm', 'networkx', 'openai') "
            "or (m.startswith('promptflow_dsl.kinds.') and m.count('.') == 3 "
            "and m.split('.')[3] not in kind_check));"
            "print(status, ','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"], r.stdout


def test_python_m_promptflow_dsl_is_pflow():
    r = subprocess.run([sys.executable, "-m", "promptflow_dsl", "--version"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pflow ")
