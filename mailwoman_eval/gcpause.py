"""Python's cyclic garbage collector, paused over the stages that build many objects.

A 4561-row evaluation creates a few hundred thousand small lists, tuples and dicts (encodings,
labels, records) and no reference cycles worth collecting. The collector still runs every 700
allocations and, as they survive, walks the whole growing heap again in full collections: 20-25%
of the per-entry decoding time at the en-us size (docs/benchmarks.md). Reference counting frees
everything as usual while it is paused.

When the outermost pause ends, what the stage built is promoted to the oldest generation before
the collector is re-enabled. Otherwise the first young collection after the pause walks every
object the stage allocated (all still in generation 0): 40-60 ms at the en-us size, right after
`evaluate` returns. Promotion is what two young collections would have done to these survivors,
without walking them; `gc.freeze()` + `gc.unfreeze()` splices the generation lists in O(1).
Unreachable cycles among them are still found by the next full collection (nothing leaks), and
the promotion is skipped if the program froze objects itself (unfreezing would undo its freeze).
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
            if gc.get_freeze_count() == 0:
                gc.freeze()  # every tracked object -> permanent generation (list splice) ...
                gc.unfreeze()  # ... -> oldest generation (list splice)
            gc.enable()
