"""Measuring in a child process: each measurement gets its own peak RSS (and its own chDB engine)."""

from __future__ import annotations

import multiprocessing
import resource


def rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(function, *args):
    """Run `function(*args)` in a fresh (spawned) process and return its result."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)
