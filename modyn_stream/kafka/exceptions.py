"""Errors of the Kafka layer."""

from modyn_stream.exceptions import ModynStreamError


class KafkaLayerError(ModynStreamError):
    """Base class for errors talking to Kafka."""


class BrokerUnavailableError(KafkaLayerError):
    """No broker answered at the configured bootstrap address."""


class DeliveryError(KafkaLayerError):
    """One or more produced messages were not acknowledged by the broker."""


class TopicError(KafkaLayerError):
    """A topic name is invalid, or creating/describing topics failed."""


class TransactionError(KafkaLayerError):
    """A Kafka transaction failed fatally (e.g. the producer was fenced by a newer instance)."""


class LocalKafkaError(KafkaLayerError):
    """The local, Maven-provisioned Kafka could not be provisioned, started or stopped."""
