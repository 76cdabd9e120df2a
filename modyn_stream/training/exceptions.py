"""Errors of the training layer; each names the trigger, sample or file it is about."""

from modyn_stream.exceptions import ModynStreamError


class TrainingError(ModynStreamError):
    """A model version that cannot be built from its training set and config."""


class PayloadError(TrainingError):
    """A sample the manifest names that cannot be fetched or decoded (missing offset, wrong key, bad bytes)."""
