"""What every preparer shares: its result, its error, Modyn's timestamps and the writers of replay's formats."""

from __future__ import annotations

import csv
import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modyn_stream.exceptions import ModynStreamError

DAY_S = 24 * 60 * 60


class PrepareError(ModynStreamError):
    """Input a preparer cannot read: which file, where, and why."""

    def __init__(self, where: Path | str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")


@dataclass
class Prepared:
    """What a preparer wrote, and the replay command that publishes it."""

    outputs: list[Path]
    samples: int
    replay_options: str
    notes: list[str] = field(default_factory=list)

    def replay_command(self, dataset: str) -> str:
        files = " ".join(str(p) for p in self.outputs)
        return f"modyn-stream replay {files} --dataset {dataset} {self.replay_options}"


def day_of_1970(day: int) -> int:
    """Modyn's `create_timestamp(year=1970, month=1, day=d)`, in ms: a yearly dataset's year as a day."""
    return (day - 1) * DAY_S * 1000


class _DataOnly(pickle.Unpickler):
    """Unpickles containers, strings, numbers and NumPy arrays; anything else (code) is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    }  # fmt: skip

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not data (only containers and "
                                         "NumPy arrays are loaded)")  # fmt: skip
        return super().find_class(module, name)


def load_pickle(path: Path):
    if not path.is_file():
        raise PrepareError(path, "does not exist")
    try:
        with open(path, "rb") as handle:
            return _DataOnly(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise PrepareError(path, f"not a readable pickle: {exc}") from None


def write_npz(path: Path, x: np.ndarray, y: np.ndarray, t_ms: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y.astype(np.int64), t=t_ms.astype(np.int64))
    return path


def write_text_rows(path: Path, texts: list[str], labels: list[int], t_ms: list[int]) -> Path:
    """text, label, timestamp (ms), tab-separated with a header; tabs and line breaks in a text become spaces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["text", "label", "timestamp"])
    for text, label, t in zip(texts, labels, t_ms, strict=True):
        writer.writerow([" ".join(str(text).split()), int(label), int(t)])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


TEXT_REPLAY = "--format csv --separator $'\\t' --label-column label --timestamp-column timestamp --timestamps field"


def write_labelled_file(folder: Path, name: str, payload: bytes, label: int, t_ms: int) -> None:
    """`name` and `name`'s stem + `.label` in `folder`, both modified at `t_ms` (Modyn's image layout)."""
    image, label_file = folder / name, (folder / name).with_suffix(".label")
    image.write_bytes(payload)
    label_file.write_text(str(int(label)), encoding="utf-8")
    for file in (image, label_file):
        os.utime(file, ns=(t_ms * 1_000_000, t_ms * 1_000_000))
