"""The run's replay in a process of its own: generating and publishing the stream hold no GIL the run needs.

In one process the replay's Python (generating the data, encoding every sample) shares the interpreter
lock with the run's setup and with torch's lazy import of `torch._dynamo`, so each waits for the others
on a two-core machine. On Linux the child is forked: it starts in milliseconds with every module
already imported. It is forked before the run opens a client or starts a thread of its own, and only
where no other Python thread runs (one holding a lock at the fork would leave it held in the child);
elsewhere it is spawned. The child ignores Ctrl-C, as the replay in the run's own thread did:
the run stops after the replay, or kills the child when it fails or is killed itself. A daemonic
process (a multiprocessing.Pool worker) may not have children: there the replay runs in a thread.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import sys
import threading
from pathlib import Path

from modyn_stream.datasets import generate
from modyn_stream.exceptions import ModynStreamError
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.pipeline.config import ReplaySection
from modyn_stream.replay.publisher import ReplayResult, TimestampPolicy, replay
from modyn_stream.replay.sources import SampleSource, read_npz

log = logging.getLogger(__name__)


def replay_source(section: ReplaySection, base: Path) -> SampleSource:
    """The samples a pipeline's `replay` section names: a built-in generator, or an .npz file."""
    if section.generator:
        data = generate(section.generator, samples=section.samples, seed=section.seed)
        return SampleSource([row.tobytes() for row in data.x], data.y, data.t, data.t, "application/octet-stream")
    path = Path(section.path)
    return read_npz(path if path.is_absolute() else base / path, t_key="t")


class ReplayProcess:
    """Replays a pipeline's `replay` section into `{ns}.samples.{dataset}` from a child process."""

    def __init__(self, settings: KafkaSettings, dataset: str, section: ReplaySection, base: Path) -> None:
        forkable = sys.platform.startswith("linux") and threading.active_count() == 1
        context = multiprocessing.get_context("fork" if forkable else "spawn")
        self._news, news = context.Pipe(duplex=False)
        args, name = (settings, dataset, section, base, news), "modyn-stream-replay"
        in_thread = multiprocessing.current_process().daemon
        kind = threading.Thread if in_thread else context.Process
        self._child = kind(target=_replay, args=args if in_thread else (*args, True), name=name, daemon=True)
        # Frozen for the fork: garbage the parent has not collected yet (a closed run's chDB client, say) must
        # not be collected in the child, whose finalizers would wait on threads that only the parent has.
        gc.freeze()
        try:
            self._child.start()
        finally:
            gc.unfreeze()
        if not in_thread:
            news.close()  # the child holds the only writer: its end closes the pipe
        self.replayed = 0
        self.result: ReplayResult | None = None

    def poll(self, timeout_s: float = 0.0) -> bool:
        """Take in the child's news, waiting up to `timeout_s` for some; True once the replay is done.

        Raises ModynStreamError with the child's one-line error if the replay failed."""
        # Asked before reading: whatever a child that has ended sent is in the pipe by then, so one that
        # sends its result and exits between the read and this question is not taken for a failure.
        ended = not self._child.is_alive()
        while self.result is None and self._news.poll(timeout_s):
            timeout_s = 0.0
            try:
                kind, value = self._news.recv()
            except EOFError:  # the child ended without a word: its exit code says why
                break
            if kind == "progress":
                self.replayed = value
            elif kind == "done":
                self.result, self.replayed = value, value.published
            else:
                self.close()
                raise ModynStreamError(value)
        if self.result is not None:
            self._child.join()
            return True
        if ended:
            self._child.join()
            raise ModynStreamError(f"the replay process ended with exit code {self._child.exitcode} before it was done")
        return False

    def close(self) -> None:
        """Stop the child if it still runs (a run that failed or was killed); idempotent."""
        if self._child.is_alive() and isinstance(self._child, multiprocessing.process.BaseProcess):
            self._child.kill()  # a thread cannot be killed: it finishes the replay
        self._child.join()
        self._news.close()


def _replay(settings: KafkaSettings, dataset: str, section: ReplaySection, base: Path, news, child=False) -> None:
    """The child: generate or read the samples, publish them, and say how it went."""
    if child:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the run, which lets the replay finish
    try:
        # Opened first: a new idempotent producer waits up to 0.5 s for its id, which arrives meanwhile.
        with EventProducer(settings) as producer:
            source = replay_source(section, base)
            result = replay(
                settings, dataset, source, TimestampPolicy("field"), partitions=section.partitions,
                progress=lambda done, total: news.send(("progress", done)), producer=producer,
            )  # fmt: skip
        news.send(("done", result))
    except ModynStreamError as exc:
        news.send(("error", str(exc)))
    except Exception as exc:
        log.exception("the replay failed")
        news.send(("error", f"the replay failed: {type(exc).__name__}: {exc}"))
    finally:
        news.close()
