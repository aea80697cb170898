"""Shared fixtures: locations of the example corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_EXAMPLES = REPO.parent / "shared" / "spec" / "examples"

os.environ.setdefault("NO_COLOR", "1")


def corpus_files() -> list[Path]:
    """Every .pflow file the project promises to check: examples/, stdlib/, the spec's examples."""
    files = sorted((REPO / "examples").rglob("*.pflow")) + sorted((REPO / "stdlib").rglob("*.pflow"))
    if SHARED_EXAMPLES.is_dir():
        files += sorted(SHARED_EXAMPLES.glob("*.pflow"))
    return files


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def fake_openai():
    """A scripted OpenAI-compatible server on 127.0.0.1 (see tests/fakeserver.py),
    stopped at the end of the test."""
    from fakeserver import FakeOpenAI

    with FakeOpenAI() as server:
        yield server
