"""Every input format reads what was written, and malformed input fails with file and position."""

import os
import struct

import numpy as np
import pytest

from modyn_stream.replay.exceptions import ReplayInputError
from modyn_stream.replay.publisher import TimestampPolicy, sample_keys
from modyn_stream.replay.sources import read_binary, read_csv, read_idx, read_image_folder, read_npz


def write_idx(path, array: np.ndarray, type_code: int = 0x08) -> None:
    path.write_bytes(
        bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    )


def test_npz_rows_labels_and_times(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([1, 2, 3, 4]), t=np.array([40, 30, 20, 10]))
    source = read_npz(tmp_path / "d.npz", t_key="t")
    assert len(source) == 4 and source.payloads[2] == x[2].tobytes()
    assert source.labels.tolist() == [1, 2, 3, 4] and source.timestamps_ms.tolist() == [40, 30, 20, 10]
    assert source.content_type == "application/x-ndarray;dtype=<f4;shape=3,2"


@pytest.mark.parametrize(
    ("arrays", "options", "message"),
    [
        ({"x": np.zeros((3, 2))}, {}, r"array 'y': missing \(--y-key\)"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(2, dtype=int)}, {}, r"array 'y': shape \(2,\) does not match 3"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(3)}, {}, "array 'y': must hold integers"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0, dtype=int)}, {}, "array 'x': has no samples"),
    ],
)
def test_npz_problems_name_the_array(tmp_path, arrays, options, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ReplayInputError, match=message):
        read_npz(tmp_path / "d.npz", **options)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ReplayInputError, match=r"nope.npz: file: does not exist"):
        read_npz(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ReplayInputError, match=r"bad.npz: archive: not an .npz archive") as raised:
        read_npz(tmp_path / "bad.npz")
    assert "pickle" not in str(raised.value)  # numpy's advice to load it unsafely is not passed on
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    with pytest.raises(ReplayInputError, match=r"objects.npz: array 'x': holds Python objects, which are never"):
        read_npz(tmp_path / "objects.npz")


def test_idx_images_and_labels(tmp_path):
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    write_idx(tmp_path / "img.idx", images)
    write_idx(tmp_path / "lab.idx", np.array([7, 3], dtype=np.uint8))
    source = read_idx(tmp_path / "img.idx", tmp_path / "lab.idx")
    assert source.payloads[1] == images[1].tobytes() and source.labels.tolist() == [7, 3]
    assert source.content_type == "application/x-ndarray;dtype=|u1;shape=4,4"


def test_idx_problems_give_the_byte_position(tmp_path):
    images = np.zeros((2, 4, 4), dtype=np.uint8)
    write_idx(tmp_path / "img.idx", images)
    data = (tmp_path / "img.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(data[:-5])
    with pytest.raises(ReplayInputError, match=r"short.idx: byte 16: dimensions \(2, 4, 4\) need 32 bytes"):
        read_idx(tmp_path / "short.idx", None)
    (tmp_path / "magic.idx").write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(ReplayInputError, match=r"magic.idx: byte 0: not an IDX file"):
        read_idx(tmp_path / "magic.idx", None)
    write_idx(tmp_path / "lab.idx", np.array([1, 2, 3], dtype=np.uint8))
    with pytest.raises(ReplayInputError, match=r"lab.idx: header: \(3,\) labels for 2 images"):
        read_idx(tmp_path / "img.idx", tmp_path / "lab.idx")


def test_csv_with_header_label_and_time_columns(tmp_path):
    (tmp_path / "d.csv").write_text("a;label;ts;b\n1.5;0;100;x\n2.5;1;50;y\n")
    source = read_csv(tmp_path / "d.csv", "label", ";", True, "ts")
    assert [bytes(p) for p in source.payloads] == [b"1.5;x", b"2.5;y"]
    assert source.labels.tolist() == [0, 1] and source.timestamps_ms.tolist() == [100, 50]


def test_csv_without_header_uses_indices(tmp_path):
    (tmp_path / "d.csv").write_text("3,1,2\n6,0,5\n")
    source = read_csv(tmp_path / "d.csv", "1", ",", False)
    assert list(source.payloads) == [b"3,2", b"6,5"] and source.labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,label\n1,0\n2\n", "line 3: 1 fields, expected 2"),
        ("a,label\n1,0\n2,x\n", "line 3: label 'x' is not an integer"),
        ("a,b\n1,0\n", r"header: no column 'label' \(--label-column\)"),
        ("a,label\n", "no data rows"),
        ("", "line 1: empty file"),
    ],
)
def test_csv_problems_name_the_line(tmp_path, text, message):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(ReplayInputError, match=message):
        read_csv(tmp_path / "d.csv", "label")


def test_binary_records_label_first(tmp_path):
    records = b"".join(struct.pack("<I", label) + bytes([label % 256] * 4) for label in (5, 300))
    (tmp_path / "r.bin").write_bytes(records)
    source = read_binary([tmp_path / "r.bin"], record_size=8, label_size=4, byteorder="little")
    assert source.labels.tolist() == [5, 300] and source.payloads[1] == bytes([44] * 4)
    big = read_binary([tmp_path / "r.bin"], record_size=8, label_size=4, byteorder="big")
    assert big.labels.tolist()[0] == 5 << 24


def test_binary_trailing_bytes_are_an_error_at_their_offset(tmp_path):
    (tmp_path / "r.bin").write_bytes(bytes(8 * 3 + 5))
    with pytest.raises(ReplayInputError, match=r"r.bin: byte 24: 5 trailing bytes after 3 records"):
        read_binary([tmp_path / "r.bin"], record_size=8, label_size=4)
    with pytest.raises(ReplayInputError, match="need 0 < --label-size < --record-size"):
        read_binary([tmp_path / "r.bin"], record_size=4, label_size=4)


def test_image_folder_with_label_files_and_mtimes(tmp_path):
    for i, name in enumerate(["b.png", "a.jpg", "sub/c.png"]):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(f"image {i}".encode())
        path.with_suffix(".label").write_text(f"{i}\n")
        os.utime(path, (1000 + i, 1000 + i))
    source = read_image_folder(tmp_path)
    assert list(source.names) == ["a.jpg", "b.png", "sub/c.png"] and sample_keys(source) == list(source.names)
    assert source.labels.tolist() == [1, 0, 2] and source.payloads[0] == b"image 1"
    assert list(source.content_type) == ["image/jpeg", "image/png", "image/png"]
    assert TimestampPolicy("mtime").assign(source).tolist() == [1_001_000, 1_000_000, 1_002_000]
    (tmp_path / "sub/c.label").write_text("two")
    with pytest.raises(ReplayInputError, match=r"c.label: line 1: label 'two' is not an integer"):
        read_image_folder(tmp_path)
    (tmp_path / "sub/c.label").unlink()
    with pytest.raises(ReplayInputError, match=r"c.label: file: missing"):
        read_image_folder(tmp_path)


def test_timestamp_policies():
    from modyn_stream.replay.sources import SampleSource

    source = SampleSource([b"a"] * 5, None, None, np.zeros(5, dtype=np.int64), "x")
    assert TimestampPolicy("increasing", start_ms=100, step_ms=10).assign(source).tolist() == [100, 110, 120, 130, 140]
    first = TimestampPolicy("random", start_ms=0, step_ms=1000, seed=4).assign(source)
    assert first.tolist() == TimestampPolicy("random", start_ms=0, step_ms=1000, seed=4).assign(source).tolist()
    assert ((first >= 0) & (first < 5000)).all()
    with pytest.raises(ReplayInputError, match="--timestamps field needs a time column"):
        TimestampPolicy("field").assign(source)
