"""Model files: full and WeightsDifference versions load bit-for-bit as saved."""

import pytest
import torch

from modyn_stream.artifacts import ArtifactError, ArtifactStore
from modyn_stream.pipeline.schema.model import ModelStorageSection
from modyn_stream.training.model_store import StoredVersion, load_model, model_path, save_model


def _bits(state: dict) -> dict:
    return {name: t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
            for name, t in state.items()}  # fmt: skip


def _versions(count: int, seed: int = 0) -> list[dict]:
    """Weights drifting a little per version, with the awkward values: NaN, inf, -0.0, extremes."""
    generator = torch.Generator().manual_seed(seed)
    state = {
        "w": torch.randn(64, 32, generator=generator),
        "half": torch.randn(16, generator=generator).half(),
        "steps": torch.tensor(2**62, dtype=torch.int64),
        "mask": torch.rand(8, generator=generator) > 0.5,
    }
    state["w"][0, :4] = torch.tensor([float("nan"), float("inf"), -0.0, torch.finfo(torch.float32).max])
    versions = []
    for _ in range(count):
        versions.append({name: t.clone() for name, t in state.items()})
        state["w"] += 1e-3 * torch.randn(64, 32, generator=generator)
        state["half"] -= 0.01
        state["steps"] += 2**62  # overflows: the delta must still invert
        state["mask"] = ~state["mask"]
    return versions


@pytest.mark.parametrize("operator", ["sub", "xor"])
@pytest.mark.parametrize("zipped", [False, True])
def test_every_version_of_a_delta_chain_loads_exactly(tmp_path, operator, zipped):
    artifacts = ArtifactStore(tmp_path)
    storage = ModelStorageSection.model_validate(
        {"incremental_model_strategy": {"name": "WeightsDifference", "config": {"operator": operator}, "zip": zipped,
                                        "full_model_interval": 3}}
    )  # fmt: skip
    saved, base = [], None
    for index, state in enumerate(_versions(7)):
        path = model_path(artifacts, "p", index)
        sha = save_model(artifacts, path, state, {"trigger_index": index}, storage=storage, base=base)
        saved.append((path, sha))
        base = StoredVersion(path, sha, state, load_model(path.as_uri(), sha)[1])
    depths = []
    for (path, sha), state in zip(saved, _versions(7), strict=True):
        loaded, metadata = load_model(path.as_uri(), sha)
        depths.append(metadata["delta_depth"])
        assert {n: t.dtype for n, t in loaded.items()} == {n: t.dtype for n, t in state.items()}
        assert all(torch.equal(a, b) for a, b in zip(_bits(loaded).values(), _bits(state).values(), strict=True))
    assert depths == [0, 1, 2, 0, 1, 2, 0], "a full model every full_model_interval versions"


def test_deltas_of_small_changes_compress_below_a_full_model(tmp_path):
    artifacts = ArtifactStore(tmp_path)
    first, second = _versions(2)
    full = save_model(artifacts, tmp_path / "full.pt", first, {})
    storage = ModelStorageSection.model_validate(
        {"incremental_model_strategy": {"config": {"operator": "xor"}, "zip": True}}
    )  # fmt: skip
    save_model(artifacts, tmp_path / "delta.pt", second, {}, storage=storage,
               base=StoredVersion(tmp_path / "full.pt", full, first, {}))  # fmt: skip
    assert (tmp_path / "delta.pt").stat().st_size < 0.8 * (tmp_path / "full.pt").stat().st_size


def test_a_delta_whose_base_changed_is_refused(tmp_path):
    artifacts = ArtifactStore(tmp_path)
    first, second = _versions(2)
    sha = save_model(artifacts, tmp_path / "a.pt", first, {})
    storage = ModelStorageSection.model_validate({"incremental_model_strategy": {"config": {"operator": "sub"}}})
    save_model(artifacts, tmp_path / "b.pt", second, {}, storage=storage,
               base=StoredVersion(tmp_path / "a.pt", sha, first, {}))  # fmt: skip
    save_model(artifacts, tmp_path / "a.pt", second, {})  # the base is overwritten
    with pytest.raises(ArtifactError, match=r"a\.pt: sha256 .* does not match"):
        load_model((tmp_path / "b.pt").as_uri())


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match=r"x\.pt: cannot load"):
        load_model((tmp_path / "x.pt").as_uri())


SAVE_IN_A_CHILD = """
import sys, torch
from modyn_stream.artifacts import ArtifactStore
from modyn_stream.training.model_store import save_model
store = ArtifactStore(sys.argv[1])
print(save_model(store, store.path(sys.argv[2]), {"w": torch.arange(12.0).reshape(3, 4)}, {"model_id": "p/0"}))
"""


@pytest.mark.parametrize("zipped", [False, True])
def test_the_same_weights_give_the_same_bytes_whatever_the_file_name_or_process(tmp_path, zipped):
    import subprocess
    import sys

    storage = ModelStorageSection.model_validate({"full_model_strategy": {"zip": zipped}})
    store = ArtifactStore(tmp_path)
    weights = {"w": torch.arange(12.0).reshape(3, 4)}
    here = {save_model(store, store.path(name), weights, {"model_id": "p/0"}, storage=storage) for name in ("a", "b")}
    assert len(here) == 1  # torch no longer names the records after the (temporary) file written to
    if not zipped:
        child = subprocess.run(
            [sys.executable, "-c", SAVE_IN_A_CHILD, str(tmp_path), "c"], capture_output=True, text=True, check=True
        )
        assert child.stdout.strip() in here  # another pid, another temporary name: the same bytes
