"""Shared fixtures: locations of the example corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corpus_paths import REPO

os.environ.setdefault("NO_COLOR", "1")
# tests talk to the loopback fake server, which is no server kind: no profile probing
# (tests/realserver and tests/models/test_profiles.py turn it on where they test it)
os.environ.setdefault("PFLOW_SERVER_PROBE", "0")


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
