"""The current window read chunk by chunk: the next decision reads only its new chunk, and a service with nothing
kept (after a restart) assembles exactly the same vectors and chunks."""

import numpy as np

from modyn_stream.triggers.drift.current_window import CurrentWindows
from modyn_stream.triggers.policies import Boundary
from tests.triggers.drift.test_trigger import DRIFT, Index, Vectors, config_with

WINDOWS = {"id": "AmountWindowingStrategy", "amount_ref": 4, "amount_cur": 10}
CONFIG = config_with({**DRIFT, "evaluation_interval_data_points": 4, "windowing_strategy": WINDOWS})


class Unreadable(Vectors):
    """Vectors whose samples in `bad` cannot be read (left out, as WindowData leaves them)."""

    bad = {"k006", "k013"}

    def vectors(self, pid, config, rows, model_index):
        array, kept = super().vectors(pid, config, rows, model_index)
        kept = np.array([key not in self.bad for key in rows["key"].to_pylist()])
        return array[kept], kept


def test_each_decision_reads_only_its_new_chunk_and_a_restart_assembles_the_same_window():
    index, vectors = Index(40), Unreadable([float(i) for i in range(40)], tagged=True)
    warm = CurrentWindows(vectors)
    for end in range(12, 41, 4):  # a decision every 4 samples, windows of the last 10
        rows = index.window(Boundary(end, f"k{end:03d}"), last=10)
        vectors.made.clear()
        window = warm.window("p", CONFIG, index, rows, None)
        expected = [key for key in rows["key"].to_pylist() if key not in Unreadable.bad]
        assert Vectors.keys(window.vectors) == expected
        assert window.skipped == tuple(key for key in rows["key"].to_pylist() if key in Unreadable.bad)
        if end > 12:
            assert vectors.made == [[f"k{i:03d}" for i in range(end - 3, end + 1)]], "the new chunk alone"
        vectors.made.clear()
        cold = CurrentWindows(vectors).window("p", CONFIG, index, rows, None)
        oldest = end - 8  # the last sample of the oldest chunk: 2 of its 4 samples are in the window, all are read
        assert vectors.made[0] == [f"k{i:03d}" for i in range(oldest - 3, oldest + 1)]
        assert [(i, v.tolist(), None if r is None else r.tolist()) for i, v, r in cold.chunks] == [
            (i, v.tolist(), None if r is None else r.tolist()) for i, v, r in window.chunks
        ]
        assert np.array_equal(cold.vectors, window.vectors) and cold.skipped == window.skipped


def test_a_new_model_reads_the_window_again():
    index, vectors = Index(20), Vectors([float(i) for i in range(20)])
    windows, rows = CurrentWindows(vectors), index.window(Boundary(12, "k012"), last=8)
    windows.window("p", CONFIG, index, rows, 0)
    vectors.made.clear()
    windows.window("p", CONFIG, index, rows, 0)
    assert vectors.made == [], "the same model: all kept"
    windows.window("p", CONFIG, index, rows, 1)
    assert sorted(key for keys in vectors.made for key in keys) == rows["key"].to_pylist()


def test_a_window_shorter_than_a_chunk_is_read_alone():
    index, vectors = Index(20), Vectors([float(i) for i in range(20)])
    rows = index.window(Boundary(12, "k012"), last=3)
    window = CurrentWindows(vectors).window("p", CONFIG, index, rows, None)
    assert window.chunks is None and vectors.made == [["k010", "k011", "k012"]]
