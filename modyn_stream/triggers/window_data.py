"""A batched trigger's window of samples as tensors: decoded inputs, the embeddings or the outputs of a model version.

Samples are read from Kafka by offset, as the trainer reads them, and decoded by the pipeline's decoder and
transformations (or an evaluation dataset's own). A sample the decoder cannot read is left out of its window (the
same bytes fail the same way, so the decision stays a function of the stream) and named in the decision, rather
than stopping every pipeline's triggers.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.trust import CodeTrust
from modyn_stream.selection.manifest import SCHEMA
from modyn_stream.training.decoders import data_decoder
from modyn_stream.training.embeddings import forward_with_embeddings
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.fetch import PayloadFetchers
from modyn_stream.training.loader import ChunkLoader
from modyn_stream.training.model_store import load_model
from modyn_stream.training.models import model_with_weights

UNREADABLE = (TrainingError, ValueError, TypeError, RuntimeError, OSError)  # what a decoder raises on bad bytes


class WindowData:
    def __init__(self, store: MetadataStore, fetchers: PayloadFetchers, trust: CodeTrust) -> None:
        self.store, self.fetchers, self.trust = store, fetchers, trust
        self._models: dict[tuple[str, int], torch.nn.Module] = {}
        self._usable: dict[tuple[str, int], int | None] = {}  # (pipeline, last trigger) -> its settled `usable_model`

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

    def usable_model(self, pid: str, last_trigger: int | None) -> int | None:
        """The trigger whose model a decision after `last_trigger` uses: the last one whose training did not fail
        (its model may still be training: the decision waits); None if every training so far failed."""
        if last_trigger is None:
            return None
        if (pid, last_trigger) in self._usable:  # settled: asked again at every step of the trigger service
            return self._usable[(pid, last_trigger)]
        trained = dict(self.store.query(  # trigger -> whether its model is stored (else its training failed)
            "SELECT trigger_index, max(stored) FROM (SELECT trigger_index, 1 AS stored FROM models FINAL "
            "WHERE pipeline_id = {p:String} AND trigger_index <= {i:UInt32} UNION ALL SELECT trigger_index, 0 "
            "FROM training_failures FINAL WHERE pipeline_id = {p:String} AND trigger_index <= {i:UInt32}) "
            "GROUP BY trigger_index", {"p": pid, "i": last_trigger}))  # fmt: skip
        usable = last_trigger
        while trained.get(usable) == 0:
            usable -= 1
        usable = usable if usable >= 0 else None
        if usable is None or trained.get(usable) == 1:  # not a training still under way: it stays so
            self._usable[(pid, last_trigger)] = usable
        return usable

    def vectors(self, pid: str, config: PipelineConfig, rows: pa.Table, model_index: int | None):
        """(vectors, kept) of the window `rows` (see `ClickHouseSampleIndex.window`): inputs flattened, or the
        embeddings of the model of trigger `model_index`, of the samples `kept` marks (the others are unreadable)."""
        model = None if model_index is None else self.model(pid, config, model_index).to(config.training.device)
        embed = None if model is None else (lambda batch: forward_with_embeddings(model, batch)[1])
        parts, kept = self._batches(config, config.data, rows, embed, config.training.device)
        return (np.concatenate(parts) if parts else np.zeros((0, 1))), kept

    def outputs(self, pid: str, config: PipelineConfig, rows: pa.Table, model_index: int, data, device: str):
        """(outputs, kept) of the model of trigger `model_index` (on `device`) for the samples of the window `rows`
        that `kept` marks, decoded as `data` says."""
        model = self.model(pid, config, model_index).to(device)
        parts, kept = self._batches(config, data, rows, model, device)
        return (torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, 1)), kept

    def _batches(self, config: PipelineConfig, data, rows: pa.Table, apply, device: str):
        """The window's readable samples decoded as `data` says, through `apply` (None: as they are), batch by
        batch, and which samples were readable."""
        decoder = data_decoder(data, trust=self.trust, seed=0)
        readable = _Readable(decoder, rows.num_rows)
        columns = [rows[name].cast(kind) for name, kind in zip(SCHEMA.names[:4], SCHEMA.types[:4], strict=True)]
        manifest = pa.Table.from_arrays([*columns, pa.array(np.ones(rows.num_rows, np.float32))], schema=SCHEMA)
        loader = ChunkLoader(self.fetchers[config.data.dataset_id], readable, manifest)
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
        return parts, readable.kept


class _Readable:
    """A decoder that leaves out the samples it cannot read: a chunk that fails is decoded one sample at a time,
    and of those that decode, the ones of the most common shape (then the first) are kept. `kept` marks them, in
    window order (the loader decodes its chunks in order, in one thread)."""

    def __init__(self, decode, samples: int) -> None:
        self.decode, self.kept, self.at = decode, np.ones(samples, dtype=bool), 0

    def __call__(self, payloads) -> torch.Tensor:
        start, self.at = self.at, self.at + len(payloads)
        try:
            return self.decode(payloads)
        except UNREADABLE:
            pass
        alone = {}
        for i, payload in enumerate(payloads):
            try:
                alone[i] = self.decode([payload])
            except UNREADABLE:
                self.kept[start + i] = False
        shapes = [tuple(x.shape[1:]) for x in alone.values()]
        common = max(shapes, key=lambda shape: (shapes.count(shape), -shapes.index(shape)), default=None)
        for i, x in alone.items():
            if tuple(x.shape[1:]) != common:
                self.kept[start + i] = False
        kept = [x for x in alone.values() if tuple(x.shape[1:]) == common]
        return torch.cat(kept) if kept else torch.zeros(0)
