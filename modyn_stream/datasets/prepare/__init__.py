"""`modyn-stream datasets prepare NAME SOURCE OUT`: the files of Modyn's benchmark datasets, as the user downloaded
them, turned into what `modyn-stream replay` reads, with the event times Modyn's own data-generation scripts give.

Fixed-size samples become one `.npz` (x, y, t in ms: `--timestamps field`), text rows one tab-separated file (text,
label, timestamp), images a folder of image and `.label` files whose modification times are the event times
(`--timestamps mtime`), Criteo one binary file per day of 160-byte records (label, 13 float32, 26 int32), as
Modyn's. Each preparer reads and checks all of its input before it writes, and names the file and place of what
it cannot read; pickles are read by a loader that builds only containers and NumPy arrays, never code.
"""

from __future__ import annotations

from modyn_stream.datasets.prepare.base import Prepared, PrepareError
from modyn_stream.datasets.prepare.criteo import prepare_criteo
from modyn_stream.datasets.prepare.images import prepare_cglm, prepare_cloc, prepare_mnist
from modyn_stream.datasets.prepare.wildtime import prepare_arxiv, prepare_fmow, prepare_huffpost, prepare_yearbook

PREPARERS = {
    "yearbook": prepare_yearbook,
    "fmow": prepare_fmow,
    "arxiv": prepare_arxiv,
    "huffpost": prepare_huffpost,
    "mnist": prepare_mnist,
    "cglm": prepare_cglm,
    "cloc": prepare_cloc,
    "criteo": prepare_criteo,
}

__all__ = ["PREPARERS", "PrepareError", "Prepared"]
