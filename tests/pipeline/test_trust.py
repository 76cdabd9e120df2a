"""Code named by a pipeline runs only where the operator trusts it: never because the file says so."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.system import load_system_config
from modyn_stream.pipeline.trust import NOBODY, CodeTrust, UntrustedCodeError
from modyn_stream.training.decoders import build_decoder
from modyn_stream.training.models import build_model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_data_amount.yaml"


def test_trust_covers_the_named_modules_and_their_submodules_only():
    trust = CodeTrust(modules=("mypkg", "other.sub"))
    assert trust.allows("mypkg") and trust.allows("mypkg.nets.deep") and trust.allows("other.sub.x")
    assert not trust.allows("mypkgevil") and not trust.allows("other") and not trust.allows("os")
    assert CodeTrust(everything=True).allows("os") and not NOBODY.allows("os")


def test_untrusted_code_is_never_imported_or_run(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UntrustedCodeError, match=r"model\.id 'os:system' imports code from module 'os'"):
        build_model("os:system", {"command": f"touch {marker}"}, trust=CodeTrust(modules=("mypkg",)))
    for name, transformations in [("os:system", []), ("raw", [{"name": "os:system"}])]:
        with pytest.raises(UntrustedCodeError, match="which this process does not trust"):
            build_decoder(name, {}, transformations)
    assert not marker.exists()
    decode = build_decoder("tests.training.custom_code:decode_digits", {}, trust=CodeTrust(modules=("tests",)))
    assert tuple(decode([bytes(64)]).shape) == (1, 1, 8, 8)


def test_a_pipeline_file_cannot_trust_itself_and_validation_asks_the_operator():
    config = yaml.safe_load(EXAMPLE.read_text())
    config["model"] |= {"id": "os:system", "trusted": True}
    problems = validate_data(config)[1]
    assert any(p.startswith("model.trusted: a pipeline file cannot trust its own code") for p in problems), problems

    config["model"].pop("trusted")
    assert validate_data(config)[1] == [
        "model.id: 'os:system' imports code from module 'os', which this process does not trust: the operator "
        "allows it with --trust-code or trusted_modules in the system config"
    ]
    assert validate_data(config, CodeTrust(modules=("os",)))[1] == []
    assert validate_data(config, CodeTrust(everything=True))[1] == []


def test_the_operator_trusts_modules_in_the_system_config_or_the_environment(tmp_path):
    system = tmp_path / "system.yaml"
    system.write_text("trusted_modules: [mypkg]\n")
    assert load_system_config(system, environ={}).code_trust() == CodeTrust(False, ("mypkg",))
    assert load_system_config(None, environ={"MODYN_TRUSTED_MODULES": "a, b.c"}).code_trust() == CodeTrust(
        False, ("a", "b.c")
    )
    assert load_system_config(None, environ={}).code_trust(everything=True).everything


def test_validate_refuses_untrusted_code_in_one_line_and_accepts_it_with_trust_code(tmp_path):
    config = yaml.safe_load(EXAMPLE.read_text())
    config["data"]["decoder"] = "tests.training.custom_code:decode_digits"
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(config))

    def validate(*flags, env=None):
        command = [sys.executable, "-m", "modyn_stream", "validate", str(path), *flags]
        environment = {**os.environ, **(env or {})}
        return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)

    refused = validate()
    assert refused.returncode == 1 and "data.decoder: 'tests.training.custom_code:decode_digits' imports code" in (
        refused.stderr
    )
    assert validate("--trust-code").returncode == 0
    assert validate(env={"MODYN_TRUSTED_MODULES": "tests.training"}).returncode == 0
