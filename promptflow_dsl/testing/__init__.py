"""Tests in the language: running ``test`` blocks, mocks, and the Python test API.

See :mod:`.runner` for the semantics of a test block, :mod:`.harness` for testing
a program from Python, and :mod:`.pytest_plugin` for collecting ``*.pflow`` test
blocks with pytest.
"""

from .runner import TestOutcome, run_test, run_test_async

__all__ = ["TestOutcome", "run_test", "run_test_async"]
