"""A drift check against the training it decides about, side by side in one run.

The digits example's workload: SmallCNN on 1x8x8 digits, batch 64, 2 epochs. "training": `train()` of one
trigger on --samples in-memory samples (the example's largest training set is 5,000). "drift check": one
DataDriftTrigger decision with --window-sample windows, as the trigger service makes it: the current window
embedded by the model's penultimate layer chunk by chunk (`CurrentWindows`, one chunk per evaluation interval of
--interval samples), then MMD (Gaussian RBF, median bandwidth of the reference) against the reference, whose
embeddings, bandwidth and kernel sum are kept from the decision before. Measured three ways: a decision with a
new model (every chunk embedded, every kernel sum computed: the first after a trigger, or after a restart), the
steady decisions after it (each moves the window on by one interval: one new chunk; 4 per repeat), and a
steady one with a 100-permutation test (which needs the whole kernel matrix again). Fetching from Kafka is the
trainer's own path (benchmarks/trainer.py) and is left out of both sides. They run interleaved --repeat times
(medians, with min-max), so this machine's noise hits all alike.
Target (issue 17): a steady drift check below 10% of the training time per trigger.
Usage: python benchmarks/drift.py [--samples 5000] [--window 5000] [--interval 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import report

STEADY = 4  # steady decisions after each one with a new model


def main() -> None:
    import numpy as np
    import torch

    from modyn_stream.datasets import generate
    from modyn_stream.pipeline.schema.drift import DataDriftTrigger
    from modyn_stream.pipeline.schema.training import TrainingSection
    from modyn_stream.training.embeddings import forward_with_embeddings
    from modyn_stream.training.loop import train
    from modyn_stream.training.models import build_model
    from modyn_stream.triggers.drift.current_window import CurrentWindows
    from modyn_stream.triggers.drift.metrics import measure

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5000, help="training-set size of the trigger")
    parser.add_argument("--window", type=int, default=5000, help="samples in each drift window")
    parser.add_argument("--interval", type=int, default=500, help="evaluation_interval_data_points")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = generate(
        "digits-drift", samples=max(args.samples, 2 * args.window + (STEADY + 3) * args.repeat * args.interval), seed=0
    )
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
        reference = forward_with_embeddings(model, x[: args.window])[1].double().numpy()  # kept by the service
    drift = DataDriftTrigger.model_validate({"id": "DataDriftTrigger",
        "evaluation_interval_data_points": args.interval, "metrics": {"mmd": {"id": "AlibiDetectMmdDriftMetric",
        "decision_criterion": {"id": "ThresholdDecisionCriterion", "threshold": 0.1}}},
        "windowing_strategy": {"id": "AmountWindowingStrategy", "amount_ref": args.window,
                               "amount_cur": args.window, "allow_overlap": True}})  # fmt: skip
    pipeline = SimpleNamespace(trigger=drift)
    stream = InMemory(model, x)
    metrics = {permutations: drift.metrics["mmd"].model_copy(update={"num_permutations": permutations})
               for permutations in (None, 100)}  # fmt: skip
    caches = {permutations: {} for permutations in metrics}  # kept per reference: bandwidth, its kernel sum
    for permutations, metric in metrics.items():  # the reference's part, once per reference
        measure(metric, reference, reference[: args.window // 2], seed=0, cache=caches[permutations])
    windows, end = CurrentWindows(stream), [2 * args.window]  # the current window: after the reference

    def check(permutations: int | None, steady: bool) -> float:
        nonlocal windows
        model.eval()  # as the trigger service loads it (training left it in train mode)
        if not steady:  # a new model: nothing of the current window kept
            windows, caches[permutations]["chunks"] = CurrentWindows(stream), {}
        end[0] += args.interval if steady else 0
        rows = stream.window(end[0], args.window)
        started = time.perf_counter()
        current = windows.window("bench", pipeline, stream, rows, 0)
        measure(metrics[permutations], reference, current.vectors, seed=0, cache=caches[permutations],
                chunks=current.chunks)  # fmt: skip
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"training": [], "new model": [], "check": [], "check100": []}
    training()  # warm: allocator, kernels
    for _ in range(args.repeat):
        times["training"].append(training())
        times["new model"].append(check(None, steady=False))
        times["check"] += [check(None, steady=True) for _ in range(STEADY)]
        times["check100"].append(check(100, steady=True))
    median = {k: statistics.median(v) for k, v in times.items()}
    windows_named = f"MMD {args.window:,} vs {args.window:,}"
    steady = f"drift check, {windows_named}, the window {args.interval:,} samples on"
    names = {"training": f"train one trigger ({args.samples:,} samples, 2 epochs)",
             "new model": f"drift check with a new model, {windows_named}",
             "check": steady, "check100": f"{steady}, 100 permutations"}  # fmt: skip
    rows = [{"step": names[k], "median s": median[k], "min s": min(v), "max s": max(v),
             "x training": median[k] / median["training"]} for k, v in times.items()]  # fmt: skip
    summary = [
        {"measure": "drift check / training per trigger", "value": median["check"], "unit": "s",
         "baseline": median["training"], "ratio": median["check"] / median["training"], "target": "< 0.10",
         "met": median["check"] / median["training"] < 0.10},
        {"measure": "drift check with a new model / training", "value": median["new model"], "unit": "s",
         "baseline": median["training"], "ratio": median["new model"] / median["training"], "target": None,
         "met": None},
        {"measure": "drift check with 100 permutations / training", "value": median["check100"], "unit": "s",
         "baseline": median["training"], "ratio": median["check100"] / median["training"], "target": None,
         "met": None},
    ]  # fmt: skip
    report("drift", rows, summary)


class InMemory:
    """The trigger service's window data and sample index over in-memory samples: sample i is keyed k{i:07d},
    its vector the model's embedding (in batches of 64, as `WindowData` embeds a window)."""

    def __init__(self, model, x) -> None:
        self.model, self.x = model, x

    def window(self, upto, last: int):
        import pyarrow as pa

        end = upto if isinstance(upto, int) else int(upto.key[1:]) + 1
        numbers = range(max(end - last, 0), end)
        return pa.table({"key": [f"k{i:07d}" for i in numbers], "t": list(numbers)})

    def vectors(self, pid, config, rows, model_index):
        import numpy as np
        import torch

        from modyn_stream.training.embeddings import forward_with_embeddings

        x = self.x[[int(key[1:]) for key in rows["key"].to_pylist()]]
        with torch.inference_mode():
            parts = [forward_with_embeddings(self.model, x[i : i + 64])[1] for i in range(0, len(x), 64)]
        return torch.cat(parts).double().numpy(), np.ones(len(x), dtype=bool)


if __name__ == "__main__":
    main()
