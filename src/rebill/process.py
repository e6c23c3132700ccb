"""What a long-running rebill process (the worker, a server) does for itself once it has started."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """For a long-running process (the worker, a server), once its modules are loaded.

    What was built at start (modules, the tables' metadata, compiled
    statements) lives as long as the process: moved out of the cyclic
    garbage collector's generations, it is no longer traversed by every full
    collection, which the worker's many short-lived objects set off often
    (they took a fifth of its CPU). A far larger first generation makes the
    young collections rare too: reference counting frees nearly everything
    at once, so the young generation only fills while a batch holds its rows
    and states, and a collection then traverses each of them for nothing (at
    10,000 objects they still took 5 % of the worker's CPU; at 100,000 the
    worker makes almost none). Cyclic garbage waits a little longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)
