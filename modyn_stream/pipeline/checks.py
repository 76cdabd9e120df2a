"""Checks of a typed pipeline that need more than its schema: torch's own rules, this machine, the data.

Each returns problems as 'yaml.path: reason' lines, so `validate` reports them with the schema's.

>>> too_large({"trigger": {"num_samples": 2**70}, "training": {"optimizers": [{"lr": float("nan")}]}})
['trigger.num_samples: 1180591620717411303424 does not fit in 64 bits (at most 9223372036854775807)', \
'training.optimizers[0].lr: NaN is not a number a pipeline can use']
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from modyn_stream.pipeline.config import PipelineConfig

INT64_MAX = 2**63 - 1


def too_large(data: Any, where: str = "") -> list[str]:
    """Integers that fit no 64-bit field (Avro longs, ClickHouse counts) and NaNs, anywhere in the raw YAML."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in too_large(v, f"{where}.{k}" if where else str(k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in too_large(v, f"{where}[{i}]")]
    if isinstance(data, int) and not isinstance(data, bool) and not -INT64_MAX - 1 <= data <= INT64_MAX:
        return [f"{where}: {data} does not fit in 64 bits (at most {INT64_MAX})"]
    if isinstance(data, float) and math.isnan(data):
        return [f"{where}: NaN is not a number a pipeline can use"]
    return []


def optimizer_problems(config: PipelineConfig) -> list[str]:
    """Each optimizer, the loss and the scheduler built by torch on a stand-in parameter: torch refuses what it
    cannot use (an unknown name or argument, a negative learning rate) here, not in the trainer."""
    import torch

    from modyn_stream.training.exceptions import TrainingError
    from modyn_stream.training.loop import build_criterion, optimizer_class
    from modyn_stream.training.schedulers import build_scheduler

    training, problems, built = config.training, [], {}
    for i, optimizer in enumerate(training.optimizers):
        try:
            kind = optimizer_class(optimizer)
        except TrainingError as exc:
            problems.append(f"training.optimizers[{i}].algorithm: {exc}")
            continue
        for j, group in enumerate(optimizer.param_groups):
            where = f"training.optimizers[{i}].param_groups[{j}].config"
            try:  # as keyword arguments: torch checks those values (in a parameter group it would take any)
                kind([torch.zeros(1, requires_grad=True)], **group.config)
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}: {optimizer.algorithm} refuses it: {exc}")
        if not problems:  # its groups, each on a stand-in parameter, for the scheduler to drive
            groups = [{"params": [torch.zeros(1, requires_grad=True)], **g.config} for g in optimizer.param_groups]
            built[optimizer.name] = kind(groups)
    if training.grad_scaler_config:
        try:
            torch.amp.GradScaler("cpu", enabled=False, **training.grad_scaler_config)
        except TypeError as exc:
            problems.append(f"training.grad_scaler_config: torch.amp.GradScaler refuses it: {exc}")
    try:
        build_criterion(training.optimization_criterion)
    except TrainingError as exc:
        problems.append(f"training.optimization_criterion: {exc}")
    if training.lr_scheduler is not None and not problems:
        try:
            build_scheduler(training.lr_scheduler, built, 1, 1)
        except TrainingError as exc:
            problems.append(f"training.lr_scheduler: {exc}")
    return problems


def param_group_problems(config: PipelineConfig) -> list[str]:
    """The model built from its config, and each optimizer parameter group's `module` looked up in it (a trusted
    model is built only where it runs)."""
    if ":" in config.model.id:
        return []
    import torch

    from modyn_stream.training.exceptions import TrainingError
    from modyn_stream.training.loop import submodule
    from modyn_stream.training.models import build_model
    from modyn_stream.training.zoo import architecture_only

    try:
        with architecture_only(), torch.device("meta"):  # only its shape: no memory for large tables
            model = build_model(config.model.id, config.model.config)
    except (TypeError, ValueError, RuntimeError, OverflowError, TrainingError) as exc:
        return [f"model.config: {config.model.id} cannot be built with it: {exc}"]
    problems = []
    for i, optimizer in enumerate(config.training.optimizers):
        for j, group in enumerate(optimizer.param_groups):
            try:
                submodule(model, group.module)
            except TrainingError as exc:
                children = ", ".join(f"model.{name}" for name, _ in model.named_children())
                problems.append(f"training.optimizers[{i}].param_groups[{j}].module: {exc} (it has {children})")
    return problems


def weights_problems(config: PipelineConfig) -> list[str]:
    """Pretrained weights the model reads that this machine's torch hub or Hugging Face cache lacks (never
    downloaded)."""
    from modyn_stream.training.zoo import pretrained_weights, weights_file

    problems = []
    if config.model.id == "ArticleNet" or config.data.tokenizer is not None:
        from modyn_stream.training import text

        if problem := text.missing():
            problems.append(f"{'model.id' if config.model.id == 'ArticleNet' else 'data.tokenizer'}: {problem}")
    weights = None if ":" in config.model.id else pretrained_weights(config.model.id, config.model.config)
    path = None if weights is None else weights_file(weights)
    if path is not None and not path.is_file():
        problems.append(f"model.config.use_pretrained: {config.model.id} reads {path.name}, which is not in "
                        f"{path.parent} (download {weights.url} there, or set use_pretrained: false)")  # fmt: skip
    return problems


def device_problems(config: PipelineConfig) -> list[str]:
    """CUDA devices this machine does not have (the trainer would refuse every training set)."""
    import torch

    problems = []
    devices = [("training.device", config.training.device)]
    if config.evaluation is not None:
        devices.append(("evaluation.device", config.evaluation.device))
    for where, downsampler in config.selection_strategy.downsamplers():
        if downsampler.il_training_config is not None:  # RHO-Loss trains its IL model there
            devices.append((f"{where}.il_training_config.device", downsampler.il_training_config.device))
    for where, name in devices:
        if not name.startswith("cuda"):
            continue
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            problems.append(f"{where}: {name}, but this machine has {have}")
    return problems


def decoder_problems(config: PipelineConfig, base: Path) -> list[str]:
    """A raw decoder's shape against the size of the payloads the pipeline's replay section publishes."""
    data = config.data
    shape = data.decoder_config.get("shape")
    if config.replay is None or data.decoder != "raw" or not isinstance(shape, list):
        return []
    try:
        itemsize = np.dtype(data.decoder_config.get("dtype", "uint8")).itemsize
        wanted = math.prod(int(d) for d in shape) * itemsize
    except (TypeError, ValueError, OverflowError) as exc:
        return [f"data.decoder_config: {exc}"]
    payload = _replayed_payload_bytes(config, base)
    if payload is None or payload == wanted:
        return []
    dtype = data.decoder_config.get("dtype", "uint8")
    return [f"data.decoder_config.shape: {shape} of {dtype} takes {wanted} bytes a sample, but the replayed "
            f"payloads have {payload}"]  # fmt: skip


def _replayed_payload_bytes(config: PipelineConfig, base: Path) -> int | None:
    replay = config.replay
    if replay.generator is not None:
        from modyn_stream.datasets import generate

        return generate(replay.generator, samples=1, seed=replay.seed).x[0].nbytes
    path = Path(replay.path) if Path(replay.path).is_absolute() else base / replay.path
    try:  # the .npy header of x, without reading the array
        with zipfile.ZipFile(path) as archive, archive.open("x.npy") as array:
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            reader = readers.get(np.lib.format.read_magic(array))
            if reader is None:
                return None
            shape, _, dtype = reader(array)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # the replay reports an unreadable file itself, in one line
    return math.prod(shape[1:]) * dtype.itemsize
