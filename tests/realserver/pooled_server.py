"""``python -m llama_cpp.server`` with mean pooling: run as a script with the server's own
arguments. llama-cpp-python's server has no option for the pooling type (its
``Llama`` has one, ``pooling_type``), and a decoder model such as SmolLM2 is served
unpooled — one vector per token — without it; this sets ``LLAMA_POOLING_TYPE_MEAN``
on every model the server loads, then runs the unchanged server module."""

from __future__ import annotations

import runpy
from typing import Any

import llama_cpp

_init = llama_cpp.Llama.__init__


def _pooled(self: Any, *args: Any, **kwargs: Any) -> None:
    kwargs.setdefault("pooling_type", llama_cpp.LLAMA_POOLING_TYPE_MEAN)
    _init(self, *args, **kwargs)


llama_cpp.Llama.__init__ = _pooled  # type: ignore[method-assign]

if __name__ == "__main__":
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
