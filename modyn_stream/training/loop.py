"""The training loop: optimizers, criterion, scheduler and AMP from Modyn's `training` section.

Data arrives in chunks (manifest order) from a background loader. The first epoch trains on each
chunk as it arrives, shuffled within the chunk, so loading overlaps training; later epochs shuffle
the whole set. Every shuffle comes from a generator seeded by (seed, trigger, epoch) and chunk
boundaries depend only on the manifest, so the same seed and manifest give the same weights on CPU.
Each sample carries its position in the manifest through shuffles and downsampling, so the outcome
records which samples every step trained on, and with what weight (training/trained_samples.py).
"""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
from modyn_stream.pipeline.schema.training import OptimizationCriterion, OptimizerConfig, TrainingSection
from modyn_stream.training.checkpoint import Checkpointer
from modyn_stream.training.downsampling import rs2_subsets, scored_subset, select
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.schedulers import build_scheduler

CLASS_INDEX_LOSSES = {"CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"}  # targets are class indices
Chunk = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, labels, per-sample weights
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # and the samples' manifest positions


@dataclass
class TrainOutcome:
    epochs: int = 0
    samples_passed: int = 0
    final_loss: float | None = None
    losses: list[float] = field(default_factory=list)  # every `record_loss_every` batches
    train_s: float = 0.0
    downsample_s: float = 0.0  # of train_s: scoring and selecting samples
    resumed_after: int = 0  # batches restored from a checkpoint
    trained: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (epoch, positions, weights)

    def record(self, epoch: int, positions: torch.Tensor, weights: torch.Tensor) -> None:
        """What one step trained on: the samples' manifest positions and the weights their loss had."""
        self.trained.append((epoch, positions.cpu(), weights.detach().float().cpu()))


def preload_optimizers() -> None:
    """Import what torch's first optimizer imports on the spot (torch._dynamo, ~1 s of Python).

    A process that will train calls this in the background when it starts, so its first training
    set does not wait for the import.
    """
    importlib.import_module("torch._dynamo")


def submodule(model: nn.Module, path: str) -> nn.Module:
    """Modyn's parameter-group `module`: 'model' is the whole model, 'model.a.b' (or 'a.b') a submodule."""
    parts = path.split(".")
    if parts[0] == "model":
        parts = parts[1:]
    module = model
    for part in parts:
        module = getattr(module, part, None)
        if not isinstance(module, nn.Module):
            raise TrainingError(f"the model has no submodule {path!r}")
    return module


def optimizer_class(config: OptimizerConfig) -> type[torch.optim.Optimizer]:
    kind = getattr(torch.optim, "SGD" if config.source == "APEX" else config.algorithm, None)
    if not isinstance(kind, type) or not issubclass(kind, torch.optim.Optimizer):
        raise TrainingError(f"optimizer {config.name}: {config.algorithm!r} is not a torch.optim optimizer")
    return kind


def build_optimizers(
    model: nn.Module, configs: list[OptimizerConfig], device: torch.device | None = None
) -> dict[str, torch.optim.Optimizer]:
    optimizers = {}
    for config in configs:
        groups = []
        for group in config.param_groups:
            try:
                module = submodule(model, group.module)
            except TrainingError as exc:
                raise TrainingError(f"optimizer {config.name}: {exc}") from None
            groups.append({"params": list(module.parameters()), **group.config})
        fused = {"fused": True} if config.source == "APEX" and device is not None and device.type == "cuda" else {}
        try:
            optimizers[config.name] = optimizer_class(config)(groups, **fused)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TrainingError(f"optimizer {config.name} ({config.algorithm}): {exc}") from None
    return optimizers


def build_criterion(config: OptimizationCriterion) -> nn.Module:
    kind = getattr(nn, config.name, None)
    if not isinstance(kind, type) or not issubclass(kind, nn.modules.loss._Loss):
        raise TrainingError(f"optimization_criterion {config.name!r} is not a torch.nn loss")
    try:
        return kind(reduction="none", **config.config)
    except TypeError as exc:
        raise TrainingError(f"optimization_criterion {config.name}: {exc}") from None


