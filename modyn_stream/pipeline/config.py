"""The pipeline YAML as typed models, with Modyn's section and field names.

Sections: `pipeline`, `model`, `model_storage`, `training`, `data`, `trigger`,
`selection_strategy`, `evaluation`. Unknown fields are errors (a typo must not be ignored).
Configs never execute code: Modyn's `bytes_parser_function` (Python source in YAML) is
rejected; decoders are named, or `module:function` references, imported only where the operator
trusts them (never because the file says so: see `trust.py`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from modyn_stream.pipeline.schema.base import Strict
from modyn_stream.pipeline.schema.data import DataSection
from modyn_stream.pipeline.schema.evaluation import (
    EvaluationSection,
)
from modyn_stream.pipeline.schema.model import ModelSection, ModelStorageSection, PipelineInfo
from modyn_stream.pipeline.schema.selection import (
    SelectionConfig,
)
from modyn_stream.pipeline.schema.training import TrainingSection
from modyn_stream.pipeline.schema.triggers import (
    TriggerConfig,
)

# -- the whole pipeline --------------------------------------------------------------------------


class ReplaySection(Strict):
    """modyn-stream's own section: what `modyn-stream run` replays into `data.dataset_id`."""

    generator: Literal["digits-drift", "tabular-drift", "yearbook-drift", "criteo-drift"] | None = Field(
        None, description="A built-in stream."
    )
    path: str | None = Field(None, description="An .npz file with x, y and t (event time, epoch ms) arrays.")
    samples: Annotated[int, Field(ge=1)] = 6000
    seed: Annotated[int, Field(ge=0)] = 0
    partitions: Annotated[int, Field(ge=1)] = 4

    @model_validator(mode="after")
    def _one_source(self) -> ReplaySection:
        if (self.generator is None) == (self.path is None):
            raise ValueError("give exactly one of generator (a built-in stream) or path (an .npz file)")
        return self


class PipelineConfig(Strict):
    """The whole pipeline file."""

    MODYN_REQUIRED: ClassVar = ("model_storage",)
    pipeline: PipelineInfo
    model: ModelSection
    model_storage: ModelStorageSection = Field(default_factory=ModelStorageSection)
    training: TrainingSection
    data: DataSection
    trigger: TriggerConfig
    selection_strategy: SelectionConfig
    evaluation: EvaluationSection | None = None
    replay: ReplaySection | None = None

    @model_validator(mode="after")
    def _performance_on_the_stream(self) -> PipelineConfig:
        """A PerformanceTrigger scores the model on the incoming samples, so on the pipeline's own dataset."""
        evaluation = getattr(self.trigger, "evaluation", None)
        if evaluation is not None and evaluation.dataset.dataset_id != self.data.dataset_id:
            raise ValueError(
                f"trigger.evaluation.dataset.dataset_id: {evaluation.dataset.dataset_id!r} is not the pipeline's "
                f"dataset {self.data.dataset_id!r}: the performance trigger scores the samples as they arrive"
            )
        return self

    @model_validator(mode="after")
    def _downsampled_batches_add_up(self) -> PipelineConfig:
        """Modyn's rule: batch-then-sample keeps `kept` of each batch, and batch_size / kept of those make a
        training batch, so kept must divide the batch size."""
        for where, downsampling in self.selection_strategy.downsamplers():
            if downsampling.strategy == "No" or downsampling.sample_then_batch:  # a selection of the whole set
                continue
            size = self.training.batch_size
            kept = downsampling.kept(size)
            if size % kept:
                raise ValueError(
                    f"{where}.ratio: keeps {kept} of each batch of {size}, which does not divide it: choose a ratio "
                    "and batch_size so that the kept parts of several batches make one"
                )
        return self
