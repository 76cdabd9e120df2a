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
