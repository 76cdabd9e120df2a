import pytest

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.pipeline.system import load_system_config


def test_file_values_with_environment_on_top(tmp_path):
    path = tmp_path / "system.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: 'file:9092', namespace: prod, sasl_username: svc}\n"
        "metadata: {url: 'http://ch:8123', database: ms}\n"
        "artifacts: {root: /data/artifacts}\n"
    )
    config = load_system_config(path, environ={"MODYN_KAFKA_BOOTSTRAP": "env:9092", "MODYN_KAFKA_SASL_PASSWORD": "pw"})
    assert config.kafka.bootstrap_servers == "env:9092" and config.kafka.namespace == "prod"
    assert config.kafka.sasl_username == "svc" and config.kafka.sasl_password.get_secret_value() == "pw"
    assert config.metadata_url == "http://ch:8123" and str(config.artifacts.root) == "/data/artifacts"
    assert "pw" not in repr(config)


def test_defaults_use_embedded_clickhouse_in_the_state_dir():
    config = load_system_config(None, environ={})
    assert config.metadata_url.startswith("chdb:///") and config.metadata_url.endswith(".modyn-stream/metadata")


def test_problems_are_one_line_with_the_path(tmp_path):
    path = tmp_path / "system.yaml"
    path.write_text("kafka: {bootstrap: x}\n")
    with pytest.raises(
        ModynStreamError, match=r"system.yaml: kafka.bootstrap: unknown field \(did you mean 'bootstrap_servers'"
    ):
        load_system_config(path, environ={})
    path.write_text("kafka: [\n")
    with pytest.raises(ModynStreamError, match=r"system\.yaml: not valid YAML"):
        load_system_config(path, environ={})
