"""Modyn's pre-2024 pipeline layout converted to the current one (`modyn-stream import-modyn`).

Until its pydantic schema (May 2024), Modyn kept the selection strategy under `training`, with its
options in a `config` mapping; trigger options in `trigger_config`; metric options in `config`,
with display names (`F1-score`, `ROC-AUC`); strategy class names with suffixes
(`RandomPresamplingStrategy`, `RemoteLossDownsampling`); and evaluation without handlers (every
new model scored on whole datasets). Each conversion is listed, so the user sees what changed.

>>> new, changes = convert({"trigger": {"id": "TimeTrigger", "trigger_config": {"trigger_every": "1d"}}})
>>> new["trigger"], changes
({'id': 'TimeTrigger', 'every': '1d'}, ['trigger.trigger_config.trigger_every -> trigger.every'])
"""

from __future__ import annotations

import copy
import re
from typing import Any

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.timeutil import EARLIEST_MS

TRIGGER_OPTIONS = {"DataAmountTrigger": {"data_points_for_trigger": "num_samples"},
                   "TimeTrigger": {"trigger_every": "every"}}  # fmt: skip
METRIC_NAMES = {"F1-score": "F1Score", "ROC-AUC": "RocAuc"}


class ModynLayoutError(ModynStreamError):
    """An old pipeline with something that has no current equivalent."""


def convert(old: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The pipeline in Modyn's current layout, and one line per change made."""
    new, changes = copy.deepcopy(old), []
    _selection(new, changes)
    _trigger(new, changes)
    _training(new, changes)
    _evaluation(new, changes)
    return new, changes


def _selection(new: dict, changes: list[str]) -> None:
    training = new.get("training") or {}
    if "selection_strategy" not in training:
        strategy = new.get("selection_strategy")
        if isinstance(strategy, dict):
            _strategy_names(strategy, "selection_strategy", changes)
        return
    if "selection_strategy" in new:
        raise ModynLayoutError("selection_strategy is both under training (old layout) and at the top level")
    old = training.pop("selection_strategy")
    strategy = {k: v for k, v in old.items() if k != "config"}
    changes.append("training.selection_strategy -> selection_strategy")
    for key, value in (old.get("config") or {}).items():
        if key == "reset_after_trigger":
            if value and "tail_triggers" not in old.get("config", {}):
                strategy["tail_triggers"] = 0
            changes.append(f"selection_strategy.config.reset_after_trigger: {value} -> tail_triggers: "
                           f"{0 if value else 'null (all data)'}")  # fmt: skip
            continue
        strategy[key] = value
        changes.append(f"selection_strategy.config.{key} -> selection_strategy.{key}")
    _strategy_names(strategy, "selection_strategy", changes)
    new["selection_strategy"] = strategy


def _strategy_names(strategy: dict, where: str, changes: list[str]) -> None:
    for section, pattern in (("presampling_config", r"PresamplingStrategy$"),
                             ("downsampling_config", r"^Remote|Downsampling(Strategy)?$")):  # fmt: skip
        config = strategy.get(section)
        if isinstance(config, dict) and isinstance(config.get("strategy"), str):
            name = re.sub(pattern, "", config["strategy"])
            if name != config["strategy"]:
                changes.append(f"{where}.{section}.strategy: {config['strategy']} -> {name}")
                config["strategy"] = name


def _trigger(new: dict, changes: list[str]) -> None:
    trigger = new.get("trigger")
    if not isinstance(trigger, dict) or "trigger_config" not in trigger:
        return
    renames = TRIGGER_OPTIONS.get(trigger.get("id"), {})
    for key, value in (trigger.pop("trigger_config") or {}).items():
        target = renames.get(key, key)
        trigger[target] = value
        changes.append(f"trigger.trigger_config.{key} -> trigger.{target}")


def _training(new: dict, changes: list[str]) -> None:
    training = new.get("training") or {}
    initial_pass = training.pop("initial_pass", None)
    if isinstance(initial_pass, dict) and initial_pass.get("activated"):
        raise ModynLayoutError("training.initial_pass is activated: Modyn removed it (it never ran); remove it")
    if initial_pass is not None:
        changes.append("training.initial_pass: removed (Modyn removed it; it was not activated)")
    scheduler = training.get("lr_scheduler")
    if isinstance(scheduler, dict) and "custom" in scheduler:
        custom = scheduler.pop("custom")
        changes.append(f"training.lr_scheduler.custom: removed (source: {scheduler.get('source', 'PyTorch')} says it)")
        scheduler.setdefault("source", "Custom" if custom else "PyTorch")


def _evaluation(new: dict, changes: list[str]) -> None:
    evaluation = new.get("evaluation")
    if not isinstance(evaluation, dict):
        return
    if "result_writers" in evaluation:
        evaluation.pop("result_writers")
        changes.append("evaluation.result_writers: removed (results go to ClickHouse evaluations and the "
                       "evaluations topic)")  # fmt: skip
    datasets = evaluation.get("datasets") or []
    for i, dataset in enumerate(datasets):
        for j, metric in enumerate(dataset.get("metrics") or []):
            where = f"evaluation.datasets[{i}].metrics[{j}]"
            if metric.get("name") in METRIC_NAMES:
                changes.append(f"{where}.name: {metric['name']} -> {METRIC_NAMES[metric['name']]}")
                metric["name"] = METRIC_NAMES[metric["name"]]
            for key, value in (metric.pop("config", None) or {}).items():
                metric[key] = value
                changes.append(f"{where}.config.{key} -> {where}.{key}")
    if "handlers" not in evaluation and datasets:
        evaluation["handlers"] = [{
            "name": "default", "execution_time": "after_training", "models": "matrix",
            "strategy": {"type": "StaticEvalStrategy", "intervals": [[EARLIEST_MS // 1000, None]]},
            "datasets": [d.get("dataset_id") for d in datasets],
        }]  # fmt: skip
        changes.append("evaluation.handlers: added 'default': every new model on all of each dataset, after "
                       "training (what Modyn did without handlers)")  # fmt: skip
