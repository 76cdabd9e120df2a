"""The run's replay process against the real broker: what it publishes, its errors, Ctrl-C and kills."""

import gc
import multiprocessing
import os
import signal
import threading
import time
import weakref
from pathlib import Path

import pytest

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.orchestration.replay_process import ReplayProcess, replay_source
from modyn_stream.pipeline.config import ReplaySection
from tests.replay.test_replay_integration import read_topic

pytestmark = pytest.mark.integration

DIGITS = ReplaySection(generator="digits-drift", samples=3000, seed=1, partitions=3)


def wait_done(replayer: ReplayProcess, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not replayer.poll(timeout_s=0.1):
        assert time.monotonic() < deadline, "the replay did not finish"


def published_keys(settings, dataset: str, partitions: int) -> list[str]:
    events = read_topic(settings, TopicNames(settings.namespace).samples(dataset), partitions)
    assert all(items[-1].name == "EndOfStream" for items in events.values()), "every partition ends with a marker"
    return sorted(e.record["key"] for items in events.values() for e in items if e.name == "SampleEvent")


def test_the_child_publishes_the_generated_stream_once_and_reports_progress(kafka_settings):
    replayer = ReplayProcess(kafka_settings, "digits", DIGITS, Path("."))
    try:
        wait_done(replayer)
    finally:
        replayer.close()
    assert replayer.result.published == replayer.replayed == 3000
    source = replay_source(DIGITS, Path("."))
    assert published_keys(kafka_settings, "digits", 3) == [f"{i:010d}" for i in range(len(source))]


def test_a_missing_file_is_one_line_naming_it(kafka_settings, tmp_path):
    replayer = ReplayProcess(kafka_settings, "d", ReplaySection(path="nowhere.npz"), tmp_path)
    with pytest.raises(ModynStreamError) as failed:
        wait_done(replayer)
    replayer.close()
    assert "nowhere.npz" in str(failed.value) and "\n" not in str(failed.value)


def test_ctrl_c_lets_the_replay_finish(kafka_settings):
    section = DIGITS.model_copy(update={"samples": 20_000})
    replayer = ReplayProcess(kafka_settings, "digits", section, Path("."))
    try:
        deadline = time.monotonic() + 60
        while replayer.replayed == 0 and not replayer.poll(timeout_s=0.05):  # the child is under way
            assert time.monotonic() < deadline
        os.kill(replayer._child.pid, signal.SIGINT)
        wait_done(replayer)
    finally:
        replayer.close()
    assert replayer.result.published == 20_000
    assert len(published_keys(kafka_settings, "digits", 3)) == 20_000


def test_a_killed_child_fails_the_replay_and_close_stops_a_running_one(kafka_settings):
    section = DIGITS.model_copy(update={"samples": 20_000})
    replayer = ReplayProcess(kafka_settings, "digits", section, Path("."))
    os.kill(replayer._child.pid, signal.SIGKILL)
    with pytest.raises(ModynStreamError, match=r"exit code -9 before it was done"):
        wait_done(replayer)
    replayer.close()

    running = ReplayProcess(kafka_settings.model_copy(update={"namespace": kafka_settings.namespace + "b"}),
                            "digits", section, Path("."))  # fmt: skip
    running.close()
    assert not running._child.is_alive() and running._child.exitcode == -signal.SIGKILL


def test_a_daemonic_process_replays_in_a_thread(kafka_settings, monkeypatch):
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)  # as in a multiprocessing.Pool worker
    replayer = ReplayProcess(kafka_settings, "digits", DIGITS, Path("."))
    assert not isinstance(replayer._child, multiprocessing.process.BaseProcess)
    try:
        wait_done(replayer)
    finally:
        replayer.close()
    assert len(published_keys(kafka_settings, "digits", 3)) == 3000


def test_a_child_that_sends_its_result_and_exits_while_polled_is_done_not_failed(kafka_settings):
    """The child may finish between the pipe's check and the question whether it still runs."""
    replayer = ReplayProcess(kafka_settings, "digits", DIGITS, Path("."))
    child, news = replayer._child, replayer._news
    child.join()  # it has sent everything and ended

    class Late:  # its news shows up only once someone has asked whether it runs: the race, made certain
        asked = False

        def is_alive(self):
            Late.asked = True
            return child.is_alive()

        def __getattr__(self, name):
            return getattr(child, name)

    class Pipe:
        def poll(self, timeout_s):
            return Late.asked and news.poll(timeout_s)

        def __getattr__(self, name):
            return getattr(news, name)

    replayer._child, replayer._news = Late(), Pipe()
    try:
        assert replayer.poll() and replayer.result.published == 3000
    finally:
        replayer.close()


def _note_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


_COLLECT_AFTER_FORK = []  # set while the test below runs: fork hooks cannot be removed


def _collect_in_child() -> None:
    if _COLLECT_AFTER_FORK:
        gc.collect()


os.register_at_fork(after_in_child=_collect_in_child)


def test_garbage_left_in_the_parent_is_not_collected_in_the_forked_child(kafka_settings, tmp_path):
    """A closed chDB client that the parent had not collected yet deadlocked a child that collected it
    (its finalizer waits on the parent's engine threads): the child must run no inherited finalizer."""

    class Node:
        pass

    marker = tmp_path / "finalized-by"
    gc.disable()  # the cycle below is still garbage, uncollected, at the fork; the child collects at once
    _COLLECT_AFTER_FORK.append(True)
    try:
        node = Node()
        node.itself = node
        weakref.finalize(node, _note_pid, str(marker))
        del node
        replayer = ReplayProcess(kafka_settings, "digits", DIGITS, Path("."))
    finally:
        _COLLECT_AFTER_FORK.clear()
        gc.enable()
    assert type(replayer._child).__name__ == "ForkProcess", "no other thread runs here: the child is forked"
    try:
        wait_done(replayer)
    finally:
        replayer.close()
    gc.collect()
    assert marker.read_text() == str(os.getpid()), "finalized in the child"


def test_with_another_thread_running_the_child_is_spawned_not_forked(kafka_settings):
    """A fork copies locks that other threads may hold at that instant; with any other thread, spawn."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        replayer = ReplayProcess(kafka_settings, "digits", DIGITS, Path("."))
        assert type(replayer._child).__name__ == "SpawnProcess"
        try:
            wait_done(replayer)
        finally:
            replayer.close()
    finally:
        stop.set()
    assert replayer.result.published == 3000 and len(published_keys(kafka_settings, "digits", 3)) == 3000
