"""Python's cyclic garbage collector, paused over the stages that build many objects.

A 4561-row evaluation creates a few hundred thousand small lists, tuples and dicts (encodings,
labels, records) and no reference cycles worth collecting. The collector still runs every 700
allocations and, as they survive, walks the whole growing heap again in full collections: 20-25%
of the per-entry decoding time at the en-us size (docs/benchmarks.md). Reference counting frees
everything as usual while it is paused; it is re-enabled (if it was on) when the stage ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Also usable as a decorator (`@gc_paused()`); nests safely."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
