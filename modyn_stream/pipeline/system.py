"""System configuration: where Kafka, ClickHouse and the artifact store are (not what to train).

A YAML file (`--config system.yaml`) with sections `kafka` (KafkaSettings fields), `metadata`
(url, database), `artifacts` (root) and `trusted_modules` (the modules whose code pipelines may name:
see `trust.py`); `MODYN_*` environment variables override the file, so secrets can stay out of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.metadata.store import embedded_url
from modyn_stream.pipeline.trust import CodeTrust


class MetadataSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str | None = Field(None, description="chdb:///path or http(s)://host:8123; None: chdb in the state dir.")
    database: str = "modyn"


class ArtifactSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    root: Path = Path(".modyn-stream/artifacts")


class SystemConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    metadata: MetadataSettings = Field(default_factory=MetadataSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    state_dir: Path = Path(".modyn-stream")
    trusted_modules: list[str] = Field(
        default_factory=list, description="Modules (and their submodules) whose code pipelines may name."
    )

    @property
    def metadata_url(self) -> str:
        return self.metadata.url or embedded_url(self.state_dir)

    def code_trust(self, everything: bool = False) -> CodeTrust:
        """What this process may import: every module with `--trust-code`, else the trusted modules."""
        return CodeTrust(everything, tuple(self.trusted_modules))


def load_system_config(path: Path | None = None, environ: dict[str, str] | None = None) -> SystemConfig:
    """The file's settings (if any) with MODYN_* environment variables on top."""
    from modyn_stream.pipeline.loading import describe, parse_yaml

    environ = os.environ if environ is None else environ
    data: dict = {}
    if path is not None:
        try:
            data = parse_yaml(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ModynStreamError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ModynStreamError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise ModynStreamError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(data, dict):
            raise ModynStreamError(f"{path}: a system config must be a mapping")
    try:
        config = SystemConfig.model_validate(data)
        kafka = config.kafka.model_copy(update=KafkaSettings.from_env(environ).model_dump(exclude_unset=True))
        metadata = config.metadata
        if environ.get("MODYN_CLICKHOUSE_URL"):
            metadata = metadata.model_copy(update={"url": environ["MODYN_CLICKHOUSE_URL"]})
        artifacts = config.artifacts
        if environ.get("MODYN_ARTIFACTS_ROOT"):
            artifacts = artifacts.model_copy(update={"root": Path(environ["MODYN_ARTIFACTS_ROOT"])})
        trusted = config.trusted_modules
        if environ.get("MODYN_TRUSTED_MODULES"):
            trusted = [m.strip() for m in environ["MODYN_TRUSTED_MODULES"].split(",") if m.strip()]
        update = {"kafka": kafka, "metadata": metadata, "artifacts": artifacts, "trusted_modules": trusted}
        return config.model_copy(update=update)
    except ValidationError as exc:
        problems = "; ".join(describe(e, SystemConfig) for e in exc.errors())
        raise ModynStreamError(f"{path or 'system config'}: {problems}") from None
