"""Each Modyn benchmark format, written small by the test, prepared and read back the way replay and the trainer
read it: the same samples, labels and Modyn's event times."""

import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from modyn_stream.datasets.prepare import PREPARERS, PrepareError
from modyn_stream.replay.sources import read_binary, read_csv, read_image_folder, read_npz
from modyn_stream.training.decoders import build_decoder
from tests.kafka.test_local_integration import cli

DAY_MS = 86_400_000
RNG = np.random.default_rng(0)


def wildtime(tmp_path, name: str, years: dict) -> "os.PathLike":
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(pickle.dumps(years))
    return path


def test_yearbook_becomes_chw_float32_payloads_dated_by_year(tmp_path):
    images = {y: RNG.random((n, 32, 32, 3), dtype=np.float32) for y, n in ((1930, 3), (1931, 2))}
    years = {y: {0: {"images": list(imgs), "labels": [i % 2 for i in range(len(imgs))]},
                 1: {"images": [], "labels": []}, 2: {"images": list(imgs), "labels": [0] * len(imgs)}}
             for y, imgs in images.items()}  # fmt: skip
    prepared = PREPARERS["yearbook"](wildtime(tmp_path, "yearbook", years), tmp_path / "out")
    source = read_npz(prepared.outputs[0], t_key="t")
    assert len(source) == prepared.samples == 5 and source.labels.tolist() == [0, 1, 0, 0, 1]
    assert source.timestamps_ms.tolist() == [0, 0, 0, DAY_MS, DAY_MS], "Modyn's fake days since 1930"
    decode = build_decoder("raw", {"dtype": "float32", "shape": [3, 32, 32]})
    assert torch.equal(decode([source.payloads[3]])[0], torch.from_numpy(images[1931][0].transpose(2, 0, 1)))
    assert "--format npz --timestamps field --t-key t" in prepared.replay_command("yearbook")


@pytest.mark.parametrize(("name", "first"), [("arxiv", 2007), ("huffpost", 2012)])
def test_text_datasets_become_rows_of_text_and_label_dated_as_modyn_dates_them(tmp_path, name, first):
    years = {first: {0: {"title": ["a title\twith a tab", "line\nbreak"], "category": [3, 1]}},
             first + 2: {0: {"title": ["later"], "category": [7]}}}  # fmt: skip
    prepared = PREPARERS[name](wildtime(tmp_path, name, years), tmp_path / "out")
    source = read_csv(prepared.outputs[0], "label", "\t", True, "timestamp")
    assert [p.decode() for p in source.payloads] == ["a title with a tab", "line break", "later"]
    assert source.labels.tolist() == [3, 1, 7]
    assert source.timestamps_ms.tolist() == [0, 0, 2 * DAY_MS], f"{first} on 1970-01-01, then a day per year"
    ids = build_decoder("text", {"max_length": 8})([source.payloads[2]])[0]
    assert bytes((ids[ids > 0] - 1).tolist()).decode() == "later", "the trainer's text decoder reads the row"


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_fmow_copies_the_images_of_each_time_step_with_their_labels_and_times(tmp_path):
    root = tmp_path / "fmow"
    (root / "fmow_v1.1" / "images").mkdir(parents=True)
    for i in range(4):
        (root / "fmow_v1.1" / "images" / f"rgb_img_{i}.png").write_bytes(png(np.full((4, 4, 3), i, np.uint8)))
    metadata = ["split,a,b,c,d,e,f,g,h,i,j,timestamp"] + [
        f"train,,,,,,,,,,,2016-0{i + 1}-02T03:04:05Z" for i in range(4)
    ]
    (root / "fmow_v1.1" / "rgb_metadata.csv").write_text("\n".join(metadata))
    (root / "fmow.pkl").write_bytes(pickle.dumps({0: {0: {"image_idxs": [2, 0], "labels": [5, 6]}},
                                                  1: {0: {"image_idxs": [3], "labels": [7]}}}))  # fmt: skip
    prepared = PREPARERS["fmow"](root, tmp_path / "out")
    source = read_image_folder(prepared.outputs[0])
    assert [n for n in source.names] == ["0.png", "2.png", "3.png"] and source.labels.tolist() == [6, 5, 7]
    assert source.file_mtimes_ms.tolist() == [0, 0, DAY_MS], "time step s on 1970-01-(s + 1)"
    daily = PREPARERS["fmow"](root, tmp_path / "daily", daily=True)
    assert read_image_folder(daily.outputs[0]).file_mtimes_ms[2] == 1459566245000, "2016-04-02T03:04:05Z"
    (root / "fmow_v1.1" / "images" / "rgb_img_3.png").unlink()
    with pytest.raises(PrepareError, match=r"1 images missing, e\.g\. rgb_img_3\.png"):
        PREPARERS["fmow"](root, tmp_path / "again")


