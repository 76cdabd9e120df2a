import logging

import pytest
from pydantic import ValidationError

from modyn_stream.kafka.config import KafkaSettings


def test_security_settings_pass_through_to_librdkafka():
    settings = KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password="s3cret",
        ssl_ca_location="/etc/ca.pem",
        client_properties={"client.id": "x"},
    )
    conf = settings.client_config()
    assert conf["bootstrap.servers"] == "b1:9093,b2:9093"
    assert conf["security.protocol"] == "sasl_ssl"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "alice" and conf["sasl.password"] == "s3cret"
    assert conf["ssl.ca.location"] == "/etc/ca.pem" and conf["client.id"] == "x"
    assert isinstance(conf["logger"], logging.Logger)
    assert "ssl.key.password" not in conf


def test_secrets_never_appear_in_reprs():
    settings = KafkaSettings(bootstrap_servers="b:1", sasl_password="s3cret", schema_registry_basic_auth="u:pw")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert "u:pw" not in repr(settings)
    assert settings.registry_config() == {"basic.auth.user.info": "u:pw"}


def test_environment_supplies_settings_and_keywords_win():
    env = {"MODYN_KAFKA_BOOTSTRAP": "env:9092", "MODYN_KAFKA_NAMESPACE": "prod", "MODYN_KAFKA_SASL_PASSWORD": "p"}
    settings = KafkaSettings.from_env(env)
    assert (settings.bootstrap_servers, settings.namespace) == ("env:9092", "prod")
    assert settings.sasl_password.get_secret_value() == "p"
    assert KafkaSettings.from_env(env, bootstrap_servers="cli:1").bootstrap_servers == "cli:1"
    assert KafkaSettings.from_env(env, bootstrap_servers=None).bootstrap_servers == "env:9092"


def test_invalid_settings_are_rejected_with_the_field_named():
    with pytest.raises(ValidationError, match="namespace"):
        KafkaSettings(namespace="has space")
    with pytest.raises(ValidationError, match="security_protocol"):
        KafkaSettings(security_protocol="TLS")
    with pytest.raises(ValidationError, match="boostrap"):
        KafkaSettings(boostrap="typo:1")


def test_client_config_without_bootstrap_says_how_to_set_it():
    with pytest.raises(ValueError, match="MODYN_KAFKA_BOOTSTRAP"):
        KafkaSettings().client_config()
