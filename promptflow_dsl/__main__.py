"""``python -m promptflow_dsl`` is the ``pflow`` command."""

from .cli import entry

entry()
