"""Following `{ns}.ingest-progress`: the latest progress record of every sample partition."""

from __future__ import annotations

import logging

from confluent_kafka import TopicPartition

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.ingest.watermark import PartitionProgress
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import READER_OVERRIDES, BatchConsumer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames

log = logging.getLogger(__name__)


class ProgressTracker:
    """Reads the (compacted) progress topic from its start, then keeps up; no consumer group state."""

    def __init__(self, settings: KafkaSettings, codec: EventCodec, group: str) -> None:
        self.topic = TopicNames(settings.namespace).ingest_progress
        self.codec = codec
        self.latest: dict[tuple[str, int], PartitionProgress] = {}
        self._next = dict.fromkeys(TopicAdmin(settings).partitions(self.topic), 0)  # where reading stands
        self._consumer = BatchConsumer(settings, group, overrides=READER_OVERRIDES)

    def refresh(self) -> None:
        """Read up to the topic's current end, so decisions use every record written before this call.

        Assigned only meanwhile: an assigned consumer keeps fetching (every 10 ms at the log's end)."""
        standing = [TopicPartition(self.topic, p, offset) for p, offset in self._next.items()]
        self._consumer.assign(standing)
        try:
            for msg in self._consumer.read_to_end(standing):
                self._next[msg.partition()] = msg.offset() + 1
                try:
                    event = self.codec.decode(msg.value())
                except EventDecodeError as exc:  # not the ingest's: it cannot move a watermark
                    log.warning("%s[%d]@%d: skipped: %s", self.topic, msg.partition(), msg.offset(), exc)
                    continue
                if event.name == "IngestProgress":
                    progress = PartitionProgress.from_event(event.record)
                    self.latest[(progress.topic, progress.partition)] = progress
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()
