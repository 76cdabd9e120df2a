"""Labels a classifier cannot take: found before training or scoring, left out and reported.

A label is valid for the sample schema (any long) yet may not be a class of the model: -1, 2^63-1,
or 10 for a 10-class model make the loss index out of bounds. Such samples are left out of the
training set or evaluation window, and the stage says which ones in a dead-letter record beside its
result, so one bad sample neither crashes a stage nor stops every later trigger that includes it.
The rule depends only on the labels, so a model is still rebuilt exactly from its manifest.

>>> table = pa.table({"kafka_partition": [0, 0, 1], "kafka_offset": [3, 4, 9], "key": ["a", "b", "c"],
...                   "label": [2, -7, 10]})
>>> kept, note = keep_classes(table, 10)
>>> kept["key"].to_pylist()
['a']
>>> print(note)
2 of 3 samples left out: labels outside the model's 10 classes: 'b' ([0]@4, label -7), 'c' ([1]@9, label 10)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.selection.manifest import numeric

SHOWN = 5  # samples named in a note; the count covers the rest


def class_count(config: PipelineConfig) -> int | None:
    """The classes a classification pipeline's labels must fall in, where the config says (else None)."""
    if config.training.optimization_criterion.name != "CrossEntropyLoss":
        return None
    classes = config.model.config.get("num_classes")
    return classes if isinstance(classes, int) and classes > 0 else None


def keep_classes(table: pa.Table, classes: int | None) -> tuple[pa.Table, str | None]:
    """`table` without rows whose label is not in [0, classes), and a note naming those left out."""
    if classes is None or table.num_rows == 0:
        return table, None
    labels = numeric(table["label"])
    bad = (labels < 0) | (labels >= classes)
    if not bad.any():
        return table, None
    rows = np.flatnonzero(bad)
    named = ", ".join(
        f"{table['key'][i].as_py()!r} ([{table['kafka_partition'][i].as_py()}]@{table['kafka_offset'][i].as_py()}, "
        f"label {labels[i]})"
        for i in rows[:SHOWN].tolist()
    )
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    note = f"{len(rows)} of {table.num_rows} samples left out: labels outside the model's {classes} classes: "
    return table.filter(pa.array(~bad)), note + named + more
