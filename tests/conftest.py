"""Shared fixtures: locations of the example corpora."""

from __future__ import annotations

import os
import signal as _signal
from pathlib import Path

import pytest
from corpus_paths import REPO

# A shell that starts the suite as a background job ignores SIGINT in it, and an ignored
# signal stays ignored in every process it starts: the Ctrl-C tests need Python's own
# handler (a KeyboardInterrupt), as in a terminal.
if _signal.getsignal(_signal.SIGINT) == _signal.SIG_IGN:
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)

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
