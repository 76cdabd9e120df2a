"""Shared rich consoles: results to stdout, progress and errors to stderr.

Soft wrap: a message stays one line however narrow the terminal (or a pipe) is, so scripts and
tests can read it; tables still fit the width.
"""

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
