"""Options shared by several commands."""

import typer

Bootstrap = typer.Option(
    None, "--bootstrap", envvar="MODYN_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers; default: the local Kafka."
)
Namespace = typer.Option("modyn", "--namespace", envvar="MODYN_KAFKA_NAMESPACE", help="Topic namespace.")


def kafka_settings(bootstrap: str | None, namespace: str):
    from modyn_stream.kafka.config import KafkaSettings

    return KafkaSettings.from_env(bootstrap_servers=bootstrap, namespace=namespace)


TrustCode = typer.Option(
    False,
    "--trust-code",
    help="Import any module:function a pipeline names (its code runs in this process). Without it, only "
    "trusted_modules of the system config (or MODYN_TRUSTED_MODULES) are imported.",
)
