"""A drift check against the training it decides about, side by side in one run.

The digits example's workload: SmallCNN on 1x8x8 digits, batch 64, 2 epochs. "training": `train()` of one
trigger on --samples in-memory samples (the example's largest training set is 5,000). "drift check": one
DataDriftTrigger decision with 5,000-sample windows, as the trigger service makes it with what it keeps of
the reference (its embeddings, bandwidth and kernel sum) cached: the current window embedded by the model's
penultimate layer, then MMD (Gaussian RBF, median bandwidth) against the reference; once without a test,
once with a 100-permutation test. Fetching the window from Kafka is the trainer's own path
(benchmarks/trainer.py) and is left out of both sides.
The three run interleaved --repeat times (medians, with min-max), so this machine's noise hits all alike.
Target (issue 17): a drift check below 10% of the training time per trigger.
Usage: python benchmarks/drift.py [--samples 5000] [--window 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import report


def main() -> None:
    import numpy as np
    import torch

    from modyn_stream.datasets import generate
    from modyn_stream.pipeline.schema.drift import AlibiDetectMmdDriftMetric
    from modyn_stream.pipeline.schema.training import TrainingSection
    from modyn_stream.training.embeddings import forward_with_embeddings
    from modyn_stream.training.loop import train
    from modyn_stream.training.models import build_model
    from modyn_stream.triggers.drift.metrics import measure

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5000, help="training-set size of the trigger")
    parser.add_argument("--window", type=int, default=5000, help="samples in each drift window")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = generate("digits-drift", samples=max(args.samples, 2 * args.window), seed=0)
    x = torch.from_numpy(data.x.astype(np.float32) / 255).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(data.y)
    config = TrainingSection.model_validate({
        "device": "cpu", "batch_size": 64, "epochs_per_trigger": 2, "seed": 42,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.05, "momentum": 0.9}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    model = build_model("SmallCNN", {"num_classes": 10, "in_channels": 1})
    chunks = [(x[: args.samples], y[: args.samples], torch.ones(args.samples))]

    def training() -> float:
        started = time.perf_counter()
        train(model, chunks, config, trigger_index=1, num_samples=args.samples, device=torch.device("cpu"))
        return time.perf_counter() - started

    model.eval()
    with torch.inference_mode():
        reference = forward_with_embeddings(model, x[: args.window])[1].double().numpy()  # cached by the service

    caches: dict[int | None, dict] = {}  # what the service keeps of the reference (bandwidth, its kernel sum)

    def check(permutations: int | None) -> float:
        metric = AlibiDetectMmdDriftMetric(
            decision_criterion={"id": "ThresholdDecisionCriterion", "threshold": 0.1}, num_permutations=permutations
        )
        if permutations not in caches:  # the reference's part, once per reference
            caches[permutations] = {}
            measure(metric, reference, reference[: args.window // 2], seed=0, cache=caches[permutations])
        started = time.perf_counter()
        current = x[args.window : 2 * args.window]
        with torch.inference_mode():
            embedded = torch.cat([forward_with_embeddings(model, current[i : i + 64])[1]
                                  for i in range(0, len(current), 64)]).double().numpy()  # fmt: skip
        measure(metric, reference, embedded, seed=0, cache=caches[permutations])
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"training": [], "check": [], "check100": []}
    training()  # warm: allocator, kernels
    for _ in range(args.repeat):
        times["training"].append(training())
        times["check"].append(check(None))
        times["check100"].append(check(100))
    median = {k: statistics.median(v) for k, v in times.items()}
    names = {"training": f"train one trigger ({args.samples:,} samples, 2 epochs)",
             "check": f"drift check, MMD {args.window:,} vs {args.window:,}",
             "check100": f"drift check, MMD {args.window:,} vs {args.window:,}, 100 permutations"}  # fmt: skip
    rows = [{"step": names[k], "median s": median[k], "min s": min(v), "max s": max(v),
             "x training": median[k] / median["training"]} for k, v in times.items()]  # fmt: skip
    summary = [
        {"measure": "drift check / training per trigger", "value": median["check"], "unit": "s",
         "baseline": median["training"], "ratio": median["check"] / median["training"], "target": "< 0.10",
         "met": median["check"] / median["training"] < 0.10},
        {"measure": "drift check with 100 permutations / training", "value": median["check100"], "unit": "s",
         "baseline": median["training"], "ratio": median["check100"] / median["training"], "target": None,
         "met": None},
    ]  # fmt: skip
    report("drift", rows, summary)


if __name__ == "__main__":
    main()
