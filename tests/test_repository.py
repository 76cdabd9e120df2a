"""Files outside the package that users rely on stay consistent with the code."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_runs_a_single_node_kafka_with_transactions_and_clickhouse():
    compose = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    kafka = compose["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert "8123:8123" in compose["services"]["clickhouse"]["ports"]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```bash") + 1 : readme.index("```bash") + 3]
    assert [line.split("#")[0].strip() for line in block] == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_service_has_its_folder_and_a_compose_entry_that_builds_it():
    compose = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    for name in ("ingest", "trigger", "selector", "trainer", "evaluator"):
        folder = ROOT / "services" / name
        assert {"Dockerfile", "README.md", "config.env"} <= {p.name for p in folder.iterdir()}, name
        assert f'ENTRYPOINT ["modyn-stream", "service", "{name}"]' in (folder / "Dockerfile").read_text()
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        assert service["env_file"] == f"services/{name}/config.env"
        assert "artifacts:/artifacts" in service["volumes"] and service["profiles"] == ["services"]
        env = dict(line.split("=", 1) for line in (folder / "config.env").read_text().splitlines()
                   if line and not line.startswith("#"))  # fmt: skip
        assert env["MODYN_KAFKA_BOOTSTRAP"] == "kafka:19092" and "PASSWORD" not in " ".join(env), name
