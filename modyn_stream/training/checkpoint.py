"""Training checkpoints: a trainer killed mid-trigger resumes where it last saved, not from scratch.

A checkpoint holds everything the loop needs to continue as if never stopped: model, optimizer,
scheduler and AMP-scaler states, the global RNG states, and how many batches were done. It is
keyed by an identity (pipeline, trigger, manifest checksum, training config hash, parent model):
a checkpoint from any other training is ignored, never resumed into the wrong run. The data order
is a function of the seed and the manifest, so resuming skips exactly the batches already trained
and the final weights equal an uninterrupted run's. A model's own selections (downsampling) cannot be
replayed by a later model, so the loop adds where the selection stood (training/loop.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.training.model_store import LOAD_ERRORS

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(
        self,
        artifacts: ArtifactStore,
        path: Path,
        identity: dict,
        interval: int,
        after_save: Callable[[], None] = lambda: None,
    ) -> None:
        self.artifacts = artifacts
        self.path = path
        self.identity = identity
        self.interval = interval  # batches
        self.after_save = after_save  # crash-injection point for tests

    def due(self, batches: int) -> bool:
        return batches % self.interval == 0

    def save(self, state: dict) -> None:
        with self.artifacts.atomic(self.path) as tmp:
            torch.save({"identity": self.identity, **state}, tmp)
        self.after_save()

    def load(self) -> dict | None:
        """The saved state of this very training, if any."""
        if not self.path.exists():
            return None
        try:
            content = torch.load(self.path, map_location="cpu", weights_only=True)
        except LOAD_ERRORS as exc:
            log.warning("checkpoint %s unreadable (%s): training from the start", self.path, exc)
            return None
        if content.get("identity") != self.identity:
            log.warning("checkpoint %s belongs to another training: training from the start", self.path)
            return None
        log.info("resuming from checkpoint %s after %d batches", self.path, content["batches"])
        return content

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
