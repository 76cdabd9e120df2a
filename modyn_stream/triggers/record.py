"""The ClickHouse `triggers` row of a TriggerEvent: one definition for every service that projects it.

The insert carries a token derived from (pipeline, trigger index), so any number of services
writing the same event (the trigger service after its commit, the selector before it selects)
leave exactly one row.
"""

from __future__ import annotations

from modyn_stream.metadata import MetadataStore


def record_trigger(store: MetadataStore, event: dict) -> None:
    partitions = sorted(int(p) for p in event["ingest_offsets"])
    store.insert(
        "triggers",
        {
            "pipeline_id": [event["pipeline_id"]],
            "trigger_index": [event["trigger_index"]],
            "dataset": [event["dataset"]],
            "boundary_event_time": [event["boundary_event_time"]],
            "boundary_key": [event["boundary_key"]],
            "num_new_samples": [event["num_new_samples"]],
            "reason": [event["reason"]],
            "fired_at": [event["fired_at"]],
            "snapshot_partitions": [partitions],
            "snapshot_offsets": [[event["ingest_offsets"][str(p)] for p in partitions]],
            "watermark": [event["watermark"]],
        },
        dedup_token=f"trigger-{event['pipeline_id']}-{event['trigger_index']}",
    )
