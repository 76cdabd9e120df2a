"""Model versions in the artifact store: a `state_dict` plus metadata, loaded with `weights_only=True`.

A file holds {"state_dict": ..., "metadata": {...}} (plain tensors, strings and numbers), so loading
never runs pickled code. Its sha256 travels in the ModelVersionEvent and the `models` row, and
`load_model` refuses a file whose bytes no longer match.
"""

from __future__ import annotations

from pathlib import Path

import torch

from modyn_stream.artifacts import ArtifactError, ArtifactStore, sha256_file, verified


def model_path(artifacts: ArtifactStore, pipeline_id: str, trigger_index: int) -> Path:
    return artifacts.path(pipeline_id, "models", f"trigger-{trigger_index:06d}.pt")


def save_model(artifacts: ArtifactStore, path: Path, state_dict: dict, metadata: dict) -> str:
    """Write atomically; return the file's sha256."""
    cpu_state = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
    with artifacts.atomic(path) as tmp:
        torch.save({"state_dict": cpu_state, "metadata": metadata}, tmp)
    return sha256_file(path)


def load_model(uri: str, sha256: str | None = None) -> tuple[dict, dict]:
    """(state_dict, metadata) of a model file; with a checksum, only if the bytes match it."""
    path = verified(uri, sha256) if sha256 else ArtifactStore.resolve(uri)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ArtifactError(f"model {uri}: cannot load: {str(exc).splitlines()[0]}") from None
    if not isinstance(content, dict) or "state_dict" not in content:
        raise ArtifactError(f"model {uri}: not a modyn-stream model file (no state_dict)")
    return content["state_dict"], content.get("metadata", {})
