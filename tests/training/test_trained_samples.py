"""The record of what each step trained on: exactly the samples and weights the model saw, the same file for the
same seed and set."""

import pyarrow as pa
import pytest
import torch

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
from modyn_stream.pipeline.schema.training import TrainingSection
from modyn_stream.training.loop import train
from modyn_stream.training.trained_samples import read_trained_samples, trained_samples_path, write_trained_samples
from tests.training.test_downsampling import Recording


class TrainingSteps(Recording):
    """Records the ids of the training steps only, not of the scoring passes (eval mode)."""

    def forward(self, x):
        if self.training:
            self.seen.append(x[:, 0].long().tolist())
        return self.linear(x)


def trained(downsampling: dict | None, seed: int = 3, use_weights: bool = False):
    """(the ids each step's model call saw, the outcome) of 2 epochs over 64 samples whose input is their id."""
    config = TrainingSection.model_validate({
        "batch_size": 8, "seed": seed, "epochs_per_trigger": 2,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.1}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    ids = torch.arange(64, dtype=torch.float32)[:, None]
    weights = 1 + ids[:, 0] / 64
    parts = [(ids[i : i + 24], ids[i : i + 24, 0].long() % 2, weights[i : i + 24]) for i in range(0, 64, 24)]
    torch.manual_seed(seed)
    model = TrainingSteps()
    selection = None if downsampling is None else DownsamplingConfig(ratio=50, **downsampling)
    outcome = train(model, parts, config, trigger_index=0, num_samples=64, device=torch.device("cpu"),
                    use_weights=use_weights, downsampling=selection)  # fmt: skip
    return model.seen, outcome


@pytest.mark.parametrize(
    "downsampling",
    [None, {"strategy": "Loss"}, {"strategy": "RS2", "with_replacement": True},
     {"strategy": "KcenterGreedy", "sample_then_batch": True}],
    ids=["all", "loss-bts", "rs2", "kcenter-stb"],
)  # fmt: skip
def test_each_step_records_the_samples_the_model_trained_on(downsampling):
    calls, outcome = trained(downsampling)
    steps = [positions.tolist() for _, positions, _ in outcome.trained]
    assert steps == calls, "manifest positions = the ids the model saw, in order"
    assert sum(len(p) for p in steps) == outcome.samples_passed
    assert [epoch for epoch, _, _ in outcome.trained] == sorted(epoch for epoch, _, _ in outcome.trained)


def test_weights_are_those_the_loss_used():
    _, plain = trained(None)
    assert all(w.eq(1).all() for _, _, w in plain.trained), "uses_weights off: every loss weighs 1"
    _, weighted = trained(None, use_weights=True)
    for _, positions, w in weighted.trained:
        assert torch.allclose(w, 1 + positions.float() / 64), "the selector's weights"
    _, loss = trained({"strategy": "Loss"})
    assert any((w != 1).any() for _, _, w in loss.trained), "Loss downsampling weighs by 1 / (N p)"


def test_the_file_holds_every_step_with_keys_and_the_same_seed_writes_the_same_bytes(tmp_path):
    manifest = pa.table({"key": [f"k{i}" for i in range(64)]})
    artifacts = ArtifactStore(tmp_path)
    shas = []
    for seed in (3, 3, 4):
        _, outcome = trained({"strategy": "Loss"}, seed=seed)
        path = trained_samples_path(artifacts, "p", seed)
        shas.append(write_trained_samples(artifacts, path, manifest, outcome.trained))
    assert shas[0] == shas[1] != shas[2]
    table = read_trained_samples(trained_samples_path(artifacts, "p", 3))
    assert table.num_rows == outcome.samples_passed
    assert table["key"].to_pylist() == [f"k{p}" for p in table["position"].to_pylist()]
    assert table["step"].to_pylist() == sorted(table["step"].to_pylist())
