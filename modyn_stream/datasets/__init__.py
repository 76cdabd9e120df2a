"""Built-in drifting datasets, generated without network access and deterministic given a seed."""

from modyn_stream.datasets.generators import GENERATORS, GeneratedDataset, generate

__all__ = ["GENERATORS", "GeneratedDataset", "generate"]
