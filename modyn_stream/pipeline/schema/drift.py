"""`trigger: {id: DataDriftTrigger}`: retrain when the data has drifted, with Modyn's names and fields.

Every `evaluation_interval_data_points` samples (in (event_time, key) order) the current window is compared
with the reference window, the data up to the last trigger, by each metric; each metric's decision criterion
turns its distance into a yes/no, and the aggregation strategy votes. Modyn compares the current model's
embeddings; `features: raw` compares the decoded inputs instead (no model needed).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict, noted
from modyn_stream.pipeline.schema.simple_triggers import MajorityVote, SimpleTrigger, Vote, _Trigger
from modyn_stream.timeutil import parse_duration

# -- decision criteria: a distance -> drift or not --------------------------------------------------------------


class ThresholdDecisionCriterion(Strict):
    id: Literal["ThresholdDecisionCriterion"] = "ThresholdDecisionCriterion"
    threshold: float = Field(description="Drift when the distance is at least this.")
    needs_calibration: Literal[False] = False


class DynamicQuantileThresholdCriterion(Strict):
    id: Literal["DynamicQuantileThresholdCriterion"] = "DynamicQuantileThresholdCriterion"
    window_size: Annotated[int, Field(ge=1)] = 10
    quantile: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.05, description="Drift when the distance is above the (1 - quantile) quantile of the last window_size ones."
    )
    needs_calibration: Literal[True] = True


class DynamicRollingAverageThresholdCriterion(Strict):
    id: Literal["DynamicRollingAverageThresholdCriterion"] = "DynamicRollingAverageThresholdCriterion"
    window_size: Annotated[int, Field(ge=1)] = 10
    deviation: float = Field(0.05, description="Drift when the distance exceeds the rolling average by this.")
    absolute: bool = Field(False, description="Deviation in the distance's units; false: relative to the average.")
    needs_calibration: Literal[True] = True


class HypothesisTestDecisionCriterion(Strict):
    """modyn-stream's: the metric's own test decides (MMD's permutation test or threshold, KS/CVM's corrected
    p-values, Evidently's thresholds), rather than a criterion over its distances."""

    id: Literal["HypothesisTestDecisionCriterion"] = "HypothesisTestDecisionCriterion"
    needs_calibration: Literal[False] = False


DecisionCriterion = Annotated[
    ThresholdDecisionCriterion
    | DynamicQuantileThresholdCriterion
    | DynamicRollingAverageThresholdCriterion
    | HypothesisTestDecisionCriterion,
    Field(discriminator="id"),
]

# -- metrics ------------------------------------------------------------------------------------------------------


class _Metric(Strict):
    decision_criterion: DecisionCriterion

    def has_test(self) -> bool:
        return True

    @model_validator(mode="after")
    def _test_exists(self):
        if isinstance(self.decision_criterion, HypothesisTestDecisionCriterion) and not self.has_test():
            raise ValueError(f"{self.id} has no test of its own for HypothesisTestDecisionCriterion to use")
        return self


class _AlibiMetric(_Metric):
    p_val: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.05, description="Significance level of the test.")
    x_ref_preprocessed: bool = noted(False, "x_ref_preprocessed: no preprocessor runs here, so it changes nothing")
    preprocessor: None = Field(
        None, description="Modyn's language-model preprocessor is not available here: drift runs on embeddings."
    )


class _Correction(Strict):
    correction: Literal["bonferroni", "fdr"] = Field(
        "bonferroni", description="How the per-feature p-values are corrected for testing many features."
    )


class AlibiDetectMmdDriftMetric(_AlibiMetric):
    """Maximum mean discrepancy with a Gaussian RBF kernel (unbiased MMD², as alibi-detect computes it)."""

    id: Literal["AlibiDetectMmdDriftMetric"] = "AlibiDetectMmdDriftMetric"
    device: str | None = Field(None, pattern="^(cpu|gpu|cuda:?[0-9]*)$", description="Where the kernel is computed.")
    num_permutations: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Permutations of the test's p-value; None: no test (the distance alone)."
    )
    kernel: Literal["GaussianRBF"] = "GaussianRBF"
    configure_kernel_from_x_ref: bool = Field(
        True, description="Bandwidth from the reference window (median heuristic); false: from both windows."
    )
    threshold: float | None = Field(None, description="The test without permutations: drift when MMD² >= this.")

    def has_test(self) -> bool:
        return self.num_permutations is not None or self.threshold is not None

    @model_validator(mode="after")
    def _one_test(self) -> AlibiDetectMmdDriftMetric:
        if self.threshold is not None and self.num_permutations is not None:
            raise ValueError("threshold and num_permutations are mutually exclusive: test by one or the other")
        return self


class AlibiDetectKSDriftMetric(_AlibiMetric, _Correction):
    """Kolmogorov-Smirnov per feature; the distance is the mean statistic."""

    id: Literal["AlibiDetectKSDriftMetric"] = "AlibiDetectKSDriftMetric"
    alternative_hypothesis: Literal["two-sided", "less", "greater"] = "two-sided"


class AlibiDetectCVMDriftMetric(_AlibiMetric, _Correction):
    """Cramér-von Mises per feature; the distance is the mean statistic."""

    id: Literal["AlibiDetectCVMDriftMetric"] = "AlibiDetectCVMDriftMetric"


