"""Dataset readers for replay. Each reads and checks its whole input before anything is published.

Every reader returns a `SampleSource`: payloads in source order, labels, optional per-sample
timestamps (ms) from the data, and a content type saying how to decode payloads. Positions in
errors are what a user can look up: row numbers, record indices, byte offsets, file names.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modyn_stream.replay.exceptions import ReplayInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class SampleSource:
    payloads: Sequence[bytes]  # indexable; may be lazy (files read on access)
    labels: np.ndarray | None  # int64, one per sample, or None when unlabelled
    timestamps_ms: np.ndarray | None  # int64 from the data itself, if it has a time field
    file_mtimes_ms: np.ndarray  # int64: modification time of the file each sample came from
    content_type: str | Sequence[str]
    names: Sequence[str] | None = None  # stable per-sample names, when the source has them (files)

    def __len__(self) -> int:
        return len(self.payloads)


def _require(path: Path) -> Path:
    if not path.exists():
        raise ReplayInputError(path, "file", "does not exist")
    return path


def _mtime_ms(path: Path) -> int:
    return int(path.stat().st_mtime * 1000)


class _RowBytes(Sequence[bytes]):
    """Rows of a 2-D+ array as bytes, without copying the array up front."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.ascontiguousarray(array)

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i):  # type: ignore[override]
        return self.array[i].tobytes()


def _ndarray_type(array: np.ndarray) -> str:
    shape = ",".join(str(d) for d in array.shape[1:]) or "1"
    return f"application/x-ndarray;dtype={array.dtype.str};shape={shape}"


# -- NumPy ----------------------------------------------------------------------------------------


def read_npz(path: Path, x_key: str = "x", y_key: str | None = "y", t_key: str | None = None) -> SampleSource:
    _require(path)
    if not zipfile.is_zipfile(path):  # numpy would take it for a pickle and advise loading it unsafely
        raise ReplayInputError(path, "archive", "not an .npz archive (a zip of .npy arrays)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ReplayInputError(path, "archive", f"not a readable .npz: {exc}") from None
    with archive:
        keys = set(archive.files)
        for name, key in (("--x-key", x_key), ("--y-key", y_key), ("--t-key", t_key)):
            if key is not None and key not in keys:
                raise ReplayInputError(path, f"array {key!r}", f"missing ({name}); the archive has {sorted(keys)}")
        x, y, t = (_npz_array(archive, path, key) for key in (x_key, y_key, t_key))
    if x.ndim < 1 or len(x) == 0:
        raise ReplayInputError(path, f"array {x_key!r}", "has no samples")
    for key, array in ((y_key, y), (t_key, t)):
        if array is not None and array.shape != (len(x),):
            raise ReplayInputError(path, f"array {key!r}", f"shape {array.shape} does not match {len(x)} samples")
        if array is not None and not np.issubdtype(array.dtype, np.integer):
            raise ReplayInputError(path, f"array {key!r}", f"must hold integers, has {array.dtype}")
    n = len(x)
    return SampleSource(
        _RowBytes(x),
        None if y is None else y.astype(np.int64),
        None if t is None else t.astype(np.int64),
        np.full(n, _mtime_ms(path), dtype=np.int64),
        _ndarray_type(x),
    )


def _npz_array(archive, path: Path, key: str | None) -> np.ndarray | None:
    if key is None:
        return None
    try:
        return archive[key]
    except ValueError:  # object arrays, which only unpickling could read
        raise ReplayInputError(path, f"array {key!r}", "holds Python objects, which are never unpickled") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ReplayInputError(path, f"array {key!r}", f"cannot be read: {exc}") from None


# -- MNIST IDX ------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path) -> np.ndarray:
    data = _require(path).read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ReplayInputError(path, "byte 0", "not an IDX file (magic must start with two zero bytes)")
    dtype, ndim = data[2], data[3]
    if dtype not in _IDX_DTYPES or ndim == 0:
        raise ReplayInputError(path, "byte 2", f"unknown IDX type 0x{dtype:02x} or zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ReplayInputError(path, "header", f"truncated: {len(data)} bytes, header needs {header}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims)) * np.dtype(_IDX_DTYPES[dtype]).itemsize
    if len(data) - header != expected:
        raise ReplayInputError(
            path, f"byte {header}", f"dimensions {dims} need {expected} bytes of data, found {len(data) - header}"
        )
    return np.frombuffer(data, dtype=_IDX_DTYPES[dtype], offset=header).reshape(dims)


def read_idx(images: Path, labels: Path | None) -> SampleSource:
    x = _read_idx(images)
    y = _read_idx(labels) if labels else None
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise ReplayInputError(labels, "header", f"{y.shape} labels for {len(x)} images")
    x = x.astype(x.dtype.newbyteorder("=")) if x.dtype.byteorder == ">" else x
    return SampleSource(
        _RowBytes(x),
        None if y is None else y.astype(np.int64),
        None,
        np.full(len(x), _mtime_ms(images), dtype=np.int64),
        _ndarray_type(x),
    )


# -- CSV ------------------------------------------------------------------------------------------


