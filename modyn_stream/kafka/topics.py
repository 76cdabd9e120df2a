"""Topic names (DESIGN.md "The shape") and topic administration.

>>> names = TopicNames("modyn")
>>> names.samples("mnist"), names.triggers, names.dlq
('modyn.samples.mnist', 'modyn.triggers', 'modyn.dlq')
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.exceptions import BrokerUnavailableError, TopicError

_LEGAL_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_LEGAL_DATASET = re.compile(r"^[A-Za-z0-9_-]+$")

# The log is the dataset store and events are the pipeline's history: keep them forever.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
# State topics hold the latest value per key (e.g. one progress record per partition).
COMPACTED = {"cleanup.policy": "compact"}
# Kafka's default largest record batch; samples topics are created with it, so the DLQ is sized from it.
SAMPLE_MAX_MESSAGE_BYTES = 1_048_588
# A dead letter is the original record plus reason headers: the DLQ takes records this much larger.
DLQ_HEADROOM_BYTES = 64 << 10


def validate_topic_name(name: str) -> str:
    if not _LEGAL_TOPIC.match(name) or name in {".", ".."}:
        raise TopicError(f"invalid topic name {name!r}: use 1-249 of letters, digits, '.', '_', '-'")
    return name


@dataclass(frozen=True)
class TopicNames:
    """Every topic of one namespace."""

    namespace: str

    def samples(self, dataset: str) -> str:
        if not _LEGAL_DATASET.match(dataset):
            raise TopicError(f"invalid dataset id {dataset!r}: use letters, digits, '_' and '-'")
        return validate_topic_name(f"{self.namespace}.samples.{dataset}")

    @property
    def ingest_progress(self) -> str:
        return f"{self.namespace}.ingest-progress"

    @property
    def pipelines(self) -> str:
        return f"{self.namespace}.pipelines"

    @property
    def triggers(self) -> str:
        return f"{self.namespace}.triggers"

    @property
    def trigger_evaluations(self) -> str:
        """Every decision of a batched trigger (drift), fired or not: its record, and what a restart resumes."""
        return f"{self.namespace}.trigger-evaluations"

    @property
    def training_sets(self) -> str:
        return f"{self.namespace}.training-sets"

    @property
    def models(self) -> str:
        return f"{self.namespace}.models"

    @property
    def evaluations(self) -> str:
        return f"{self.namespace}.evaluations"

    @property
    def dlq(self) -> str:
        return f"{self.namespace}.dlq"

    def is_own(self, topic: str) -> bool:
        return topic.startswith(f"{self.namespace}.")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_topic_name(self.name)
        if self.partitions < 1:
            raise TopicError(f"topic {self.name}: partitions must be >= 1, got {self.partitions}")


def project_topic_specs(names: TopicNames, partitions: int = 3) -> list[TopicSpec]:
    """The service topics of a namespace (sample topics are created per dataset)."""
    return [
        TopicSpec(names.ingest_progress, 1, {**KEEP_FOREVER, **COMPACTED}),
        TopicSpec(names.pipelines, 1, {**KEEP_FOREVER, **COMPACTED}),
        TopicSpec(names.triggers, partitions, KEEP_FOREVER),
        TopicSpec(names.trigger_evaluations, partitions, KEEP_FOREVER),
        TopicSpec(names.training_sets, partitions, KEEP_FOREVER),
        TopicSpec(names.models, partitions, KEEP_FOREVER),
        TopicSpec(names.evaluations, partitions, KEEP_FOREVER),
        TopicSpec(
            names.dlq, 1, {**KEEP_FOREVER, "max.message.bytes": str(SAMPLE_MAX_MESSAGE_BYTES + DLQ_HEADROOM_BYTES)}
        ),
    ]


def sample_topic_spec(names: TopicNames, dataset: str, partitions: int) -> TopicSpec:
    return TopicSpec(
        names.samples(dataset), partitions, {**KEEP_FOREVER, "max.message.bytes": str(SAMPLE_MAX_MESSAGE_BYTES)}
    )


def deleting_settings(spec: TopicSpec, existing: dict[str, str]) -> list[str]:
    """The settings of an existing topic that would delete records `spec` means to keep forever.

    >>> spec = TopicSpec("ns.samples.d", 1, KEEP_FOREVER)
    >>> deleting_settings(spec, {"retention.ms": "604800000", "retention.bytes": "-1", "cleanup.policy": "delete"})
    ['retention.ms=604800000']
    >>> deleting_settings(spec, {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "compact"})
    ['cleanup.policy=compact']
    """
    found = [f"{name}={existing[name]}" for name in KEEP_FOREVER
             if spec.config.get(name) == "-1" and existing.get(name, "-1") != "-1"]  # fmt: skip
    policy = existing.get("cleanup.policy", "delete")
    if "compact" in policy and "compact" not in spec.config.get("cleanup.policy", "delete"):
        found.append(f"cleanup.policy={policy}")  # compaction drops all but the latest record per key
    return found


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int


class TopicAdmin:
    """Creates and describes topics; all calls wait for the broker's answer."""

    def __init__(self, settings: KafkaSettings, timeout_s: float = 15.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._admin = AdminClient(settings.client_config())

    def check_reachable(self) -> None:
        """Raise BrokerUnavailableError at once when no broker answers, instead of hanging later."""
        try:
            metadata = self._admin.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise BrokerUnavailableError(
                f"Kafka at {self.settings.bootstrap_servers}: no broker answered within "
                f"{self.timeout_s:g} s ({exc.args[0].str() if exc.args else exc})"
            ) from None
        if not metadata.brokers:
            raise BrokerUnavailableError(f"Kafka at {self.settings.bootstrap_servers}: no brokers in metadata")

    def ensure(self, specs: list[TopicSpec]) -> list[str]:
        """Create the topics that do not exist yet; return the names created.

        An existing topic is kept as it is, unless it would delete records its spec keeps forever (a samples
        topic made with broker defaults loses the dataset after a week): that raises TopicError."""
        if not specs:
            return []
        futures = self._admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, config=s.config) for s in specs],
            operation_timeout=self.timeout_s,
            request_timeout=self.timeout_s,
        )
        created = []
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"creating topic {name}: {error.str()}") from None
        self._wait_for_leaders([s.name for s in specs])
        self._check_kept([s for s in specs if s.name not in created and s.config.get("retention.ms") == "-1"])
        return created

    def _check_kept(self, specs: list[TopicSpec]) -> None:
        for spec, existing in zip(specs, self.configs([s.name for s in specs]), strict=True):
            if found := deleting_settings(spec, existing):
                fix = ",".join(f"{k}={v}" for k, v in {**KEEP_FOREVER, "cleanup.policy": "delete"}.items())
                raise TopicError(
                    f"topic {spec.name} exists with {', '.join(found)}: the broker would delete its records; "
                    f"keep them (kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
                    f"--add-config {fix}) or use another namespace"
                )

    def _wait_for_leaders(self, names: list[str]) -> None:
        """Block until every partition of `names` has a leader: a new topic is not usable before."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            topics = self._admin.list_topics(timeout=self.timeout_s).topics
            pending = [
                n for n in names
                if n not in topics or topics[n].error is not None
                or any(p.leader < 0 for p in topics[n].partitions.values())
            ]  # fmt: skip
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TopicError(f"topics without a leader after {self.timeout_s:g} s: {', '.join(pending)}")
            time.sleep(0.05)  # metadata is pulled, there is nothing to wait on

    def delete_namespace(self, namespace: str) -> list[str]:
        """Delete every topic of `namespace` and its consumer groups (none may be running); return the
        topics deleted. For a run that is discarded: its topics would otherwise stay on the broker forever."""
        names = TopicNames(namespace)
        topics = sorted(t for t in self._admin.list_topics(timeout=self.timeout_s).topics if names.is_own(t))
        if topics:
            for name, future in self._admin.delete_topics(topics, operation_timeout=self.timeout_s).items():
                try:
                    future.result()
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # gone already
                        raise TopicError(f"deleting topic {name}: {exc.args[0].str()}") from None
        listed = self._admin.list_consumer_groups(request_timeout=self.timeout_s).result()
        groups = [g.group_id for g in listed.valid if names.is_own(g.group_id)]
        if groups:
            for group, future in self._admin.delete_consumer_groups(groups).items():
                try:
                    future.result()
                except KafkaException as exc:
                    raise TopicError(f"deleting consumer group {group}: {exc.args[0].str()}") from None
        return topics

    def list(self, prefix: str = "") -> list[TopicInfo]:
        metadata = self._admin.list_topics(timeout=self.timeout_s)
        return sorted(
            (TopicInfo(t.topic, len(t.partitions)) for t in metadata.topics.values() if t.topic.startswith(prefix)),
            key=lambda info: info.name,
        )

    def partitions(self, topic: str) -> list[int]:
        metadata = self._admin.list_topics(topic=topic, timeout=self.timeout_s)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            reason = info.error.str() if info is not None and info.error is not None else "not found"
            raise TopicError(f"topic {topic}: {reason}")
        return sorted(info.partitions)

    def config(self, topic: str) -> dict[str, str]:
        return self.configs([topic])[0]

    def configs(self, topics: list[str]) -> list[dict[str, str]]:
        """Each topic's effective configuration, in one request."""
        resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in topics]
        if not resources:
            return []
        futures = self._admin.describe_configs(resources, request_timeout=self.timeout_s)
        try:
            return [{name: entry.value for name, entry in futures[r].result().items()} for r in resources]
        except KafkaException as exc:
            raise TopicError(f"describing topics {', '.join(topics)}: {exc.args[0].str()}") from None