class _EvidentlyMetric(_Metric):
    num_pca_component: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Compare this many principal components of the reference window (fitted on it)."
    )


class _Bootstrap(Strict):
    bootstrap: bool = Field(False, description="Test against distances between resamples of the reference window.")
    quantile_probability: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.95, description="With bootstrap: the quantile of the resampled distances that counts as drift."
    )


class EvidentlyModelDriftMetric(_EvidentlyMetric, _Bootstrap):
    """ROC AUC of a logistic-regression classifier telling the windows apart (on a held-out half)."""

    id: Literal["EvidentlyModelDriftMetric"] = "EvidentlyModelDriftMetric"
    threshold: float = Field(0.55, description="The test: drift when the ROC AUC is above this.")


class EvidentlyRatioDriftMetric(_EvidentlyMetric):
    """The share of features that drifted by `component_stattest`."""

    id: Literal["EvidentlyRatioDriftMetric"] = "EvidentlyRatioDriftMetric"
    component_stattest: Literal["wasserstein", "ks", "hellinger"] = "wasserstein"
    component_stattest_threshold: float = Field(
        0.1, description="A feature drifted: normed Wasserstein or Hellinger distance >= this, or KS p-value < this."
    )
    threshold: float = Field(0.2, description="The test: drift when the share is above this.")


class EvidentlySimpleDistanceDriftMetric(_EvidentlyMetric, _Bootstrap):
    """The distance between the windows' mean vectors."""

    id: Literal["EvidentlySimpleDistanceDriftMetric"] = "EvidentlySimpleDistanceDriftMetric"
    distance_metric: Literal["euclidean", "cosine", "cityblock", "chebyshev"] = "euclidean"
    threshold: float = Field(0.2, description="The test: drift when the distance is above this.")


class EvidentlyHellingerDistanceDriftMetric(_Metric):
    """The mean over features of the Hellinger distance between their histograms."""

    id: Literal["EvidentlyHellingerDistanceDriftMetric"] = "EvidentlyHellingerDistanceDriftMetric"

    def has_test(self) -> bool:
        return False


DriftMetric = Annotated[
    AlibiDetectMmdDriftMetric
    | AlibiDetectKSDriftMetric
    | AlibiDetectCVMDriftMetric
    | EvidentlyModelDriftMetric
    | EvidentlyRatioDriftMetric
    | EvidentlySimpleDistanceDriftMetric
    | EvidentlyHellingerDistanceDriftMetric,
    Field(discriminator="id"),
]

# -- windows ------------------------------------------------------------------------------------------------------


class _Window(Strict):
    allow_overlap: bool = Field(
        False, description="The current window keeps samples from before the last trigger; false: it starts there."
    )


class AmountWindowingStrategy(_Window):
    id: Literal["AmountWindowingStrategy"] = "AmountWindowingStrategy"
    amount_ref: Annotated[int, Field(ge=1)] = Field(1000, description="The last this many samples of the reference.")
    amount_cur: Annotated[int, Field(ge=1)] = Field(1000, description="The last this many samples of the current.")


class TimeWindowingStrategy(_Window):
    id: Literal["TimeWindowingStrategy"] = "TimeWindowingStrategy"
    limit_ref: str = Field(description="The reference window's length in event time, e.g. '30d'.")
    limit_cur: str = Field(description="The current window's length in event time.")

    @field_validator("limit_ref", "limit_cur")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("a window's length must be positive")
        return value


# -- the trigger --------------------------------------------------------------------------------------------------


class BatchedTrigger(_Trigger):
    """What Modyn's batched triggers share: a decision every `evaluation_interval_data_points` samples, and a
    simple policy deciding the first `warmup_intervals` ones while the main policy calibrates."""

    evaluation_interval_data_points: Annotated[int, Field(ge=1)]
    warmup_intervals: Annotated[int, Field(ge=0)] | None = None
    warmup_policy: SimpleTrigger | None = None


class DataDriftTrigger(BatchedTrigger):
    id: Literal["DataDriftTrigger"]
    windowing_strategy: Annotated[AmountWindowingStrategy | TimeWindowingStrategy, Field(discriminator="id")] = Field(
        default_factory=AmountWindowingStrategy
    )
    sample_size: Annotated[int, Field(ge=2)] | None = Field(
        5000, description="At most this many samples of each window, drawn at random (seeded); None: all."
    )
    metrics: dict[str, DriftMetric] = Field(min_length=1)
    aggregation_strategy: Vote = Field(default_factory=lambda: MajorityVote(id="MajorityVote"))
    features: Literal["embeddings", "raw"] = Field(
        "embeddings",
        description="modyn-stream's: compare the current model's embeddings (Modyn) or the decoded inputs.",
    )

    @model_validator(mode="after")
    def _calibrated(self) -> DataDriftTrigger:
        if self.warmup_policy is None and any(m.decision_criterion.needs_calibration for m in self.metrics.values()):
            raise ValueError("a warmup_policy is required: a dynamic decision criterion calibrates during the warmup")
        vote = self.aggregation_strategy
        if getattr(vote, "n", 0) > len(self.metrics):
            raise ValueError(f"AtLeastN n={vote.n} exceeds the {len(self.metrics)} metrics")
        return self
