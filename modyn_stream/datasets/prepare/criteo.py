"""Criteo 1TB click logs (day_0 ... day_23, tab-separated: label, 13 integer and 26 hexadecimal categorical
features, any of them empty) -> one binary file per day of 160-byte records as Modyn's preprocessing writes them:
the label (int32), 13 float32 numerical features (log(1 + x), negatives and empty as 0, as NVIDIA's DLRM
preprocessing) and 26 int32 categorical indices: per feature, the values seen at least `frequency_threshold`
times over all the given days numbered 1..n in order of first appearance, every rarer value n + 1, empty 0.
Day d's records are modified at d days + 1 s, Modyn's `criteo_timestamps.py`."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from modyn_stream.datasets.prepare.base import DAY_S, Prepared, PrepareError

RECORD = np.dtype([("label", "<i4"), ("numerical", "<f4", 13), ("categorical", "<i4", 26)])  # 160 bytes


def _rows(path: Path):
    with open(path, encoding="ascii", errors="strict") as handle:
        for line, text in enumerate(handle, start=1):
            fields = text.rstrip("\n").split("\t")
            if len(fields) != 40:
                raise PrepareError(path, f"line {line}: {len(fields)} fields, a Criteo row has 40")
            yield line, fields


def prepare_criteo(source: Path, out: Path, frequency_threshold: int = 3, **_) -> Prepared:
    """A folder of day_<d> files (or one such file) -> criteo/day<d>.bin."""
    days = sorted(source.glob("day_*"), key=_day) if source.is_dir() else [source]
    days = [d for d in days if re.fullmatch(r"day_\d+", d.name)]
    if not days:
        raise PrepareError(source, "no day_<d> files (Criteo's day_0 ... day_23, uncompressed)")
    counts = [Counter() for _ in range(26)]
    first = [dict() for _ in range(26)]  # value -> order of first appearance
    for day in days:
        for _, fields in _rows(day):
            for j, value in enumerate(fields[14:]):
                if value:
                    counts[j][value] += 1
                    first[j].setdefault(value, len(first[j]))
    tables = [{v: i + 1 for i, v in enumerate(sorted((v for v in first[j] if counts[j][v] >= frequency_threshold),
                                                     key=first[j].__getitem__))} for j in range(26)]  # fmt: skip
    folder = out / "criteo"
    folder.mkdir(parents=True, exist_ok=True)
    outputs, total = [], 0
    for day in days:
        records = []
        for line, fields in _rows(day):
            try:
                numbers = np.log1p(np.asarray([max(int(v), 0) if v else 0 for v in fields[1:14]], dtype=np.float64))
                indices = [tables[j].get(v, len(tables[j]) + 1) if v else 0 for j, v in enumerate(fields[14:])]
                records.append((int(fields[0]), numbers, indices))
            except ValueError:
                raise PrepareError(day, f"line {line}: a label or numerical feature is not an integer") from None
        path = folder / f"day{_day(day)}.bin"
        path.write_bytes(np.array(records, dtype=RECORD).tobytes())
        stamp = (_day(day) * DAY_S + 1) * 1_000_000_000
        os.utime(path, ns=(stamp, stamp))
        outputs.append(path)
        total += len(records)
    return Prepared(outputs, total, "--format binary --record-size 160 --label-size 4 --timestamps mtime")


def _day(path: Path) -> int:
    match = re.search(r"(\d+)$", path.name)
    return int(match.group(1)) if match else -1
