"""modyn-stream: training ML models on growing datasets, as an event-streaming system.

Kafka carries every event, ClickHouse holds the metadata and runs selection, PyTorch trains.
"""

__version__ = "0.1.0"
