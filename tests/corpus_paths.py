"""Where the example corpora are (a plain module: conftest.py names are not unique)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_EXAMPLES = REPO.parent / "shared" / "spec" / "examples"


def corpus_files() -> list[Path]:
    """Every .pflow file the project promises to check: examples/, stdlib/, the spec's examples."""
    files = sorted((REPO / "examples").rglob("*.pflow")) + sorted((REPO / "stdlib").rglob("*.pflow"))
    if SHARED_EXAMPLES.is_dir():
        files += sorted(SHARED_EXAMPLES.glob("*.pflow"))
    return files