def train(
    model: nn.Module,
    chunks: Iterable[Chunk],
    config: TrainingSection,
    *,
    trigger_index: int,
    num_samples: int,
    device: torch.device,
    checkpointer: Checkpointer | None = None,
    use_weights: bool = False,
    downsampling: DownsamplingConfig | None = None,
    irreducible: torch.Tensor | None = None,
) -> TrainOutcome:
    """Train `model` on the chunks; with `use_weights` each sample's loss is scaled by its selector weight, and
    with `downsampling` each batch is downsampled first (training/downsampling.py); RHO-Loss downsampling takes
    each sample's `irreducible` loss, in manifest order (training/rho_loss.py)."""
    seed = (config.seed or 0) * 1_000_003 + trigger_index
    model.to(device).train()
    optimizers = build_optimizers(model, config.optimizers, device)
    criterion = build_criterion(config.optimization_criterion)
    per_epoch = num_samples // config.batch_size if config.drop_last_batch else -(-num_samples // config.batch_size)
    if downsampling is not None:  # as Modyn counts MODYN_NUM_BATCHES: the batches trained after downsampling
        per_epoch = downsampling.ratio * per_epoch * config.batch_size // downsampling.ratio_max // config.batch_size
    schedulers = build_scheduler(config.lr_scheduler, optimizers, max(per_epoch, 1), config.epochs_per_trigger)
    per_batch = config.lr_scheduler is not None and config.lr_scheduler.step_every == "batch"
    amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp, **(config.grad_scaler_config or {}))
    budget = (
        config.num_samples_to_pass[min(trigger_index, len(config.num_samples_to_pass) - 1)]
        if config.num_samples_to_pass
        else None
    )
    weighted = use_weights or downsampling is not None  # Modyn's weighted mean: sum(w loss) / sum(w)
    outcome, seen = TrainOutcome(), []
    saved = checkpointer.load() if checkpointer else None
    if saved:
        _restore(saved, model, optimizers, schedulers, scaler, outcome, device)
    subsets = [None] * config.epochs_per_trigger  # sample then batch: (mask, weights) of what each epoch trains on
    stb = downsampling is not None and downsampling.sample_then_batch
    scoring = downsampling is not None and downsampling.strategy != "RS2"  # the model selects what it trains on
    scores_the_set = stb and scoring  # sample then batch with a scoring strategy
    if stb and not scores_the_set:
        subsets = rs2_subsets(downsampling, num_samples, config.epochs_per_trigger,
                              torch.Generator().manual_seed(seed * 7919))  # fmt: skip
    # A model's selections cannot be replayed after a restart (a later model would score): a checkpoint keeps where
    # the selection stood, and the resumed run goes on from there over the set held in memory.
    resume = saved.get("selection") if saved and scoring else None
    batches = outcome.resumed_after if resume else 0
    started = time.perf_counter()
    if scores_the_set or (scoring and checkpointer is not None):
        seen = list(_positioned(chunks))  # scoring the whole set comes before the first epoch
    preloaded = bool(seen)

    def per_sample_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return criterion(output, criterion_target(y, config.optimization_criterion, output))

    for epoch in range(config.epochs_per_trigger):
        if resume and epoch < resume["epoch"]:
            continue  # trained before the checkpoint; its scheduler steps are in it
        resuming = resume is not None and epoch == resume["epoch"]
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        picks = torch.Generator().manual_seed(seed * 7919 + epoch)
        if resuming:
            picks.set_state(resume["picks"])
        if scores_the_set and seen:  # a new selection every `period` epochs (0: once)
            if resuming:
                subsets[epoch] = resume["subset"]
            elif epoch == 0 or (downsampling.period and epoch % downsampling.period == 0):
                began = time.perf_counter()
                x_all, y_all = torch.cat([c[0] for c in seen]), torch.cat([c[1] for c in seen])
                subsets[epoch] = scored_subset(downsampling, model, x_all, y_all, per_sample_loss,
                                               config.batch_size, picks, device, irreducible)  # fmt: skip
                outcome.downsample_s += time.perf_counter() - began
            else:
                subsets[epoch] = subsets[epoch - 1]
        if epoch == 0 and not scores_the_set:  # each chunk as it arrives (or as it arrived, if held in memory)
            first = [c[:3] for c in seen] if preloaded else chunks
            source = _first_epoch(first, [] if preloaded else seen, generator, config.shuffle, subsets[0])
        else:
            source = _later_epoch(seen, generator, config.shuffle, subsets[epoch])
        batched = _batches(source, config.batch_size, config.drop_last_batch)
        progress = {"raw": resume["raw"] if resuming else 0, "step": resume["step"] if resuming else 0}
        if downsampling is not None and not downsampling.sample_then_batch:  # scored batches: past them, the next
            batched = _downsampled(batched, downsampling, model, device, config, per_sample_loss, picks, outcome,
                                   irreducible, progress)  # fmt: skip
        elif resuming:  # the epoch's batches trained before the checkpoint
            batched = itertools.islice(batched, progress["step"], None)
        for x, y, w, positions in batched:
            if batches < outcome.resumed_after:  # trained before the checkpoint: same data, same order
                batches += 1
                continue
            progress["step"] += 1
            outcome.record(epoch, positions, w if weighted else torch.ones(len(x)))
            x, y, w = x.to(device, non_blocking=True), y.to(device, non_blocking=True), w.to(device, non_blocking=True)
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=amp):
                output = model(x)
                per_sample = criterion(output, criterion_target(y, config.optimization_criterion, output)).reshape(
                    len(x), -1
                )
                loss = (per_sample.mean(1) * w).sum() / w.sum() if weighted else per_sample.mean(1).mean()
            scaler.scale(loss).backward()
            for optimizer in optimizers.values():
                scaler.step(optimizer)
            scaler.update()
            if per_batch:
                for scheduler in schedulers:
                    scheduler.step()
            batches += 1
            outcome.samples_passed += len(x)
            outcome.final_loss = float(loss.detach())
            if config.record_loss_every and batches % config.record_loss_every == 0:
                outcome.losses.append(outcome.final_loss)
            if budget is not None and outcome.samples_passed >= budget:
                break
            if checkpointer and checkpointer.due(batches):
                state = _state(batches, model, optimizers, schedulers, scaler, outcome, device)
                if scoring:
                    state["selection"] = {"epoch": epoch, **progress, "picks": picks.get_state(),
                                          "subset": subsets[epoch]}  # fmt: skip
                checkpointer.save(state)
        if not per_batch and batches >= outcome.resumed_after:  # else this step is in the checkpoint
            for scheduler in schedulers:
                scheduler.step()
        outcome.epochs = epoch + 1
        if budget is not None and outcome.samples_passed >= budget:
            break
    outcome.train_s = time.perf_counter() - started
    return outcome


