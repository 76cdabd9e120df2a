"""Errors of the Kafka layer."""

from modyn_stream.exceptions import ModynStreamError


class KafkaLayerError(ModynStreamError):
    """Base class for errors talking to Kafka.

    `transient`: the broker was away or did not answer in time, so the same work can succeed once it is
    back (a service then restarts from its committed state); otherwise the error is for an operator."""

    transient = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class BrokerUnavailableError(KafkaLayerError):
    """No broker answered at the configured bootstrap address."""

    transient = True


class DeliveryError(KafkaLayerError):
    """One or more produced messages were not acknowledged by the broker."""

    transient = True


class TopicError(KafkaLayerError):
    """A topic name is invalid, or creating/describing topics failed."""


class TransactionError(KafkaLayerError):
    """A Kafka transaction call failed: fatally (e.g. the producer was fenced by a newer instance), or it
    timed out or lost the broker (transient)."""


class LocalKafkaError(KafkaLayerError):
    """The local, Maven-provisioned Kafka could not be provisioned, started or stopped."""


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says only that the broker was away or slow (worth a restart once it answers again)."""
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        return not (hasattr(error, "fatal") and error.fatal())
    return isinstance(exc, KafkaLayerError) and exc.transient
