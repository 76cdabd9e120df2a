"""Choose the broker a command talks to: the configured one, else the local one (started if needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.local import DEFAULT_STATE_DIR, LocalKafka
from modyn_stream.kafka.topics import TopicAdmin


@contextmanager
def connected(
    settings: KafkaSettings,
    *,
    state_dir: Path = DEFAULT_STATE_DIR,
    start_local: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[KafkaSettings]:
    """Yield settings with a reachable bootstrap address.

    With `bootstrap_servers` configured, that broker must answer (else BrokerUnavailableError at
    once). Without it, a running local Kafka is used, or one is started and stopped again on exit.
    """
    started: LocalKafka | None = None
    if not settings.bootstrap_servers:
        local = LocalKafka(state_dir)
        status = local.status()
        if status.running:
            settings = settings.with_bootstrap(status.bootstrap)
        elif start_local:
            settings = settings.with_bootstrap(local.start(say=say))
            started = local
        else:
            from modyn_stream.kafka.exceptions import BrokerUnavailableError

            raise BrokerUnavailableError(
                f"no Kafka configured (MODYN_KAFKA_BOOTSTRAP) and no local Kafka running in {local.state_dir}"
            )
    TopicAdmin(settings, timeout_s=10).check_reachable()
    try:
        yield settings
    finally:
        if started is not None:
            say("Stopping the local Kafka this command started ...")
            started.stop()