def _state(batches, model, optimizers, schedulers, scaler, outcome, device) -> dict:
    return {
        "batches": batches,
        "model": model.state_dict(),
        "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
        "schedulers": [scheduler.state_dict() for scheduler in schedulers],
        "scaler": scaler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "outcome": {"samples_passed": outcome.samples_passed, "final_loss": outcome.final_loss,
                    "losses": outcome.losses, "trained": outcome.trained},
    }  # fmt: skip


def _restore(saved: dict, model, optimizers, schedulers, scaler, outcome, device) -> None:
    model.load_state_dict(saved["model"])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(saved["optimizers"][name])
    for scheduler, state in zip(schedulers, saved["schedulers"], strict=True):
        scheduler.load_state_dict(state)
    scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    outcome.samples_passed = saved["outcome"]["samples_passed"]
    outcome.final_loss = saved["outcome"]["final_loss"]
    outcome.losses = list(saved["outcome"]["losses"])
    outcome.trained = list(saved["outcome"]["trained"])
    outcome.resumed_after = saved["batches"]


def criterion_target(y: torch.Tensor, criterion: OptimizationCriterion, output: torch.Tensor) -> torch.Tensor:
    if criterion.name in CLASS_INDEX_LOSSES:
        return y.long()
    return y.to(output.dtype).reshape(output.shape)


