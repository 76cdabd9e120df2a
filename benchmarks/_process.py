"""Measuring in a child process: each measurement gets its own peak RSS (and its own chDB engine)."""

from __future__ import annotations

import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor


def rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(function, *args):
    """Run `function(*args)` in a fresh (spawned) process and return its result.

    Not a multiprocessing.Pool: its workers are daemonic, and a daemonic process may not start the
    run's replay process."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()
