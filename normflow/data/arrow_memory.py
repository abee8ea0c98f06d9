"""The memory pool the pipeline's Arrow calls allocate from: the C library's allocator (``malloc``), the one torch
and numpy use, rather than Arrow's default (mimalloc in the wheels).

With one allocator, the memory a range's parse lets go serves the next block's tensors; with two, each holds what
it freed for itself. At 5M rows on two threads the statistics pass peaks 20-35 MB lower in the same time, and
scoring 50 MB lower and 10% faster; on one thread the pass takes 2-3% longer (``bench/RESULTS.md``).
"""

from __future__ import annotations

import pyarrow as pa

ARROW_POOL: pa.MemoryPool = pa.system_memory_pool()
"""Passed as ``memory_pool`` to the calls that allocate a range's worth: the CSV readers, the output's formatting."""
