"""The run configuration of tests that run programs (a plain module: conftest.py names
are not unique)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode


def cfg(tmp_path: Path, **kw: Any) -> RunConfig:
    """A run writing its traces and cache under ``tmp_path``, the cache off unless ``kw``
    says otherwise (``kw``: more :class:`RunConfig` fields)."""
    kw.setdefault("cache", CacheMode.OFF)
    return RunConfig(trace_dir=tmp_path / "traces", cache_dir=tmp_path / "cache", **kw)
