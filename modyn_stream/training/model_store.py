"""Model versions in the artifact store: full `state_dict`s or exact deltas, loaded with `weights_only=True`.

A file holds {"state_dict": ..., "metadata": {...}} or, under `WeightsDifference`,
{"delta": ..., "operator": ..., "base": {"file", "sha256"}, "metadata": {...}}: plain tensors,
strings and numbers only, so loading never runs pickled code. Optionally the whole file is one
member of a zip archive (`zip: true`).

Deltas are taken on the weights' bit patterns viewed as integers: `xor`, or `sub` as modular
integer subtraction. Both invert exactly, so every version loads bit-for-bit as it was trained;
a float subtraction (new - old) + old would not. Small weight changes leave the high bits
equal, which is what makes deltas compress. A delta names its base by file name and checksum
(same directory, so the artifact root can move); a full model is written every
`full_model_interval` versions to bound the chain a load has to walk.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch

from modyn_stream.artifacts import ArtifactError, ArtifactStore, sha256_file, verified
from modyn_stream.pipeline.schema.model import ModelStorageSection

_ZIP_MEMBER = "model.pt"
LOAD_ERRORS = (OSError, RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError)  # an unusable file
_INTEGER_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


class StoredVersion(NamedTuple):
    """A version already in the store, as the base of the next one's delta."""

    path: Path
    sha256: str
    state_dict: dict
    metadata: dict


def model_path(artifacts: ArtifactStore, pipeline_id: str, trigger_index: int) -> Path:
    return artifacts.path(pipeline_id, "models", f"trigger-{trigger_index:06d}.pt")


def save_model(
    artifacts: ArtifactStore,
    path: Path,
    state_dict: dict,
    metadata: dict,
    *,
    storage: ModelStorageSection | None = None,
    base: StoredVersion | None = None,
) -> str:
    """Write atomically; return the file's sha256.

    With an incremental strategy the model is stored as a delta against `base`, the previous
    version, unless a full model is due.
    """
    storage = storage or ModelStorageSection()
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}
    incremental = storage.incremental_model_strategy
    depth = base.metadata.get("delta_depth", 0) + 1 if base is not None else 0
    if incremental is None or base is None or depth >= (storage.full_model_interval or float("inf")):
        content = {"state_dict": state, "metadata": {**metadata, "delta_depth": 0}}
        compression = _compression(storage.full_model_strategy.zip, storage.full_model_strategy.zip_algorithm)
    else:
        content = {
            "delta": _delta(state, base.state_dict, incremental.operator),
            "operator": incremental.operator,
            "base": {"file": base.path.name, "sha256": base.sha256},
            "metadata": {**metadata, "delta_depth": depth},
        }
        compression = _compression(incremental.zip, incremental.zip_algorithm)
    # Serialised in memory: torch names the records inside its zip after the file written to, and that
    # temporary name (with the pid) would make the same weights give other bytes in every process.
    buffer = io.BytesIO()
    torch.save(content, buffer)
    with artifacts.atomic(path) as tmp:
        if compression is None:
            tmp.write_bytes(buffer.getvalue())
        else:
            with zipfile.ZipFile(tmp, "w", compression=compression) as archive:
                archive.writestr(zipfile.ZipInfo(_ZIP_MEMBER), buffer.getvalue(), compression)  # fixed date: same bytes
    return sha256_file(path)


def load_model(uri: str, sha256: str | None = None) -> tuple[dict, dict]:
    """(state_dict, metadata) of a model version; with a checksum, only if the bytes match it."""
    path = verified(uri, sha256) if sha256 else ArtifactStore.resolve(uri)
    chain = [(path, _read(path))]
    while "delta" in chain[-1][1]:
        base = chain[-1][1]["base"]
        base_path = verified(chain[-1][0].with_name(base["file"]).as_uri(), base["sha256"])
        chain.append((base_path, _read(base_path)))
    state = chain[-1][1]["state_dict"]
    for _, content in reversed(chain[:-1]):
        state = _apply(state, content["delta"], content["operator"])
    return state, chain[0][1].get("metadata", {})


def _read(path: Path) -> dict:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if archive.namelist() == [_ZIP_MEMBER]:  # our compressed form (torch's own files are zips too)
                    path = io.BytesIO(archive.read(_ZIP_MEMBER))
        content = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        raise ArtifactError(f"model {path}: cannot load: {str(exc).splitlines()[0]}") from None
    if not isinstance(content, dict) or not ({"state_dict", "delta"} & content.keys()):
        raise ArtifactError(f"model {path}: not a modyn-stream model file (no state_dict)")
    return content


def _compression(enabled: bool, algorithm: str) -> int | None:
    return getattr(zipfile, algorithm) if enabled else None


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    try:
        return tensor.view(_INTEGER_VIEW[tensor.element_size()])
    except KeyError:
        raise ArtifactError(f"cannot store a delta of a {tensor.dtype} tensor") from None


def _delta(state: dict, base: dict, operator: str) -> dict:
    if state.keys() != base.keys() or any(state[n].shape != base[n].shape for n in state):
        raise ArtifactError("WeightsDifference: the model's parameters differ from the previous version's")
    if operator == "xor":
        return {name: _bits(state[name]) ^ _bits(base[name]) for name in state}
    return {name: _bits(state[name]) - _bits(base[name]) for name in state}  # wraps around: exact inverse below


def _apply(base: dict, delta: dict, operator: str) -> dict:
    combine = torch.bitwise_xor if operator == "xor" else torch.add
    return {name: combine(_bits(base[name].contiguous()), delta[name]).view(base[name].dtype) for name in base}
