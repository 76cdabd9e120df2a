"""Wild-Time's datasets (Yao et al. 2022), from the pickles Wild-Time publishes: {year: {split: columns}} with
split 0 train, 1 test, 2 all (Yearbook only). Event times as Modyn's `benchmark/wildtime_benchmarks` scripts set
them: Yearbook's year y is day y - 1930 after 1970-01-01; arXiv's is 1970-01-(y - 2006), HuffPost's
1970-01-(y - 2011), FMoW's time step s 1970-01-(s + 1), or with `daily` the image's own capture time."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np

from modyn_stream.datasets.prepare.base import (
    DAY_S,
    TEXT_REPLAY,
    Prepared,
    PrepareError,
    day_of_1970,
    load_pickle,
    write_labelled_file,
    write_npz,
    write_text_rows,
)  # fmt: skip

SPLITS = {"train": 0, "test": 1, "all": 2}


def _years(data, path: Path, split: str, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(year, that split's columns) in year order, each column checked to be there and of one length."""
    if not isinstance(data, dict) or not data:
        raise PrepareError(path, "not a Wild-Time pickle (a mapping of years to splits)")
    out = []
    for year in sorted(data):
        try:
            part = data[year][SPLITS[split]]
            lengths = {len(part[c]) for c in columns}
        except (KeyError, TypeError, IndexError):
            raise PrepareError(path, f"year {year}: no split {split!r} with {', '.join(columns)}") from None
        if len(lengths) != 1:
            raise PrepareError(path, f"year {year}, split {split}: columns {', '.join(columns)} differ in length")
        out.append((int(year), part))
    return out


def prepare_yearbook(source: Path, out: Path, split: str = "train", **_) -> Prepared:
    """yearbook.pkl -> yearbook.npz: x float32 3x32x32 (CHW, Modyn's 12,288-byte payload), y, t."""
    xs, ys, ts = [], [], []
    for year, part in _years(load_pickle(source), source, split, ("images", "labels")):
        images = np.asarray(part["images"], dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise PrepareError(source, f"year {year}: images of shape {images.shape[1:]}, expected 32x32x3")
        xs.append(images.transpose(0, 3, 1, 2))
        ys.append(np.asarray(part["labels"], dtype=np.int64))
        ts.append(np.full(len(images), (year - 1930) * DAY_S * 1000, dtype=np.int64))
    path = write_npz(out / "yearbook.npz", np.concatenate(xs), np.concatenate(ys), np.concatenate(ts))
    return Prepared([path], sum(map(len, ys)), "--format npz --timestamps field --t-key t")


def _text(source: Path, out: Path, split: str, name: str, first_year: int) -> Prepared:
    texts, labels, times = [], [], []
    for year, part in _years(load_pickle(source), source, split, ("title", "category")):
        texts += [str(t) for t in part["title"]]
        labels += [int(c) for c in part["category"]]
        times += [day_of_1970(year - first_year + 1)] * len(part["title"])
    path = write_text_rows(out / f"{name}.tsv", texts, labels, times)
    return Prepared([path], len(texts), TEXT_REPLAY)


def prepare_arxiv(source: Path, out: Path, split: str = "train", **_) -> Prepared:
    """arxiv.pkl -> arxiv.tsv: each paper's title and category, dated by year (2007 on 1970-01-01)."""
    return _text(source, out, split, "arxiv", 2007)


def prepare_huffpost(source: Path, out: Path, split: str = "train", **_) -> Prepared:
    """huffpost.pkl -> huffpost.tsv: each headline and category, dated by year (2012 on 1970-01-01)."""
    return _text(source, out, split, "huffpost", 2012)


def prepare_fmow(source: Path, out: Path, split: str = "train", daily: bool = False, **_) -> Prepared:
    """A folder with Wild-Time's fmow.pkl and WILDS' fmow_v1.1 (images/rgb_img_<i>.png, rgb_metadata.csv) ->
    fmow/<i>.png + <i>.label, dated by time step, or with `daily` by the metadata's capture time."""
    images = source / "fmow_v1.1" / "images"
    captured = _capture_times(source / "fmow_v1.1" / "rgb_metadata.csv") if daily else None
    folder = out / "fmow"
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    steps = _years(load_pickle(source / "fmow.pkl"), source / "fmow.pkl", split, ("image_idxs", "labels"))
    missing = [i for _, part in steps for i in part["image_idxs"] if not (images / f"rgb_img_{i}.png").is_file()]
    if missing:
        raise PrepareError(images, f"{len(missing)} images missing, e.g. rgb_img_{missing[0]}.png")
    for step, part in steps:
        for index, label in zip(part["image_idxs"], part["labels"], strict=True):
            t = captured[int(index)] if captured is not None else day_of_1970(step + 1)
            write_labelled_file(folder, f"{int(index)}.png", (images / f"rgb_img_{index}.png").read_bytes(), label, t)
            count += 1
    return Prepared([folder], count, "--format images --timestamps mtime")


def _capture_times(path: Path) -> list[int]:
    """Each image's capture time (ms), the metadata's column 12, as Modyn's `--daily` reads it."""
    if not path.is_file():
        raise PrepareError(path, "does not exist (daily times come from WILDS' rgb_metadata.csv)")
    times = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if line == 1:
                continue
            try:
                stamp = row[11].replace("Z", "+00:00")
                times.append(int(datetime.fromisoformat(stamp).timestamp() * 1000))
            except (IndexError, ValueError):
                raise PrepareError(path, f"line {line}: no capture time in column 12") from None
    return times
