"""Versioned schema migrations of the metadata store.

Each migration runs once, in order; `schema_migrations` records what was applied, so applying
twice is a no-op. Never edit a released migration: append a new one.

`samples` is ordered by (dataset, event_time, key), the order every trigger, selection and window
query reads in. Inserts carry a deduplication token; `non_replicated_deduplication_window` makes a
MergeTree honour it without replication.
"""

from __future__ import annotations

from dataclasses import dataclass

DEDUP_WINDOW = 100_000


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


# Sample checks shared by the Avro fast path of ingest (in SQL) and its Python path (ingest/samples.py).
MIN_EVENT_TIME = -2_208_988_800_000  # 1900-01-01, the lower bound of DateTime64
MAX_EVENT_TIME = 10_413_792_000_000  # 2300-01-01, its upper bound
MAX_KEY_LENGTH = 1024
ROW_CHECK = 0x5BD1E995  # each fast-path row carries kafka_offset XOR this: a misparsed row cannot match

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial tables",
        (
            f"""
            CREATE TABLE IF NOT EXISTS samples (
                dataset LowCardinality(String),
                key String,
                event_time DateTime64(3, 'UTC'),
                label Nullable(Int64),
                topic LowCardinality(String),
                kafka_partition UInt32,
                kafka_offset UInt64,
                payload_size UInt32,
                ingested_at DateTime64(3, 'UTC')
            ) ENGINE = MergeTree
            ORDER BY (dataset, event_time, key)
            SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}
            """,
            """
            CREATE TABLE IF NOT EXISTS ingest_progress (
                topic LowCardinality(String),
                kafka_partition UInt32,
                dataset LowCardinality(String),
                next_offset UInt64,
                max_event_time Nullable(DateTime64(3, 'UTC')),
                samples_ingested UInt64,
                end_of_stream Bool,
                updated_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(next_offset)
            ORDER BY (topic, kafka_partition)
            """,
            """
            CREATE TABLE IF NOT EXISTS pipelines (
                pipeline_id String,
                name String,
                status LowCardinality(String),
                config_json String,
                config_sha256 String,
                updated_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(updated_at)
            ORDER BY pipeline_id
            """,
            """
            CREATE TABLE IF NOT EXISTS triggers (
                pipeline_id String,
                trigger_index UInt32,
                dataset LowCardinality(String),
                boundary_event_time DateTime64(3, 'UTC'),
                boundary_key String,
                num_new_samples UInt64,
                reason String,
                fired_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree
            ORDER BY (pipeline_id, trigger_index)
            """,
            f"""
            CREATE TABLE IF NOT EXISTS training_sets (
                pipeline_id String,
                trigger_index UInt32,
                kafka_partition UInt32,
                kafka_offset UInt64,
                key String,
                label Nullable(Int64),
                weight Float32,
                event_time DateTime64(3, 'UTC')
            ) ENGINE = MergeTree
            ORDER BY (pipeline_id, trigger_index, kafka_partition, kafka_offset)
            SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}
            """,
            """
            CREATE TABLE IF NOT EXISTS models (
                pipeline_id String,
                trigger_index UInt32,
                model_id String,
                parent_model_id Nullable(String),
                model_uri String,
                model_sha256 String,
                manifest_sha256 String,
                num_samples UInt64,
                epochs UInt32,
                final_loss Nullable(Float64),
                timings_s Map(String, Float64),
                created_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree
            ORDER BY (pipeline_id, trigger_index)
            """,
            """
            CREATE TABLE IF NOT EXISTS evaluations (
                pipeline_id String,
                model_id String,
                trigger_index UInt32,
                dataset LowCardinality(String),
                window_start DateTime64(3, 'UTC'),
                window_end DateTime64(3, 'UTC'),
                metric LowCardinality(String),
                value Float64,
                num_samples UInt64,
                created_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree
            ORDER BY (pipeline_id, model_id, dataset, window_start, window_end, metric)
            """,
        ),
    ),
    Migration(
        2,
        "Avro fast path of ingest: ClickHouse parses and checks SampleEvent bodies",
        (
            # Ingest writes Avro (SampleEvent bodies + topic, partition, offset, check) into this
            # Null table; the views below turn it into `samples` rows and per-batch stats in the same
            # insert, or reject the whole insert when any row fails a check.
            """
            CREATE TABLE IF NOT EXISTS samples_avro (
                dataset String, key String, event_time Int64, label Nullable(Int64),
                payload Nullable(String), payload_uri Nullable(String),
                topic String, kafka_partition UInt32, kafka_offset UInt64, check UInt64
            ) ENGINE = Null
            """,
            f"""
            CREATE MATERIALIZED VIEW IF NOT EXISTS samples_avro_mv TO samples AS
            SELECT dataset, key, fromUnixTimestamp64Milli(event_time, 'UTC') AS event_time, label, topic,
                   kafka_partition, kafka_offset, toUInt32(length(ifNull(payload, ''))) AS payload_size,
                   now64(3, 'UTC') AS ingested_at
            FROM samples_avro
            WHERE throwIf(
                check != bitXor(kafka_offset, {ROW_CHECK})
                OR dataset != replaceRegexpOne(topic, '^.*[.]samples[.]', '')
                OR length(key) = 0 OR lengthUTF8(key) > {MAX_KEY_LENGTH}
                OR event_time < {MIN_EVENT_TIME} OR event_time >= {MAX_EVENT_TIME}
                OR (payload IS NULL AND ifNull(payload_uri, '') = ''),
                'a sample failed the ingest checks') = 0
            """,
            """
            CREATE TABLE IF NOT EXISTS ingest_batch_stats (
                topic LowCardinality(String),
                kafka_partition UInt32,
                first_offset UInt64,
                last_offset UInt64,
                max_event_time DateTime64(3, 'UTC'),
                created_at DateTime DEFAULT now()
            ) ENGINE = MergeTree
            ORDER BY (topic, kafka_partition, first_offset)
            TTL created_at + INTERVAL 7 DAY
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS ingest_batch_stats_mv TO ingest_batch_stats AS
            SELECT topic, kafka_partition, min(kafka_offset) AS first_offset, max(kafka_offset) AS last_offset,
                   fromUnixTimestamp64Milli(max(event_time), 'UTC') AS max_event_time
            FROM samples_avro
            GROUP BY topic, kafka_partition
            """,
        ),
    ),
    Migration(
        3,
        "triggers keep their ingest snapshot, so selection can tell which trigger a sample belongs to",
        (
            # Samples up to trigger j: kafka_offset < snapshot_offsets[indexOf(snapshot_partitions, kafka_partition)]
            # AND (event_time, key) <= (boundary_event_time, boundary_key).
            "ALTER TABLE triggers ADD COLUMN IF NOT EXISTS snapshot_partitions Array(UInt32)",
            "ALTER TABLE triggers ADD COLUMN IF NOT EXISTS snapshot_offsets Array(UInt64)",
            "ALTER TABLE triggers ADD COLUMN IF NOT EXISTS watermark Nullable(DateTime64(3, 'UTC'))",
        ),
    ),
    Migration(
        4,
        "sample keys: which sample holds each key of a dataset (later ones are dead letters)",
        (
            """
            CREATE TABLE IF NOT EXISTS sample_keys (
                dataset LowCardinality(String),
                key String,
                topic LowCardinality(String),
                kafka_partition UInt32,
                kafka_offset UInt64
            ) ENGINE = ReplacingMergeTree
            ORDER BY (dataset, key)
            """,
            # In the insert into samples itself (both ingest paths), and skipped with it when deduplicated.
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS sample_keys_mv TO sample_keys AS
            SELECT dataset, key, topic, kafka_partition, kafka_offset FROM samples
            """,
            "INSERT INTO sample_keys SELECT dataset, key, topic, kafka_partition, kafka_offset FROM samples",
        ),
    ),
    Migration(
        5,
        "trigger evaluations: each decision of a batched (drift, performance) trigger, projected from its topic",
        (
            """
            CREATE TABLE IF NOT EXISTS trigger_evaluations (
                pipeline_id String,
                evaluation_index UInt32,
                boundary_event_time DateTime64(3, 'UTC'),
                boundary_key String,
                phase LowCardinality(String),
                fired Bool,
                trigger_index Nullable(UInt32),
                model_trigger_index Nullable(UInt32),
                reference_samples UInt32,
                current_samples UInt32,
                metric Array(String),
                value Array(Float64),
                metric_fired Array(Bool),
                threshold Array(Nullable(Float64)),
                evaluated_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree
            ORDER BY (pipeline_id, evaluation_index)
            """,
        ),
    ),
    Migration(
        6,
        "failed trainings (a batched trigger's decision then uses the last model trained) and the samples a "
        "decision could not read",
        (
            """
            CREATE TABLE IF NOT EXISTS training_failures (
                pipeline_id String,
                trigger_index UInt32,
                reason String,
                failed_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree
            ORDER BY (pipeline_id, trigger_index)
            """,
            "ALTER TABLE trigger_evaluations ADD COLUMN IF NOT EXISTS skipped_keys Array(String)",
        ),
    ),
    Migration(
        7,
        "the samples each model version was trained on after downsampling",
        ("ALTER TABLE models ADD COLUMN IF NOT EXISTS samples_trained Nullable(UInt64)",),
    ),
    Migration(
        8,
        "the file of the samples and weights each model version was trained on, step by step",
        (
            "ALTER TABLE models ADD COLUMN IF NOT EXISTS trained_samples_uri Nullable(String)",
            "ALTER TABLE models ADD COLUMN IF NOT EXISTS trained_samples_sha256 Nullable(String)",
        ),
    ),
)
