"""The training loop's pieces without Kafka: batching across chunks, the payload cache, seeded training."""

import torch

from modyn_stream.pipeline.config import TrainingSection
from modyn_stream.training.fetch import PayloadCache
from modyn_stream.training.loop import _batches, train
from modyn_stream.training.models import build_model


def chunk(start, n):
    x = torch.arange(start, start + n, dtype=torch.float32)
    return x, x.long(), torch.ones(n)


def test_batches_have_a_fixed_size_across_chunk_boundaries():
    sizes = [len(b[0]) for b in _batches([chunk(0, 5), chunk(5, 7), chunk(12, 2)], 4, drop_last=False)]
    assert sizes == [4, 4, 4, 2]
    assert [len(b[0]) for b in _batches([chunk(0, 5), chunk(5, 7), chunk(12, 2)], 4, drop_last=True)] == [4, 4, 4]
    values = torch.cat([b[0] for b in _batches([chunk(0, 5), chunk(5, 7)], 3, drop_last=False)])
    assert values.tolist() == list(range(12)), "every sample once, in order"


def test_payload_cache_evicts_the_least_recently_used_past_its_budget():
    cache = PayloadCache(max_bytes=10)
    cache.put((0, 1), b"aaaa")
    cache.put((0, 2), b"bbbb")
    assert cache.get((0, 1)) == b"aaaa"  # now the most recently used
    cache.put((0, 3), b"cccc")
    assert cache.get((0, 2)) is None and cache.get((0, 1)) == b"aaaa" and cache.bytes == 8


def test_same_seed_and_data_give_the_same_weights_and_sgd_lowers_the_loss():
    config = TrainingSection.model_validate({
        "batch_size": 16, "epochs_per_trigger": 5, "seed": 1,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.5}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"}, "record_loss_every": 1,
    })  # fmt: skip
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    chunks = [(x[i : i + 64], y[i : i + 64], torch.ones(len(x[i : i + 64]))) for i in range(0, 200, 64)]
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_model("MLP", {"in_features": 4, "num_classes": 2, "hidden": [8]})
        outcome = train(model, chunks, config, trigger_index=0, num_samples=200, device=torch.device("cpu"))
        results.append((model.state_dict(), outcome))
    (first, outcome), (second, _) = results
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert outcome.epochs == 5 and outcome.samples_passed == 1000 and len(outcome.losses) == 5 * 13
    assert sum(outcome.losses[-13:]) < sum(outcome.losses[:13]) / 2
