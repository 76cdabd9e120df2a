"""Image datasets as Modyn's scripts lay them out: one image file and one `.label` file per sample, both modified
at the sample's event time. MNIST (`benchmark/mnist`) from its IDX files, sample i at i seconds (Modyn's
INCREASING; its default, random times, is not reproducible); CGLM (`benchmark/cglm`) from Google Landmarks v2's
image tree and the CGLM metadata CSV, at each image's upload time; CLOC (`benchmark/cloc`) from its images and
order files, at each image's time."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np

from modyn_stream.datasets.prepare.base import Prepared, PrepareError, write_labelled_file
from modyn_stream.replay.exceptions import ReplayInputError
from modyn_stream.replay.sources import read_idx

CGLM_LABELS = {"landmark": "landmark_id", "supercategory": "supercategory_label",
               "hierarchical": "hierarchical_label_label"}  # fmt: skip


def prepare_mnist(source: Path, out: Path, labels: Path | None = None, **_) -> Prepared:
    """train-images-idx3-ubyte (and its labels file, default: beside it) -> mnist/<i>.png + <i>.label."""
    from PIL import Image

    labels = labels or source.with_name(source.name.replace("images-idx3", "labels-idx1"))
    try:
        data = read_idx(source, labels)
    except ReplayInputError as exc:
        raise PrepareError(source, str(exc)) from None
    folder = out / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(data)):
        png = io.BytesIO()
        Image.fromarray(np.frombuffer(data.payloads[i], dtype=np.uint8).reshape(28, 28)).save(png, format="PNG")
        write_labelled_file(folder, f"{i}.png", png.getvalue(), int(data.labels[i]), i * 1000)
    return Prepared([folder], len(data), "--format images --timestamps mtime")


def prepare_cglm(source: Path, out: Path, metadata: Path | None = None, label_type: str = "landmark",
                 min_samples_per_class: int = 25, **_) -> Prepared:  # fmt: skip
    """Google Landmarks v2 images (<a>/<b>/<c>/<id>.jpg under `source`) and the CGLM metadata CSV -> cglm/<id>.jpg +
    <id>.label: samples without a label dropped, classes under `min_samples_per_class` dropped, the rest numbered
    in order of first appearance, as Modyn's script does."""
    metadata = metadata or source / "cglm_labels_timestamps_clean.csv"
    if not metadata.is_file():
        raise PrepareError(metadata, "does not exist (the CGLM metadata CSV; pass --metadata)")
    column = CGLM_LABELS[label_type]
    with open(metadata, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for needed in ("id", column, "upload_date"):
        if rows and needed not in rows[0]:
            raise PrepareError(metadata, f"no column {needed!r}; columns: {', '.join(rows[0])}")
    rows = [r for r in rows if r[column] not in ("", None)]
    counts = Counter(r[column] for r in rows)
    rows = [r for r in rows if counts[r[column]] >= min_samples_per_class]
    numbering: dict[str, int] = {}
    folder = out / "cglm"
    folder.mkdir(parents=True, exist_ok=True)
    written, missing = 0, []
    for row in rows:
        label = numbering.setdefault(row[column], len(numbering))
        ident = row["id"]
        image = source / ident[0] / ident[1] / ident[2] / f"{ident}.jpg"
        if not image.is_file():
            missing.append(ident)
            continue
        try:
            t_ms = int(float(row["upload_date"]) * 1000)
        except ValueError:
            raise PrepareError(metadata, f"row of {ident}: upload_date {row['upload_date']!r} is not a time") from None
        write_labelled_file(folder, f"{ident}.jpg", image.read_bytes(), label, t_ms)
        written += 1
    notes = [f"{len(missing)} images named in the metadata are not under {source} (e.g. {missing[0]}.jpg): left "
             "out, as Modyn's script does"] if missing else []  # fmt: skip
    return Prepared([folder], written, "--format images --timestamps mtime", notes)


CLOC_EPOCH_S = 1072911600  # CLOC's times count seconds from 2004-01-01 (Modyn's script adds this)


def prepare_cloc(source: Path, out: Path, split: str = "train", **_) -> Prepared:
    """CLOC's unzipped images under `source` and its CLOC_torchsave_order_files (store locations, labels, times:
    torch-saved lists, loaded as data only) -> cloc/<store location> + .label, at each image's time; `split`
    all adds the cross-validation part, as Modyn's `--all`."""
    import torch

    from modyn_stream.training.model_store import LOAD_ERRORS

    orders = source / "CLOC_torchsave_order_files"
    parts = ["train"] + (["cross_val"] if split == "all" else [])
    folder, written = out / "cloc", 0
    for part in parts:
        columns = []
        for kind in ("store_loc", "labels", "time"):
            path = orders / f"{part}_{kind}.torchSave"
            if not path.is_file():
                raise PrepareError(path, "does not exist (CLOC's order files; unzip CLOC_torchsave_order_files)")
            try:
                columns.append(list(torch.load(path, map_location="cpu", weights_only=True)))
            except (*LOAD_ERRORS, TypeError) as exc:
                raise PrepareError(path, f"not a readable torch-saved list: {exc}") from None
        if len({len(c) for c in columns}) != 1:
            raise PrepareError(orders, f"{part}: store locations, labels and times differ in length")
        places = [str(p).strip() for p in columns[0]]
        missing = [p for p in places if not (source / p).is_file()]
        if missing:
            raise PrepareError(source, f"{len(missing)} images of {part} missing, e.g. {missing[0]}")
        for place, label, seconds in zip(places, columns[1], columns[2], strict=True):
            target = folder / place
            target.parent.mkdir(parents=True, exist_ok=True)
            t_ms = int((float(seconds) + CLOC_EPOCH_S) * 1000)
            write_labelled_file(target.parent, target.name, (source / place).read_bytes(), int(label), t_ms)
            written += 1
    return Prepared([folder], written, "--format images --timestamps mtime")
