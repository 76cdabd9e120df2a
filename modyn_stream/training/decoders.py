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

Transformations, applied in order to the batch: `{name: Normalize, mean: [...], std: [...]}` (per
channel, or one value), `{name: Resize, size: s}`, `{name: CenterCrop, size: s}` (as torchvision's),
`ToTensor` (nothing to do: decoders give tensors), `{name: Flatten}`, `{name: Scale, factor: x}`.
Modyn's `transformations` strings (`transforms.Normalize(...)`) are read into these (pipeline/snippets.py).

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


def _image(mode: str | None = "RGB") -> Decoder:
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
        batch = np.stack(arrays).astype(np.float32) / 255.0
        batch = batch[:, None] if batch.ndim == 3 else batch.transpose(0, 3, 1, 2)  # channels first
        return torch.from_numpy(np.ascontiguousarray(batch))

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


def build_decoder(
    name: str, config: dict[str, Any], transformations: Sequence = (), *, trust: CodeTrust = NOBODY
) -> Decoder:
    """A named decoder, or `module:function` if the operator trusts that module (`trust`)."""
    if ":" in name:
        decoder = trust.load(name, "data.decoder")
    elif name in DECODERS:
        try:
            decoder = DECODERS[name](**config)
        except TypeError as exc:
            raise TrainingError(f"decoder {name}: bad decoder_config {config}: {exc}") from None
    else:
        raise TrainingError(f"unknown decoder {name!r}; known: {', '.join(DECODERS)} or module:function")
    steps = [_transformation(t, trust) for t in transformations]
    if not steps:
        return decoder

    def decode_and_transform(payloads: Sequence[bytes]) -> torch.Tensor:
        tensor = decoder(payloads)
        for step in steps:
            tensor = step(tensor)
        return tensor

    return decode_and_transform


def _transformation(spec: str | dict, trust: CodeTrust) -> Callable[[torch.Tensor], torch.Tensor]:
    config = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = config.pop("name", None)
    if name == "Normalize":
        mean, std = torch.tensor(config["mean"]), torch.tensor(config["std"])
        return lambda x: (x - _per_channel(mean, x)) / _per_channel(std, x)
    if name == "ToTensor":  # decoders give float tensors, images scaled to [0, 1] channels first already
        return lambda x: x
    if name == "Resize":
        return lambda x: _resize(x, config["size"])
    if name == "CenterCrop":
        return lambda x: _center_crop(x, config["size"])
    if name == "Flatten":
        return lambda x: x.reshape(len(x), -1)
    if name == "Scale":
        return lambda x: x * float(config["factor"])
    if isinstance(name, str) and ":" in name:
        return trust.load(name, "data.transformations")
    raise TrainingError(
        f"unknown transformation {spec!r}; known: ToTensor, Normalize, Resize, CenterCrop, Flatten, Scale or "
        "module:function"
    )


def _per_channel(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.reshape(1, -1, *([1] * (x.dim() - 2))) if values.numel() > 1 and x.dim() > 2 else values


def _resize(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """torchvision's Resize on a batch (N, C, H, W): an int sets the shorter side, keeping the aspect ratio."""
    height, width = x.shape[-2:]
    if isinstance(size, int):
        short = min(height, width)
        target = (
            (size, max(1, round(width * size / short)))
            if height == short
            else (max(1, round(height * size / short)), size)
        )
    else:
        target = tuple(size) if len(size) == 2 else (size[0], size[0])
    return torch.nn.functional.interpolate(x, size=target, mode="bilinear", antialias=True, align_corners=False)


def _center_crop(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    height, width = (size, size) if isinstance(size, int) else (tuple(size) * 2)[:2]
    top, left = max(0, (x.shape[-2] - height) // 2), max(0, (x.shape[-1] - width) // 2)
    return x[..., top : top + height, left : left + width]


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