def test_mnist_idx_becomes_png_and_label_files_one_second_apart(tmp_path):
    pixels = RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    images, labels = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    images.write_bytes(struct.pack(">IIII", 0x803, 3, 28, 28) + pixels.tobytes())
    labels.write_bytes(struct.pack(">II", 0x801, 3) + bytes([4, 0, 9]))
    prepared = PREPARERS["mnist"](images, tmp_path / "out")
    source = read_image_folder(prepared.outputs[0])
    order = np.argsort(source.file_mtimes_ms)
    assert source.file_mtimes_ms[order].tolist() == [0, 1000, 2000] and source.labels[order].tolist() == [4, 0, 9]
    decoded = build_decoder("image", {"mode": "L"})([source.payloads[int(order[1])]])
    assert torch.equal((decoded[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(pixels[1]))


def test_cglm_keeps_labelled_classes_with_enough_samples_numbered_by_first_appearance(tmp_path):
    rows = ["id,landmark_id,supercategory_label,hierarchical_label_label,upload_date"]
    for i, landmark in enumerate(["9", "9", "4", "", "4", "1"]):
        ident = f"abc{i:013x}"
        folder = tmp_path / "images" / ident[0] / ident[1] / ident[2]
        folder.mkdir(parents=True, exist_ok=True)
        if i != 4:
            (folder / f"{ident}.jpg").write_bytes(b"jpeg bytes %d" % i)
        rows.append(f"{ident},{landmark},,,{1_500_000_000 + i}")
    (tmp_path / "meta.csv").write_text("\n".join(rows))
    prepared = PREPARERS["cglm"](tmp_path / "images", tmp_path / "out", metadata=tmp_path / "meta.csv",
                                 min_samples_per_class=2)  # fmt: skip
    source = read_image_folder(prepared.outputs[0])
    assert prepared.samples == 3, "unlabelled row 3 and the single-sample class 1 dropped, row 4's image missing"
    assert source.labels.tolist() == [0, 0, 1], "9 first seen: class 0; 4: class 1"
    assert source.file_mtimes_ms.tolist() == [1_500_000_000_000, 1_500_000_001_000, 1_500_000_002_000]
    assert len(prepared.notes) == 1 and "1 images named in the metadata are not under" in prepared.notes[0]


def test_cloc_images_get_their_labels_and_times_from_the_order_files(tmp_path):
    orders = tmp_path / "CLOC_torchsave_order_files"
    orders.mkdir()
    places = ["data/0/a.jpg", "data/1/b.jpg"]
    for place in places:
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / place).write_bytes(place.encode())
    for kind, values in (("store_loc", [p + "\n" for p in places]), ("labels", [3, 7]), ("time", [0, 86_400])):
        torch.save(values, orders / f"train_{kind}.torchSave")
    prepared = PREPARERS["cloc"](tmp_path, tmp_path / "out")
    source = read_image_folder(prepared.outputs[0])
    assert list(source.names) == places and source.labels.tolist() == [3, 7]
    assert source.file_mtimes_ms.tolist() == [1072911600000, 1072911600000 + DAY_MS], "seconds since 2004"
    with pytest.raises(PrepareError, match=r"cross_val_store_loc\.torchSave: does not exist"):
        PREPARERS["cloc"](tmp_path, tmp_path / "all", split="all")
    (tmp_path / places[1]).unlink()
    with pytest.raises(PrepareError, match=r"1 images of train missing, e\.g\. data/1/b\.jpg"):
        PREPARERS["cloc"](tmp_path, tmp_path / "again")


def test_criteo_days_become_modyn_s_160_byte_records_with_frequency_thresholded_ids(tmp_path):
    def row(label, numbers, categories):
        return "\t".join([str(label), *numbers, *categories])

    cats = ["aa"] + [""] * 25
    (tmp_path / "day_0").write_text(
        "\n".join([row(1, ["3", ""] + ["0"] * 11, cats), row(0, ["-2"] + ["1"] * 12, ["bb"] + ["x"] * 25)]) + "\n"
    )
    (tmp_path / "day_1").write_text(row(1, ["0"] * 13, ["aa"] + ["x"] * 25) + "\n")
    prepared = PREPARERS["criteo"](tmp_path, tmp_path / "out", frequency_threshold=2)
    source = read_binary(prepared.outputs, 160, 4, "little")
    assert source.labels.tolist() == [1, 0, 1]
    assert source.file_mtimes_ms.tolist() == [1000, 1000, DAY_MS + 1000], "day d at d days + 1 s"
    decoded = build_decoder("criteo", {})(list(source.payloads)).numpy()
    assert decoded[0, 0] == pytest.approx(np.log1p(3)) and decoded[0, 1] == 0 and decoded[1, 0] == 0
    assert decoded[:, 13].tolist() == [1, 2, 1], "aa seen twice: id 1; bb once: the shared rare id 2"
    assert decoded[:, 14].tolist() == [0, 1, 1], "empty: 0"


def test_a_pickle_that_asks_for_code_is_refused_and_nothing_runs(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "yearbook.pkl"
    path.write_bytes(pickle.dumps({1930: {0: Exploit()}}))
    with pytest.raises(PrepareError, match=r"yearbook.pkl: not a readable pickle: it asks for posix.system"):
        PREPARERS["yearbook"](path, tmp_path / "out")
    assert not (tmp_path / "pwned").exists()


def test_the_command_prepares_and_prints_the_replay_command_or_one_line(tmp_path):
    years = {2012: {0: {"title": ["x"], "category": [1]}}}
    done = cli("datasets", "prepare", "huffpost", str(wildtime(tmp_path, "huffpost", years)), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "wrote 1 samples of huffpost" in done.stdout and "modyn-stream replay" in done.stdout
    wrong = cli("datasets", "prepare", "yearbook", str(wildtime(tmp_path, "bad", [1, 2])), str(tmp_path / "o"))
    assert wrong.returncode != 0 and "bad.pkl: not a Wild-Time pickle" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
