"""Shared fixtures: locations of the example corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corpus_paths import REPO

os.environ.setdefault("NO_COLOR", "1")


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
