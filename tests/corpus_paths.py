"""Where the example corpora are, and the bench scripts as modules (a plain module:
conftest.py names are not unique)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
SHARED_EXAMPLES = REPO.parent / "shared" / "spec" / "examples"


def corpus_files() -> list[Path]:
    """Every .pflow file the project promises to check: examples/, stdlib/, the spec's examples."""
    files = sorted((REPO / "examples").rglob("*.pflow")) + sorted((REPO / "stdlib").rglob("*.pflow"))
    if SHARED_EXAMPLES.is_dir():
        files += sorted(SHARED_EXAMPLES.glob("*.pflow"))
    return files


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` loaded afresh as module ``name`` (registered in ``sys.modules``,
    where its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
