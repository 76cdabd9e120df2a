"""In-trainer downsampling at 50% against training on all the data, side by side in one run.

The digits example's workload: SmallCNN on 1x8x8 digits of the built-in drifting stream, batch 64, 4 epochs,
--samples in-memory samples per trigger. Each strategy trains the same trigger from the same initial weights
through `train()`, as the trainer does. Batch then sample (every batch scored by the model, half of it kept):
Loss, GradNorm, Uncertainty (Margin) and the coresets KcenterGreedy, Craig, Submodular and GradMatch. Sample
then batch (the whole set scored before each epoch, or once with period 0, half of it trained on): Loss,
GradNorm, Uncertainty. RS2 without and with replacement samples then batches (half of the set each epoch, no
scoring); "random half" trains every epoch on one seeded random half (a presampled set, the baseline at the
same ratio). Accuracy: of each model on the --holdout samples that follow the training set in the stream, as
the mean (and min-max) over the repeats, each with its own training seed: one seed's accuracy swings by 0.2
and more from one epoch to the next here. All run interleaved --repeat times (medians of the times, with
min-max), so this machine's noise hits all alike.
Target (issue 18): StB and RS2 at most 0.6x of the full training time; the BtS strategies' overhead reported.
Usage: python benchmarks/downsampling.py [--samples 5000] [--holdout 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import report

STRATEGIES = {
    "all data": None,
    "random half": None,
    "Loss": {"strategy": "Loss"},
    "GradNorm": {"strategy": "GradNorm"},
    "Uncertainty (Margin)": {"strategy": "Uncertainty", "score_metric": "Margin"},
    "Loss, sample then batch": {"strategy": "Loss", "sample_then_batch": True},
    "GradNorm, sample then batch": {"strategy": "GradNorm", "sample_then_batch": True},
    "Uncertainty (Margin), sample then batch": {
        "strategy": "Uncertainty",
        "score_metric": "Margin",
        "sample_then_batch": True,
    },
    "Uncertainty (Margin), sample then batch, scored once": {
        "strategy": "Uncertainty",
        "score_metric": "Margin",
        "sample_then_batch": True,
        "period": 0,
    },
    "KcenterGreedy": {"strategy": "KcenterGreedy"},
    "Craig (LazyGreedy)": {"strategy": "Craig", "greedy": "LazyGreedy"},
    "Submodular (FacilityLocation, LazyGreedy)": {
        "strategy": "Submodular",
        "submodular_function": "FacilityLocation",
        "submodular_optimizer": "LazyGreedy",
    },
    "GradMatch": {"strategy": "GradMatch"},
    "RS2 without replacement": {"strategy": "RS2", "with_replacement": False},
    "RS2 with replacement": {"strategy": "RS2", "with_replacement": True},
}


def main() -> None:
    import numpy as np
    import torch

    from modyn_stream.datasets import generate
    from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
    from modyn_stream.pipeline.schema.training import TrainingSection
    from modyn_stream.training.loop import train
    from modyn_stream.training.models import build_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5000, help="training-set size of the trigger")
    parser.add_argument("--holdout", type=int, default=1000, help="samples after the set, for the accuracy")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = generate("digits-drift", samples=args.samples + args.holdout, seed=0)
    x = torch.from_numpy(data.x.astype(np.float32) / 255).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(data.y).long()
    train_x, train_y, test_x, test_y = x[: args.samples], y[: args.samples], x[args.samples :], y[args.samples :]
    half = torch.randperm(args.samples, generator=torch.Generator().manual_seed(7))[: args.samples // 2].sort().values
    config = TrainingSection.model_validate({
        "device": "cpu", "batch_size": 64, "epochs_per_trigger": 4, "seed": 42,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.05, "momentum": 0.9}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip

    def run(name: str, seed: int) -> tuple[float, float, int]:
        """(training seconds, holdout accuracy, samples trained)."""
        torch.manual_seed(seed)
        model = build_model("SmallCNN", {"num_classes": 10, "in_channels": 1})
        xs, ys = (train_x[half], train_y[half]) if name == "random half" else (train_x, train_y)
        fields = STRATEGIES[name]
        downsampling = None if fields is None else DownsamplingConfig(ratio=50, **fields)
        started = time.perf_counter()
        outcome = train(model, [(xs, ys, torch.ones(len(xs)))], config.model_copy(update={"seed": seed}),
                        trigger_index=1, num_samples=len(xs), device=torch.device("cpu"),
                        downsampling=downsampling)  # fmt: skip
        seconds = time.perf_counter() - started
        model.eval()
        with torch.inference_mode():
            accuracy = float((model(test_x).argmax(1) == test_y).float().mean())
        return seconds, accuracy, outcome.samples_passed

    run("all data", 0)  # warm: allocator, kernels, torch's lazy imports
    times: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    scores: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    passed: dict[str, int] = {}
    for repeat in range(args.repeat):
        for name in STRATEGIES:
            seconds, accuracy, passed[name] = run(name, 42 + repeat)
            times[name].append(seconds)
            scores[name].append(accuracy)
    median = {name: statistics.median(v) for name, v in times.items()}
    accuracy = {name: statistics.mean(v) for name, v in scores.items()}
    full = median["all data"]
    rows = [{"strategy": name, "median s": median[name], "min s": min(v), "max s": max(v),
             "x all data": median[name] / full, "samples trained": passed[name],
             "holdout accuracy": accuracy[name], "accuracy min-max": f"{min(scores[name]):.2f}-{max(scores[name]):.2f}"}
            for name, v in times.items()]  # fmt: skip
    summary = [
        {"measure": f"{name} at 50% / all data, training time", "value": median[name], "unit": "s", "baseline": full,
         "ratio": median[name] / full, "target": "<= 0.60" if _samples_first(name) else None,
         "met": median[name] / full <= 0.60 if _samples_first(name) else None}
        for name in STRATEGIES if name != "all data"
    ]  # fmt: skip
    summary += [
        {"measure": f"{name} at 50%, holdout accuracy against a random half", "value": accuracy[name], "unit": "",
         "baseline": accuracy["random half"], "ratio": accuracy[name] / max(accuracy["random half"], 1e-9),
         "target": None, "met": None}
        for name in STRATEGIES if name not in ("all data", "random half")
    ]  # fmt: skip
    report("downsampling", rows, summary)


def _samples_first(name: str) -> bool:
    return name.startswith("RS2") or "sample then batch" in name


if __name__ == "__main__":
    main()
