"""RHO-Loss (Mindermann et al. 2022, "Prioritized training on points that are learnable, worth learning, and not
yet learnt"), as Modyn runs it: before a trigger trains, an irreducible-loss (IL) model is trained on a holdout of
the trigger's own new samples, and the main training keeps the samples with the highest reducible loss, their
training loss minus their IL loss (weight 1).

* `Simple`: the holdout is `holdout_set_ratio` of `holdout_set_ratio_max` of the trigger's new samples, each drawn
  by a keyed hash of (seed, trigger, key), so the same stream gives the same holdout however it arrives; one IL
  model scores every sample.
* `Twin`: the new samples are split in two such halves and an IL model trained on each; a sample of the first half
  is scored by the second model, every other sample by the first (as Modyn's RHOLOSSTwinModel routes them).

The IL models are trained as their own recorded step (`il_training_config`: Modyn's `training` section with
`il_model_id` and `il_model_config`), stored beside the main model under `il-models/`, and with
`use_previous_model` start from the previous trigger's. Their IL losses are computed once per trigger.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
from modyn_stream.pipeline.trust import CodeTrust
from modyn_stream.training.loop import Chunk, build_criterion, criterion_target, train
from modyn_stream.training.model_store import load_model, save_model
from modyn_stream.training.models import build_model


@dataclass
class IrreducibleLoss:
    losses: torch.Tensor  # per manifest position
    models: list[dict] = field(default_factory=list)  # {"uri", "sha256", "samples"} of each IL model
    train_s: float = 0.0


def in_holdout(keys: list[str], seed: int, trigger_index: int, ratio: int, ratio_max: int) -> np.ndarray:
    """Each key's draw: in with probability ratio / ratio_max, from a hash of (seed, trigger, key)."""
    cut = ratio * (1 << 64) // ratio_max
    draws = [int.from_bytes(hashlib.blake2b(f"{seed}:{trigger_index}:{key}".encode(), digest_size=8).digest(), "big")
             for key in keys]  # fmt: skip
    return np.array(draws, dtype=np.uint64) < np.uint64(min(cut, (1 << 64) - 1)) if keys else np.zeros(0, bool)


def irreducible_losses(
    config: DownsamplingConfig,
    chunks: list[Chunk],
    new: np.ndarray,
    keys: list[str],
    *,
    seed: int,
    trigger_index: int,
    criterion_config,
    device: torch.device,
    artifacts: ArtifactStore,
    pipeline_id: str,
    trust: CodeTrust,
) -> IrreducibleLoss:
    """Train the trigger's IL model(s) on its holdout of the `new` samples and return every sample's IL loss."""
    started = time.perf_counter()
    il = config.il_training_config
    drawn = in_holdout(keys, seed, trigger_index, config.holdout_set_ratio, config.holdout_set_ratio_max) & new
    halves = [drawn] if config.holdout_set_strategy == "Simple" else [drawn, new & ~drawn]
    x, y, w = (torch.cat(parts) for parts in zip(*chunks, strict=True))
    result = IrreducibleLoss(torch.zeros(len(x)))
    models = []
    for half, mask in enumerate(halves):
        torch.manual_seed((il.seed if il.seed is not None else seed) * 1_000_003 + trigger_index * 2 + half)
        model = build_model(il.il_model_id, il.il_model_config, trust=trust)
        previous = _path(artifacts, pipeline_id, trigger_index - 1, half, len(halves))
        if il.use_previous_model and previous.exists():
            model.load_state_dict(load_model(previous.as_uri())[0])
        chosen = torch.from_numpy(mask)
        train(model, [(x[chosen], y[chosen], w[chosen])], il, trigger_index=trigger_index,
              num_samples=int(chosen.sum()), device=device)  # fmt: skip
        path = _path(artifacts, pipeline_id, trigger_index, half, len(halves))
        metadata = {"pipeline_id": pipeline_id, "trigger_index": trigger_index, "model": il.il_model_id,
                    "holdout_samples": int(chosen.sum())}  # fmt: skip
        sha = save_model(artifacts, path, model.state_dict(), metadata)
        result.models.append({"uri": ArtifactStore.uri(path), "sha256": sha, "samples": int(chosen.sum())})
        models.append(model)
    losses = [_losses(model, x, y, criterion_config, il.batch_size, device) for model in models]
    result.losses = losses[0] if len(losses) == 1 else torch.where(torch.from_numpy(halves[0]), losses[1], losses[0])
    result.train_s = time.perf_counter() - started
    return result


def _path(artifacts: ArtifactStore, pipeline_id: str, trigger_index: int, half: int, halves: int) -> Path:
    return artifacts.path(
        pipeline_id, "il-models", f"trigger-{trigger_index:06d}{'' if halves == 1 else 'ab'[half]}.pt"
    )


def _losses(model, x, y, criterion_config, batch_size: int, device: torch.device) -> torch.Tensor:
    """Each sample's loss under the IL model, in eval mode."""
    criterion = build_criterion(criterion_config)
    model.to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
            outputs = model(xb)
            loss = criterion(outputs, criterion_target(yb, criterion_config, outputs))
            out.append(loss.reshape(len(xb), -1).mean(1).cpu())
    return torch.cat(out) if out else torch.zeros(0)
