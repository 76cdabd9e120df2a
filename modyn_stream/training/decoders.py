"""Payload decoders and transformations by name: a batch of payload bytes in, one tensor out.

Decoders work on the whole batch at once (one NumPy call over the joined bytes), never one Python
call per sample, except `image`, which has to call Pillow per picture.

* `raw`: fixed-size binary records: `dtype`, `shape` (per sample), optional `scale` and `shift`.
* `float32_vector`: `raw` with dtype float32 and shape [n] taken from the payload size.
* `csv_row`: one comma-separated row of numbers per payload.
* `csv_row`: `header: true` skips each payload's first line (pandas' `read_csv` default).
* `image`: PNG/JPEG through Pillow (`mode`, e.g. "L" or "RGB", or null: as stored), scaled to [0, 1],
  channels first.
* `text`: UTF-8 text as byte-level token ids (`max_length`, default 512).
* `criteo`: Modyn's Criteo records (13 float32 + 26 int32) as 39 float64 columns.
* `module:function`: your function, list[bytes] -> tensor, where the operator trusts its module
  (`--trust-code` or `trusted_modules`; see `pipeline/trust.py`).

Transformations follow the decoder (training/transforms.py).

>>> decode = build_decoder("raw", {"dtype": "uint8", "shape": [2, 2], "scale": 0.5})
>>> decode([bytes([0, 2, 4, 6]), bytes([8, 10, 12, 14])]).tolist()
[[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]]]
>>> build_decoder("csv_row", {})([b"1,2.5", b"3,4"]).tolist()
[[1.0, 2.5], [3.0, 4.0]]
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from modyn_stream.pipeline.trust import NOBODY, CodeTrust
from modyn_stream.training.exceptions import PayloadError, TrainingError
from modyn_stream.training.transforms import Transform, build_transform

Decoder = Callable[[Sequence[bytes]], torch.Tensor]


def _raw(dtype: str = "uint8", shape: Sequence[int] | None = None, scale: float = 1.0, shift: float = 0.0) -> Decoder:
    kind = np.dtype(dtype)

    def decode(payloads: Sequence[bytes]) -> torch.Tensor:
        sizes = {len(p) for p in payloads}
        if len(sizes) > 1:
            raise PayloadError(f"raw decoder: payloads of different sizes {sorted(sizes)[:5]} in one batch")
        data = np.frombuffer(b"".join(payloads), dtype=kind)
        per_sample = (-1,) if shape is None else tuple(shape)
        try:
            array = data.reshape(len(payloads), *per_sample)
        except ValueError:
            raise PayloadError(f"raw decoder: {sizes.pop()} bytes of {kind} do not fit shape {per_sample}") from None
        values = array.astype(np.float32)
        if scale != 1.0:
            np.multiply(values, np.float32(scale), out=values)
        if shift:
            np.add(values, np.float32(shift), out=values)
        # NumPy, not torch ops: decoding runs in the loader thread, where torch would start a
        # second OpenMP team whose spinning threads slow the training loop's own.
        return torch.from_numpy(values)

    return decode


def _csv_row(delimiter: str = ",", header: bool = False) -> Decoder:
    def decode(payloads: Sequence[bytes]) -> torch.Tensor:
        rows = [p.split(b"\n", 1)[-1] for p in payloads] if header else payloads
        try:
            array = np.loadtxt(
                io.BytesIO(b"\n".join(r.strip() for r in rows)), delimiter=delimiter, dtype=np.float32, ndmin=2
            )
        except ValueError as exc:
            raise PayloadError(f"csv_row decoder: {exc}") from None
        return torch.from_numpy(array)

    return decode


def _image(mode: str | None = "RGB", transform: Transform | None = None) -> Decoder:
    try:
        from PIL import Image
    except ImportError:
        raise TrainingError("the image decoder needs Pillow: pip install pillow") from None

    def decode(payloads: Sequence[bytes]) -> torch.Tensor:
        try:
            images = [Image.open(io.BytesIO(p)) for p in payloads]
            arrays = [np.asarray(image.convert(mode) if mode else image) for image in images]
        except OSError as exc:
            raise PayloadError(f"image decoder: {exc}") from None
        tensors = []
        for array in arrays:
            pixels = array.astype(np.float32)[None] / 255.0
            pixels = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)  # channels first
            tensor = torch.from_numpy(np.ascontiguousarray(pixels))
            tensors.append(transform(tensor) if transform else tensor)
        sizes = {tuple(x.shape[1:]) for x in tensors}
        if len(sizes) > 1:
            raise PayloadError(f"image decoder: images of sizes {sorted(sizes)[:3]} in one batch; add a Resize, "
                               "CenterCrop or RandomResizedCrop transformation")  # fmt: skip
        return torch.cat(tensors)

    return decode


def _text(max_length: int = 512) -> Decoder:
    """UTF-8 text as byte-level token ids (byte + 1; 0 pads to `max_length`, longer text is cut)."""

    def decode(payloads: Sequence[bytes]) -> torch.Tensor:
        ids = np.zeros((len(payloads), max_length), dtype=np.int64)
        for row, payload in enumerate(payloads):
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PayloadError(f"text decoder: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            cut = np.frombuffer(payload[:max_length], dtype=np.uint8)
            ids[row, : len(cut)] = cut.astype(np.int64) + 1
        return torch.from_numpy(ids)

    return decode


def _criteo() -> Decoder:
    """Modyn's Criteo records (13 float32 dense features, then 26 int32 categorical ids) as 39 float64
    columns, which hold every int32 id exactly (TabularDLRM takes dense columns first, then ids)."""

    def decode(payloads: Sequence[bytes]) -> torch.Tensor:
        if any(len(p) != 156 for p in payloads):
            raise PayloadError("criteo decoder: a record is 156 bytes (13 float32 + 26 int32)")
        joined = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(payloads), 156)
        dense = joined[:, :52].copy().view(np.float32).astype(np.float64)
        ids = joined[:, 52:].copy().view(np.int32).astype(np.float64)
        return torch.from_numpy(np.concatenate([dense, ids], axis=1))

    return decode


DECODERS: dict[str, Callable[..., Decoder]] = {
    "text": _text,
    "criteo": _criteo,
    "raw": _raw,
    "float32_vector": lambda: _raw("float32"),
    "csv_row": _csv_row,
    "image": _image,
}


def data_decoder(data, *, trust: CodeTrust = NOBODY, seed: int = 0) -> Decoder:
    """The decoder a `data` section (or an evaluation dataset) names; with Modyn's `tokenizer`, its text is
    tokenized for DistilBERT (training/text.py)."""
    if data.tokenizer is not None:
        from modyn_stream.training.text import tokens_decoder

        return tokens_decoder()
    return build_decoder(data.decoder, data.decoder_config, data.transformations, trust=trust, seed=seed)


def build_decoder(
    name: str, config: dict[str, Any], transformations: Sequence = (), *, trust: CodeTrust = NOBODY, seed: int = 0
) -> Decoder:
    """A named decoder, or `module:function` if the operator trusts that module (`trust`), followed by the
    transformations. Images are transformed one by one (they may differ in size until a crop or resize),
    other tensors a batch at a time. Random transformations draw from a generator seeded with `seed`, in
    manifest order, so the same training set is augmented the same way every time."""
    transform = build_transform(transformations, trust, torch.Generator().manual_seed(seed))
    if ":" in name:
        decoder = trust.load(name, "data.decoder")
    elif name in DECODERS:
        options = {**config, "transform": transform} if name == "image" else config
        try:
            decoder = DECODERS[name](**options)
        except TypeError as exc:
            raise TrainingError(f"decoder {name}: bad decoder_config {config}: {exc}") from None
    else:
        raise TrainingError(f"unknown decoder {name!r}; known: {', '.join(DECODERS)} or module:function")
    if transform is None or name == "image":
        return decoder
    return lambda payloads: transform(decoder(payloads))


LABEL_TRANSFORMERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"float": lambda y: y.to(torch.float32)}


def build_label_transformer(name: str | None, trust: CodeTrust = NOBODY) -> Callable[[torch.Tensor], torch.Tensor]:
    """`data.label_transformer` (Modyn's `label_transformer_function`): applied to each batch's labels."""
    if name is None:
        return lambda y: y
    if ":" in name:
        return trust.load(name, "data.label_transformer")
    if name not in LABEL_TRANSFORMERS:
        raise TrainingError(f"unknown label transformer {name!r}; known: {', '.join(LABEL_TRANSFORMERS)}")
    return LABEL_TRANSFORMERS[name]
