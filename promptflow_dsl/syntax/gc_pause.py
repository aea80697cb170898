"""Pausing Python's cyclic garbage collector while a large, acyclic structure is built.

Parsing and checking allocate hundreds of thousands of small objects and free almost
none until they finish; each pass of the collector walks all of them again, which made
a 10,000-line file take a third longer to parse.  Nothing built in these stages forms
reference cycles that need the collector (reference counting frees the rest), so it is
paused for their duration and resumed after.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic collector off for the ``with`` block, then back on if it was on (a
    nested or concurrent use never leaves it off).  Never raises."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
