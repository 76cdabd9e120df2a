"""Decoded evaluation samples kept from one model to the next, so a window is read once for all models.

Every model of a pipeline is scored on the same windows (or, as the stream grows, on windows that
extend the last ones), so the evaluator keeps the decoded inputs, labels and event times of the
last span it read per dataset, up to `max_bytes`, and the next model reads from Kafka only what
lies past that span. Kept inputs are used only when they were decoded the same way (`key`: the
same decoder, transformations and classes, and for random transformations the same seed) and the
span's labelled samples in ClickHouse still number what they did (one count): a late sample makes
the evaluator read the span again. Inputs larger than `max_bytes`, or with samples left out for
their class, are streamed as before and not kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from modyn_stream.metadata import MetadataStore


@dataclass
class Samples:
    """Labelled samples of a span in stream order: event times (ms), labels and inputs, chunk by chunk."""

    times: np.ndarray
    labels: torch.Tensor
    inputs: Iterable[torch.Tensor]
    note: str | None = None  # which samples were left out for their class


Reader = Callable[[int, int], Samples]  # (start, end) -> the samples of [start, end)


@dataclass
class _Kept:
    dataset: str
    key: str
    start: int
    end: int
    times: np.ndarray
    labels: torch.Tensor
    inputs: torch.Tensor


class KeptInputs:
    def __init__(self, store: MetadataStore, max_bytes: int) -> None:
        self.store, self.max_bytes = store, max_bytes
        self._kept: dict[str, _Kept] = {}
        self.spans_read: list[tuple[str, int, int]] = []  # (dataset, start, end) read through `read`

    def samples(self, dataset: str, key: str, start: int, end: int, read: Reader) -> Samples:
        """The samples of [start, end): the kept ones where they still hold, the rest through `read`."""
        kept = self._kept.pop(dataset, None)
        if kept is not None and (kept.key != key or not kept.start <= start <= kept.end or self._changed(kept)):
            kept = None
        if kept is not None and end <= kept.end:
            self._kept[dataset] = kept
            return _between(Samples(kept.times, kept.labels, [kept.inputs]), start, end)
        self.spans_read.append((dataset, start if kept is None else kept.end, end))
        new = read(start if kept is None else kept.end, end)
        if kept is None:
            kept = _Kept(dataset, key, start, start, np.zeros(0, np.int64), new.labels[:0], torch.zeros(0))
        times, labels = np.concatenate([kept.times, new.times]), torch.cat([kept.labels, new.labels])
        inputs = self._keeping(kept, new, times, labels, end)
        return _between(Samples(times, labels, inputs, new.note), start, end)

    def _changed(self, kept: _Kept) -> bool:
        (count,), = self.store.query(
            "SELECT count() FROM samples WHERE dataset = {d:String} AND label IS NOT NULL AND "
            "event_time >= fromUnixTimestamp64Milli({s:Int64}) AND event_time < fromUnixTimestamp64Milli({e:Int64})",
            {"d": kept.dataset, "s": kept.start, "e": kept.end},
        )  # fmt: skip
        return count != len(kept.times)

    def _keeping(self, kept: _Kept, new: Samples, times: np.ndarray, labels: torch.Tensor, end: int
                 ) -> Iterator[torch.Tensor]:  # fmt: skip
        """The kept inputs, then the new ones as they are read; all of them (whose event times and labels are
        `times` and `labels`) kept once read, if they fit."""
        parts = [kept.inputs] if len(kept.times) else []
        held = kept.inputs.element_size() * kept.inputs.nelement()
        yield from parts
        for x in new.inputs:
            held += x.element_size() * x.nelement()
            if held > self.max_bytes:
                parts = None
            elif parts is not None:
                parts.append(x)
            yield x
        if parts and new.note is None:
            self._kept[kept.dataset] = _Kept(kept.dataset, kept.key, kept.start, end, times, labels, torch.cat(parts))


def _between(samples: Samples, start: int, end: int) -> Samples:
    """The samples of [start, end) out of sorted ones, their inputs sliced chunk by chunk as they come."""
    lo, hi = (int(i) for i in np.searchsorted(samples.times, [start, end], side="left"))

    def sliced() -> Iterator[torch.Tensor]:
        offset = 0
        for x in samples.inputs:
            a, b = max(lo - offset, 0), min(hi - offset, len(x))
            if a < b:
                yield x[a:b]
            offset += len(x)

    return Samples(samples.times[lo:hi], samples.labels[lo:hi], sliced(), samples.note)


def decoding_key(data, classes: int | None, seed: int) -> str:
    """What decides how a dataset's samples are decoded for a model: its decoder, transformations and classes,
    and the seed where a transformation or the decoder may draw random numbers (random or the operator's code)."""
    steps = [t if isinstance(t, str) else t.get("name", "") for t in data.transformations]
    random = ":" in data.decoder or any(":" in step or step.startswith("Random") for step in steps)
    spec = [data.decoder, data.decoder_config, data.transformations, data.tokenizer, classes, seed if random else None]
    return json.dumps(spec, sort_keys=True, default=str)
