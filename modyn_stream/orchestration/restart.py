"""Surviving a broker that goes away: a service is rebuilt from its committed state once Kafka answers.

Every Kafka call of a service has a timeout, so an outage surfaces as a transient error (see
`kafka.exceptions.is_transient`) instead of a hang. Then the service is closed without waiting on the
broker (its unsent records are dropped: the new instance redoes that work), the broker is polled until it
answers, and a new instance is built: the same path as a restart after `kill -9`, which the services'
exactly-once designs make safe. An error that is not transient, or a broker away longer than
`outage_limit_s`, is raised, so the process exits non-zero for its supervisor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaException

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.exceptions import BrokerUnavailableError, KafkaLayerError, is_transient
from modyn_stream.kafka.topics import TopicAdmin

log = logging.getLogger(__name__)
OUTAGE_LIMIT_S = 900.0  # a broker away longer than this is a matter for an operator
CHECK_EVERY_S = 2.0


class Restarts:
    """Decides, after a failed step, whether to rebuild; waits for the broker meanwhile."""

    def __init__(
        self,
        settings: KafkaSettings,
        what: str,
        *,
        outage_limit_s: float = OUTAGE_LIMIT_S,
        stopping: Callable[[], bool] = lambda: False,
        say: Callable[[str], None] = log.warning,
    ) -> None:
        self.settings = settings
        self.what = what
        self.outage_limit_s = outage_limit_s
        self.stopping = stopping
        self.say = say
        self.count = 0
        self._failing_since: float | None = None

    def succeeded(self) -> None:
        """A step went through: the next failure starts a new outage."""
        self._failing_since = None

    def recover(self, exc: Exception) -> None:
        """Re-raise `exc` unless the broker was away or slow; otherwise return once it answers (or stopping).

        A Kafka error not marked transient (librdkafka says e.g. 'Unknown partition' while it has lost the
        broker) still counts as the broker's when the broker does not answer right now."""
        admin = TopicAdmin(self.settings, timeout_s=CHECK_EVERY_S)
        if not is_transient(exc) and not (isinstance(exc, KafkaLayerError | KafkaException) and not _answers(admin)):
            raise exc
        self._failing_since = self._failing_since or time.monotonic()
        self.say(f"{self.what}: {exc}; restarting once Kafka at {self.settings.bootstrap_servers} answers")
        while not self.stopping():
            if time.monotonic() - self._failing_since > self.outage_limit_s:
                raise BrokerUnavailableError(
                    f"{self.what}: Kafka at {self.settings.bootstrap_servers} has not served for "
                    f"{self.outage_limit_s:g} s; giving up (last error: {exc})"
                ) from None
            asked = time.monotonic()
            if _answers(admin):
                break
            time.sleep(max(0.0, CHECK_EVERY_S - (time.monotonic() - asked)))  # pacing the checks of a broker away
        self.count += 1


def _answers(admin: TopicAdmin) -> bool:
    try:
        admin.check_reachable()
    except (BrokerUnavailableError, KafkaException):
        return False
    return True


def close_all(services: Iterable, *, raise_first: bool = False, abandon: bool = False) -> None:
    """Close every service, even past one that fails to close. A caller that already failed keeps its own
    error (a close error would only hide it); one that did not raises the first close error. `abandon`:
    failed services, closed without waiting on the broker."""
    failure = None
    for service in services:
        try:
            service.close(abandon=abandon)
        except Exception as exc:
            log.warning("closing the %s: %s", type(service).__name__, exc)
            failure = failure or exc
    if failure is not None and raise_first:
        raise failure
