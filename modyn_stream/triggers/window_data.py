"""A batched trigger's window of samples as tensors: decoded inputs, the embeddings or the outputs of a model version.

Samples are read from Kafka by offset, as the trainer reads them, and decoded by the pipeline's decoder and
transformations (or an evaluation dataset's own).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.trust import CodeTrust
from modyn_stream.selection.manifest import SCHEMA
from modyn_stream.training.decoders import build_decoder
from modyn_stream.training.embeddings import forward_with_embeddings
from modyn_stream.training.fetch import PayloadFetchers
from modyn_stream.training.loader import ChunkLoader
from modyn_stream.training.model_store import load_model
from modyn_stream.training.models import model_with_weights


class WindowData:
    def __init__(self, store: MetadataStore, fetchers: PayloadFetchers, trust: CodeTrust) -> None:
        self.store, self.fetchers, self.trust = store, fetchers, trust
        self._models: dict[tuple[str, int], torch.nn.Module] = {}

    def model(self, pid: str, config: PipelineConfig, trigger_index: int) -> torch.nn.Module | None:
        """The model version trained for `trigger_index`, or None while it is not stored yet."""
        if (pid, trigger_index) not in self._models:
            rows = self.store.query(
                "SELECT model_uri, model_sha256 FROM models FINAL WHERE pipeline_id = {p:String} "
                "AND trigger_index = {i:UInt32}",
                {"p": pid, "i": trigger_index},
            )
            if not rows:
                return None
            state = load_model(rows[0][0], rows[0][1])[0]
            model = model_with_weights(config.model.id, config.model.config, state, trust=self.trust)
            self._models = {(pid, trigger_index): model.eval()}  # the latest only
        return self._models[(pid, trigger_index)]

    def vectors(self, pid: str, config: PipelineConfig, rows: pa.Table, model_index: int | None) -> np.ndarray:
        """The vectors of the window `rows` (see `ClickHouseSampleIndex.window`): inputs flattened, or the
        embeddings of the model of trigger `model_index`."""
        model = None if model_index is None else self.model(pid, config, model_index).to(config.training.device)
        embed = None if model is None else (lambda batch: forward_with_embeddings(model, batch)[1])
        parts = self._batches(config, config.data, rows, embed, config.training.device)
        return np.concatenate(parts) if parts else np.zeros((0, 1))

    def outputs(self, pid: str, config: PipelineConfig, rows: pa.Table, model_index: int, data, device: str):
        """The outputs of the model of trigger `model_index` (on `device`) for the window `rows`, decoded as `data`
        says."""
        model = self.model(pid, config, model_index).to(device)
        parts = self._batches(config, data, rows, model, device)
        return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, 1)

    def _batches(self, config: PipelineConfig, data, rows: pa.Table, apply, device: str) -> list[np.ndarray]:
        """The window's samples decoded as `data` says, through `apply` (None: as they are), batch by batch."""
        decoder = build_decoder(data.decoder, data.decoder_config, data.transformations, trust=self.trust, seed=0)
        columns = [rows[name].cast(kind) for name, kind in zip(SCHEMA.names[:4], SCHEMA.types[:4], strict=True)]
        manifest = pa.Table.from_arrays([*columns, pa.array(np.ones(rows.num_rows, np.float32))], schema=SCHEMA)
        loader = ChunkLoader(self.fetchers[config.data.dataset_id], decoder, manifest)
        parts, size = [], config.training.batch_size
        try:
            with torch.inference_mode():
                for x, _, _ in loader:
                    for start in range(0, len(x), size):
                        batch = x[start : start + size]
                        if apply is not None:
                            batch = apply(batch.to(device))
                        parts.append(batch.reshape(len(batch), -1).double().cpu().numpy())
        finally:
            loader.close()
        return parts