def _downsampled(batches, downsampling, model, device, config, loss, generator, outcome, irreducible, progress):
    """Each batch's kept part (Modyn's batch then sample), accumulated into batches of the batch size; the
    samples' weights are the selection's times their selector weights. Scoring time adds to the outcome's.
    `progress["raw"]` counts the batches scored; the first that many (scored before a checkpoint) are passed over.
    A training batch is yielded as soon as it is full, so none is pending when the loop checkpoints."""
    k = downsampling.kept(config.batch_size)
    pending: list[Batch] = []
    count, done = 0, progress["raw"]
    for index, (x, y, w, positions) in enumerate(batches):
        if index < done:
            continue
        progress["raw"] = index + 1
        x, y, w = x.to(device), y.to(device), w.to(device)
        scoring = time.perf_counter()
        reference = None if irreducible is None else irreducible[positions]
        chosen, weights = select(downsampling, model, x, y, loss, min(k, len(x)), generator, reference)
        outcome.downsample_s += time.perf_counter() - scoring
        pending.append((x[chosen], y[chosen], w[chosen] * weights, positions[chosen.cpu()]))
        count += len(chosen)
        if count >= config.batch_size:
            yield tuple(torch.cat(parts) for parts in zip(*pending, strict=True))
            pending, count = [], 0
    if pending and not config.drop_last_batch:
        yield tuple(torch.cat(parts) for parts in zip(*pending, strict=True))


def _first_epoch(chunks: Iterable[Chunk], seen: list, generator, shuffle: bool, subset=None) -> Iterator[Batch]:
    """Each chunk as it arrives (its part in `subset`, (a mask over the training set, None), if given), kept in
    `seen` with its samples' manifest positions."""
    for x, y, w, positions in _positioned(chunks):
        seen.append((x, y, w, positions))
        if subset is not None:
            kept = subset[0][positions]
            x, y, w, positions = x[kept], y[kept], w[kept], positions[kept]
        if shuffle:
            order = torch.randperm(len(x), generator=generator)
            x, y, w, positions = x[order], y[order], w[order], positions[order]
        yield x, y, w, positions


def _positioned(chunks: Iterable[Chunk]) -> Iterator[Batch]:
    """The chunks with their samples' positions in the manifest."""
    start = 0
    for x, y, w in chunks:
        yield x, y, w, torch.arange(start, start + len(x))
        start += len(x)


def _later_epoch(seen: list, generator, shuffle: bool, subset=None) -> Iterator[Batch]:
    if not seen:
        return
    x, y, w, positions = (torch.cat(parts) for parts in zip(*seen, strict=True))
    if subset is not None:  # (mask, the kept samples' selection weights or None)
        mask, weights = subset
        w = w[mask] if weights is None else w[mask] * weights.to(w.device)
        x, y, positions = x[mask], y[mask], positions[mask]
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    yield x[order], y[order], w[order], positions[order]


def _batches(chunks: Iterable[Batch], size: int, drop_last: bool) -> Iterator[Batch]:
    """Fixed-size batches across chunk boundaries."""
    pending: list[Batch] = []
    count = 0
    for chunk in chunks:
        pending.append(chunk)
        count += len(chunk[0])
        if count < size:
            continue
        joined = [torch.cat(parts) for parts in zip(*pending, strict=True)]
        full = count - count % size
        for start in range(0, full, size):
            yield tuple(part[start : start + size] for part in joined)
        pending, count = ([tuple(part[full:] for part in joined)], count - full) if full < count else ([], 0)
    if count and not drop_last:
        yield tuple(torch.cat(parts) for parts in zip(*pending, strict=True))
