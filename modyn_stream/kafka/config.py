"""Kafka connection settings: bootstrap, namespace, security, schema registry.

Secrets are `SecretStr`, so they never appear in reprs or logs; they reach librdkafka only
through :meth:`KafkaSettings.client_config`.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

LIBRDKAFKA_LOGGER = "modyn_stream.librdkafka"

_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]+$")

_ENV = {
    "bootstrap_servers": "MODYN_KAFKA_BOOTSTRAP",
    "namespace": "MODYN_KAFKA_NAMESPACE",
    "security_protocol": "MODYN_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "MODYN_KAFKA_SASL_MECHANISM",
    "sasl_username": "MODYN_KAFKA_SASL_USERNAME",
    "sasl_password": "MODYN_KAFKA_SASL_PASSWORD",
    "ssl_ca_location": "MODYN_KAFKA_SSL_CA_LOCATION",
    "ssl_certificate_location": "MODYN_KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl_key_location": "MODYN_KAFKA_SSL_KEY_LOCATION",
    "ssl_key_password": "MODYN_KAFKA_SSL_KEY_PASSWORD",
    "schema_registry_url": "MODYN_SCHEMA_REGISTRY_URL",
    "schema_registry_basic_auth": "MODYN_SCHEMA_REGISTRY_BASIC_AUTH",
}


class KafkaSettings(BaseModel):
    """How to reach Kafka. Every field can also come from a `MODYN_KAFKA_*` environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]; None means the local Kafka started by `modyn-stream kafka up`."
    )
    namespace: str = Field("modyn", description="Prefix of every topic this project creates.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    schema_registry_url: str | None = None
    schema_registry_basic_auth: SecretStr | None = Field(None, description="'user:password' for the registry.")
    client_properties: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka properties passed through as they are."
    )

    @field_validator("namespace")
    @classmethod
    def _namespace_is_topic_safe(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError("namespace may only contain letters, digits, '_' and '-'")
        return value

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> KafkaSettings:
        """Settings from `MODYN_KAFKA_*` variables; explicit keyword overrides win over the environment."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {field: environ[var] for field, var in _ENV.items() if environ.get(var)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_bootstrap(self, bootstrap_servers: str) -> KafkaSettings:
        return self.model_copy(update={"bootstrap_servers": bootstrap_servers})

    def client_config(self) -> dict[str, Any]:
        """The librdkafka properties shared by producers, consumers and admin clients."""
        if not self.bootstrap_servers:
            raise ValueError("no Kafka bootstrap servers configured (set MODYN_KAFKA_BOOTSTRAP)")
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
            # librdkafka logs through Python logging, not straight to stderr.
            "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": _reveal(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _reveal(self.ssl_key_password),
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        conf.update(self.client_properties)
        # No client of ours creates a topic as a side effect (a metadata request, a subscription or a
        # produce to a missing topic): a samples topic made with broker defaults would delete the dataset.
        conf["allow.auto.create.topics"] = False
        return conf

    def registry_config(self) -> dict[str, Any]:
        """Extra settings for confluent-kafka's SchemaRegistryClient (besides the URL)."""
        auth = _reveal(self.schema_registry_basic_auth)
        return {"basic.auth.user.info": auth} if auth else {}


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
