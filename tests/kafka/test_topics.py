import pytest

from modyn_stream.kafka.exceptions import TopicError
from modyn_stream.kafka.topics import COMPACTED, KEEP_FOREVER, TopicNames, TopicSpec, project_topic_specs


def test_topic_names_follow_the_design():
    names = TopicNames("ns")
    assert names.samples("cifar-10") == "ns.samples.cifar-10"
    assert [names.ingest_progress, names.pipelines, names.triggers, names.training_sets] == [
        "ns.ingest-progress",
        "ns.pipelines",
        "ns.triggers",
        "ns.training-sets",
    ]
    assert [names.models, names.evaluations, names.dlq] == ["ns.models", "ns.evaluations", "ns.dlq"]
    assert names.is_own("ns.triggers") and not names.is_own("other.triggers")


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("has space", "invalid dataset id"),
        ("", "invalid dataset id"),
        ("a.b", "invalid dataset id"),
        ("x" * 250, "invalid topic name"),
    ],
)
def test_invalid_dataset_names_are_rejected(dataset, message):
    with pytest.raises(TopicError, match=message):
        TopicNames("ns").samples(dataset)


def test_state_topics_are_compacted_and_event_topics_kept_forever():
    specs = {s.name: s for s in project_topic_specs(TopicNames("ns"), partitions=4)}
    assert specs["ns.ingest-progress"].config == {**KEEP_FOREVER, **COMPACTED}
    assert specs["ns.triggers"].config == KEEP_FOREVER and specs["ns.triggers"].partitions == 4
    with pytest.raises(TopicError, match="partitions must be >= 1"):
        TopicSpec("ns.x", 0)
