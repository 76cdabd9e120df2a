"""A drift window's samples as vectors: their decoded inputs, or the embeddings a model version gives them.

Samples are read from Kafka by offset, as the trainer reads them, and decoded by the pipeline's decoder and
transformations. The reference window's vectors are kept until the reference or the model changes (Modyn
computes them again at every evaluation), so each evaluation embeds only the current window.
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


class WindowVectors:
    def __init__(self, store: MetadataStore, fetchers: PayloadFetchers, trust: CodeTrust) -> None:
        self.store, self.fetchers, self.trust = store, fetchers, trust
        self._models: dict[tuple[str, int], torch.nn.Module] = {}
        self._kept: dict[str, tuple[tuple, np.ndarray]] = {}  # per pipeline: (what it is, vectors)

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
            self._models = {(pid, trigger_index): model.to(config.training.device).eval()}  # the latest only
        return self._models[(pid, trigger_index)]

    def vectors(self, pid: str, config: PipelineConfig, rows: pa.Table, model_index: int | None, key=None):
        """The vectors of the window `rows` (see `ClickHouseSampleIndex.window`); a `key` names the window so
        that asking again for the same one (and model) reuses them."""
        if key is not None and (kept := self._kept.get(pid)) and kept[0] == (key, model_index):
            return kept[1]
        model = None if model_index is None else self.model(pid, config, model_index)
        data = config.data
        decoder = build_decoder(data.decoder, data.decoder_config, data.transformations, trust=self.trust, seed=0)
        columns = [rows[name].cast(kind) for name, kind in zip(SCHEMA.names[:4], SCHEMA.types[:4], strict=True)]
        manifest = pa.Table.from_arrays([*columns, pa.array(np.ones(rows.num_rows, np.float32))], schema=SCHEMA)
        loader = ChunkLoader(self.fetchers[data.dataset_id], decoder, manifest)
        parts, size = [], config.training.batch_size
        try:
            with torch.inference_mode():
                for x, _, _ in loader:
                    for start in range(0, len(x), size):
                        batch = x[start : start + size]
                        if model is not None:
                            batch = forward_with_embeddings(model, batch.to(config.training.device))[1]
                        parts.append(batch.reshape(len(batch), -1).double().cpu().numpy())
        finally:
            loader.close()
        vectors = np.concatenate(parts) if parts else np.zeros((0, 1))
        if key is not None:
            self._kept[pid] = ((key, model_index), vectors)
        return vectors
