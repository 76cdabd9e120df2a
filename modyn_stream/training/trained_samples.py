"""What a model version was trained on: every step's samples, in the order trained, with the weight each
sample's loss had (selector weight times downsampling weight; 1 where the loss is unweighted).

One Arrow IPC file per trigger beside the model (epoch, step, manifest position, key, weight), its sha256 in the
model file's metadata, the ModelVersionEvent and `models`: a selection can be audited, and a model rebuilt from
the exact samples and weights it saw. Its bytes depend only on what was trained, so the same seed and training
set give the same file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from modyn_stream.artifacts import ArtifactStore, sha256_file

SCHEMA = pa.schema(
    [
        ("epoch", pa.uint16()),
        ("step", pa.uint32()),
        ("position", pa.uint32()),  # the sample's row in the trigger's training-set manifest
        ("key", pa.string()),
        ("weight", pa.float32()),
    ]
)
BATCH_ROWS = 1 << 16


def trained_samples_path(artifacts: ArtifactStore, pipeline_id: str, trigger_index: int) -> Path:
    return artifacts.path(pipeline_id, "trained-samples", f"trigger-{trigger_index:06d}.arrow")


def write_trained_samples(artifacts: ArtifactStore, path: Path, manifest: pa.Table, trained: list) -> str:
    """Write the steps `trained` ((epoch, manifest positions, weights) each) atomically; return the sha256."""
    positions = _joined([p.numpy() for _, p, _ in trained], np.int64)
    table = pa.Table.from_arrays(
        [
            pa.array(_joined([np.full(len(p), e) for e, p, _ in trained], np.uint16)),
            pa.array(_joined([np.full(len(p), step) for step, (_, p, _) in enumerate(trained)], np.uint32)),
            pa.array(positions.astype(np.uint32)),
            manifest["key"].take(pa.array(positions)).combine_chunks(),
            pa.array(_joined([w.numpy() for _, _, w in trained], np.float32)),
        ],
        schema=SCHEMA,
    )
    with artifacts.atomic(path) as tmp, ipc.new_file(tmp, SCHEMA, options=ipc.IpcWriteOptions(compression="lz4")) as w:
        w.write_table(table, max_chunksize=BATCH_ROWS)
    return sha256_file(path)


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def read_trained_samples(path: Path) -> pa.Table:
    return ipc.open_file(pa.memory_map(str(path))).read_all()
