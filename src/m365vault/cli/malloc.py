"""glibc malloc settings that keep the server's memory bounded by its work in flight.

A backup allocates and frees megabyte buffers all the time (stream windows, chunks, envelopes,
pack parts) from several threads. By default glibc raises its mmap threshold to the largest block
freed so far (up to 32 MiB) and gives each thread its own arena, so such buffers end up inside
per-thread heaps that fragment and are rarely given back: RSS creeps up with the length of the
run, i.e. with the tenant (bench_backup (c)). A fixed threshold keeps every block of 1 MiB or more
in its own mapping, returned to the system on free, and two arenas bound the heaps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 1024 * 1024
ARENA_MAX = 2


def bound_malloc() -> bool:
    """Apply the settings (before threads start); False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False  # musl and others have no mallopt: nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_ARENA_MAX, ARENA_MAX) == 1)
    if not applied:
        log.warning("mallopt refused the memory settings; peak memory may grow with long runs")
    return applied
