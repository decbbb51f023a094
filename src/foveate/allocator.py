"""Keep freed host memory in the process, so a CPU step's temporaries are reused, not faulted in anew."""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MMAP_THRESHOLD = 32 * 2**20
"""Blocks up to this size come from glibc's heap (default: an adaptive threshold from 128 KiB)."""
TRIM_THRESHOLD = 256 * 2**20
"""Free memory at the heap's top kept for reuse (default: 128 KiB)."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Ask glibc to serve blocks up to :data:`MMAP_THRESHOLD` from its heap and keep :data:`TRIM_THRESHOLD` freed.

    By default glibc maps larger blocks afresh and unmaps them when freed, and hands the heap's free top
    back to the kernel, so the megabyte temporaries of every CPU training step fault their pages in again.
    Kept, the CPU presets' runs take 0.59-0.77x the wall-clock for 8-26% more peak memory
    (``benchmarks/allocator.py``). Returns whether the setting was applied: not on another C library, nor
    when glibc's malloc is already tuned by the environment (``MALLOC_*`` or ``GLIBC_TUNABLES``), which is
    then left as the user set it.
    """
    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ:
        return False
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