def read_csv(
    path: Path,
    label_column: str | int | None,
    separator: str = ",",
    header: bool = True,
    timestamp_column: str | int | None = None,
) -> SampleSource:
    """Each row's other columns, re-joined with `separator`, are the payload (Modyn's CSV format)."""
    _require(path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter=separator)
        try:
            columns = next(rows) if header else None
        except StopIteration:
            raise ReplayInputError(path, "line 1", "empty file") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ReplayInputError(path, "line 1", str(exc)) from None

        def index_of(column: str | int | None, option: str) -> int | None:
            if column is None:
                return None
            if isinstance(column, int) or str(column).isdigit():
                return int(column)
            if columns is None or column not in columns:
                raise ReplayInputError(path, "header", f"no column {column!r} ({option}); columns: {columns}")
            return columns.index(column)

        label_at, time_at = index_of(label_column, "--label-column"), index_of(timestamp_column, "--timestamp-column")
        drop = {i for i in (label_at, time_at) if i is not None}
        payloads, labels, times = [], [], []
        width = len(columns) if columns else None
        line = 1 if header else 0
        try:
            for row in rows:
                line += 1
                if not row:
                    continue
                width = width or len(row)
                if len(row) != width:
                    raise ReplayInputError(path, f"line {line}", f"{len(row)} fields, expected {width}")
                for at, sink, what in ((label_at, labels, "label"), (time_at, times, "timestamp")):
                    if at is None:
                        continue
                    try:
                        sink.append(int(row[at]))
                    except (ValueError, IndexError):
                        raise ReplayInputError(path, f"line {line}", f"{what} {row[at]!r} is not an integer") from None
                out = io.StringIO()
                csv.writer(out, delimiter=separator, lineterminator="").writerow(
                    [v for i, v in enumerate(row) if i not in drop]
                )
                payloads.append(out.getvalue().encode())
        except csv.Error as exc:
            raise ReplayInputError(path, f"line {line}", str(exc)) from None
        except UnicodeDecodeError as exc:
            raise ReplayInputError(path, f"line {line + 1}", f"not UTF-8: {exc.reason}") from None
    if not payloads:
        raise ReplayInputError(path, f"line {line}", "no data rows")
    return SampleSource(
        payloads,
        np.asarray(labels, dtype=np.int64) if label_at is not None else None,
        np.asarray(times, dtype=np.int64) if time_at is not None else None,
        np.full(len(payloads), _mtime_ms(path), dtype=np.int64),
        f"text/csv;separator={separator}",
    )


# -- fixed-size binary records (Modyn's BinaryFileWrapper) ----------------------------------------


def read_binary(paths: Sequence[Path], record_size: int, label_size: int, byteorder: str = "little") -> SampleSource:
    """Records of `record_size` bytes: the first `label_size` bytes are the label, the rest the payload."""
    if not 0 < label_size < record_size:
        raise ReplayInputError(paths[0] if paths else "-", "options", "need 0 < --label-size < --record-size")
    payloads, labels, mtimes = [], [], []
    for path in paths:
        data = _require(path).read_bytes()
        if len(data) % record_size:
            whole = len(data) // record_size
            raise ReplayInputError(
                path, f"byte {whole * record_size}", f"{len(data) % record_size} trailing bytes after {whole} records"
            )
        records = np.frombuffer(data, dtype=np.uint8).reshape(-1, record_size)
        labels.extend(int.from_bytes(r[:label_size].tobytes(), byteorder, signed=False) for r in records)
        payloads.extend(r[label_size:].tobytes() for r in records)
        mtimes += [_mtime_ms(path)] * len(records)
    return SampleSource(
        payloads,
        np.asarray(labels, dtype=np.int64),
        None,
        np.asarray(mtimes, dtype=np.int64),
        "application/octet-stream",
    )


# -- one file per sample + label file (Modyn's SingleSampleFileWrapper) ---------------------------


class _FileBytes(Sequence[bytes]):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):  # type: ignore[override]
        return self.files[i].read_bytes()


def read_image_folder(folder: Path, label_suffix: str = ".label") -> SampleSource:
    """Every image file in `folder` (recursively) with a `<name><label_suffix>` file holding its label."""
    if not folder.is_dir():
        raise ReplayInputError(folder, "folder", "does not exist or is not a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ReplayInputError(folder, "folder", f"no image files ({', '.join(IMAGE_SUFFIXES)})")
    labels, types = [], []
    for file in files:
        label_file = file.with_suffix(label_suffix)
        if not label_file.exists():
            raise ReplayInputError(label_file, "file", f"missing: every image needs a label file ({file.name})")
        text = label_file.read_text().strip()
        try:
            labels.append(int(text))
        except ValueError:
            raise ReplayInputError(label_file, "line 1", f"label {text!r} is not an integer") from None
        types.append("image/jpeg" if file.suffix.lower() in (".jpg", ".jpeg") else f"image/{file.suffix[1:].lower()}")
    return SampleSource(
        _FileBytes(files),
        np.asarray(labels, dtype=np.int64),
        None,
        np.asarray([_mtime_ms(f) for f in files], dtype=np.int64),
        types,
        names=[os.fspath(f.relative_to(folder)) for f in files],
    )
