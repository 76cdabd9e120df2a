"""Following `{ns}.ingest-progress`: the latest progress record of every sample partition."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from modyn_stream.events import EventCodec
from modyn_stream.ingest.watermark import PartitionProgress
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames


class ProgressTracker:
    """Reads the (compacted) progress topic from its start, then keeps up; no consumer group state."""

    def __init__(self, settings: KafkaSettings, codec: EventCodec, group: str) -> None:
        self.topic = TopicNames(settings.namespace).ingest_progress
        self.codec = codec
        self.latest: dict[tuple[str, int], PartitionProgress] = {}
        self._partitions = [TopicPartition(self.topic, p) for p in TopicAdmin(settings).partitions(self.topic)]
        self._consumer = BatchConsumer(settings, group)
        self._consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in self._partitions])

    def refresh(self) -> None:
        """Read up to the topic's current end, so decisions use every record written before this call."""
        ends = [high for _, high in self._consumer.watermarks(self._partitions)]
        while any(
            pos.offset < end for pos, end in zip(self._consumer.raw.position(self._partitions), ends, strict=True)
        ):
            for msg in self._consumer.poll_batch(1000, 0.2):
                record = self.codec.decode(msg.value()).record
                progress = PartitionProgress.from_event(record)
                self.latest[(progress.topic, progress.partition)] = progress

    def close(self) -> None:
        self._consumer.close()
