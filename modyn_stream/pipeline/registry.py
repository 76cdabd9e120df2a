"""Registering a pipeline: a row in ClickHouse `pipelines` and a PipelineEvent on `{ns}.pipelines`.

The id is derived from the validated config (name + hash), so registering the same config again
is idempotent: same id, same row after ReplacingMergeTree merges, same compacted-topic key.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from modyn_stream.events import EventCodec
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, project_topic_specs
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.loading import pipeline_id


def register_pipeline(
    config: PipelineConfig, settings: KafkaSettings, store: MetadataStore, producer: EventProducer | None = None
) -> str:
    """Register `config`; return its id. `producer`: an open one to use (a new idempotent producer takes
    about 0.5 s to get its producer id)."""
    pid, canonical, digest = pipeline_id(config)
    now = int(time.time() * 1000)
    store.migrate()
    store.insert(
        "pipelines",
        {
            "pipeline_id": [pid],
            "name": [config.pipeline.name],
            "status": ["REGISTERED"],
            "config_json": [canonical],
            "config_sha256": [digest],
            "updated_at": [now],
        },
    )
    names = TopicNames(settings.namespace)
    TopicAdmin(settings).ensure(project_topic_specs(names))
    event = {
        "pipeline_id": pid,
        "name": config.pipeline.name,
        "status": "REGISTERED",
        "config_json": canonical,
        "config_sha256": digest,
        "message": None,
        "at": now,
    }
    codec = EventCodec.for_settings(settings)
    with nullcontext(producer) if producer else EventProducer(settings) as out:
        out.produce(names.pipelines, codec.encode("PipelineEvent", event), key=pid)
        out.flush()
    return pid


def registered_pipelines(store: MetadataStore) -> dict[str, PipelineConfig]:
    """Every pipeline that is not stopped, by id."""
    rows = store.query("SELECT pipeline_id, config_json FROM pipelines FINAL WHERE status != 'STOPPED'")
    return {pid: PipelineConfig.model_validate_json(config) for pid, config in rows}


def registered_pipeline(store: MetadataStore, pid: str) -> PipelineConfig | None:
    rows = store.query("SELECT config_json FROM pipelines FINAL WHERE pipeline_id = {pid:String}", {"pid": pid})
    return PipelineConfig.model_validate_json(rows[0][0]) if rows else None
