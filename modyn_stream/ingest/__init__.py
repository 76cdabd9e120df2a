"""Ingest: sample metadata from Kafka into ClickHouse, exactly once, with event-time progress."""
