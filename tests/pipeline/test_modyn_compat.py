"""Modyn's pipeline files: its fields, snippets and layouts are read as what they mean here, or noted."""

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from modyn_stream.cli.main import app
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.loading import load_pipeline, validate_data
from modyn_stream.pipeline.notes import pipeline_notes
from modyn_stream.training.decoders import build_decoder, build_label_transformer
from modyn_stream.training.loop import build_optimizers
from modyn_stream.training.models import build_model
from modyn_stream.training.schedulers import build_scheduler

MODYN_FORMAT = Path(__file__).parent / "modyn" / "periodic_digits.yaml"
UNSAFE = "import os\ndef bytes_parser_function(x):\n  return os.system(x)"
SIGMOID = "import torch\ndef evaluation_transformer_function(x):\n  return torch.sigmoid(x)"


def modyn_format() -> dict:
    return yaml.safe_load(MODYN_FORMAT.read_text())


def test_a_modyn_format_file_validates_with_a_note_for_each_infrastructure_field():
    config = load_pipeline(MODYN_FORMAT)
    notes = pipeline_notes(config)
    for field in ("training.gpus", "training.dataloader_workers", "training.num_prefetched_partitions",
                  "training.parallel_prefetch_requests", "training.enable_accurate_gpu_measurements",
                  "selection_strategy.maximum_keys_in_memory", "selection_strategy.storage_backend",
                  "evaluation.after_training_evaluation_workers", "evaluation.datasets[0].dataloader_workers",
                  "model_storage.incremental_model_strategy.config.split_exponent"):  # fmt: skip
        assert sum(n.startswith(f"{field}: ") for n in notes) == 1, (field, notes)
    assert "data.bytes_parser_function: read as decoder raw {'dtype': 'float32', 'shape': [1, 8, 8]} (not run)" in notes
    assert config.data.decoder == "raw" and config.data.label_transformer == "float"
    assert config.data.transformations == [{"name": "Normalize", "mean": [0.5], "std": [0.25]}]
    assert config.evaluation.datasets[0].metrics[0].output_transformer == "argmax"
    assert (
        config.model_storage.full_model_interval == 3
        and config.model_storage.incremental_model_strategy.operator == "xor"
    )


def test_a_registered_modyn_format_config_reads_back_as_itself():
    config = load_pipeline(MODYN_FORMAT)  # services read pipelines back from their JSON in ClickHouse
    assert PipelineConfig.model_validate_json(config.model_dump_json()) == config


def test_validate_prints_the_notes():
    result = CliRunner().invoke(app, ["validate", str(MODYN_FORMAT)])
    assert result.exit_code == 0, result.output
    assert "note: training.gpus: training runs on one device" in result.output


def test_a_file_without_infrastructure_fields_gets_no_note_for_them():
    data = modyn_format()
    for name in (
        "gpus",
        "dataloader_workers",
        "num_prefetched_partitions",
        "parallel_prefetch_requests",
        "enable_accurate_gpu_measurements",
    ):
        del data["training"][name]
    config, problems = validate_data(data)
    assert not problems
    notes = pipeline_notes(config)
    assert not [n for n in notes if n.startswith("training.")]
    assert (
        "training: Modyn requires gpus (1), dataloader_workers (1), which this file leaves to the defaults here"
        in notes
    )
    assert not [n for n in pipeline_notes(load_pipeline(MODYN_FORMAT)) if "Modyn requires" in n], "it gives them all"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["data"].update(bytes_parser_function=UNSAFE),
         "data.bytes_parser_function: not one of Modyn's standard snippets (it is never run here): returns "
         "'os.system(ARG)', which is none of Modyn's standard parsers; name a decoder instead (data.decoder: raw,"),
        (lambda d: d["data"].update(decoder="csv_row"), "data: give decoder or bytes_parser_function, not both"),
        (lambda d: d["data"].update(transformations=["transforms.RandomErasing()"]),
         "data.transformations: RandomErasing is not supported; supported: ToTensor, Normalize, Resize, CenterCrop, "
         "RandomResizedCrop, RandomHorizontalFlip"),
        (lambda d: d["data"].update(label_transformer_function="def label_transformer_function(x):\n  return x * 2"),
         "data.label_transformer_function: not one of Modyn's standard snippets"),
        (lambda d: d["evaluation"]["datasets"][0]["metrics"][0].update(
            evaluation_transformer_function="def evaluation_transformer_function(x):\n  return x.exp()"),
         "evaluation.datasets[0].metrics[0].evaluation_transformer_function: not one of Modyn's standard snippets"),
        (lambda d: d["evaluation"]["datasets"][0]["metrics"][0].update(
            evaluation_transformer_function=SIGMOID),
         "evaluation.datasets[0].metrics[0]: Accuracy after sigmoid is not supported"),
        (lambda d: d["training"]["optimizers"][0].update(algorithm="Adamm"),
         "training.optimizers[0].algorithm: optimizer default: 'Adamm' is not a torch.optim optimizer"),
        (lambda d: d["training"]["optimizers"][0]["param_groups"][1].update(module="model.top_model"),
         "training.optimizers[0].param_groups[1].module: the model has no submodule 'model.top_model' (it has "
         "model.features, model.head)"),
        (lambda d: d["training"]["optimization_criterion"].update(name="CrossEntropy"),
         "training.optimization_criterion: optimization_criterion 'CrossEntropy' is not a torch.nn loss"),
        (lambda d: d["training"].update(gpus=2), "training.gpus: Input should be less than or equal to 1"),
        (lambda d: d["training"].update(amp=True, grad_scaler_config={"init_scal": 2.0}),
         "training.grad_scaler_config: torch.amp.GradScaler refuses it:"),
        (lambda d: d["training"]["optimizers"][0].update(source="APEX", algorithm="FusedLAMB"),
         "training.optimizers[0]: APEX optimizer 'FusedLAMB' has no torch equivalent here; APEX FusedSGD has"),
        (lambda d: d["training"].update(initial_model="pretrained", initial_model_id=3),
         "training: initial_model_id 3 is a Modyn model-storage id, which names nothing here"),
        (lambda d: d["evaluation"]["handlers"][0]["strategy"].update(interval="[+inf; +1d]"),
         "evaluation.handlers[0].strategy.interval: invalid interval '[+inf; +1d]': the left bound cannot be +inf"),
        (lambda d: d["data"].update(tokenizer="BertTokenizer"),
         "data.tokenizer: unknown tokenizer 'BertTokenizer'; known: DistilBertTokenizerTransform"),
        (lambda d: d["selection_strategy"].update(downsampling_config={"strategy": "RHOLoss", "ratio": 50}),
         "selection_strategy.downsampling_config: RHOLoss downsampling needs holdout_set_strategy, holdout_set_ratio, "
         "il_training_config"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_refused_in_one_line(change, problem):
    data = modyn_format()
    change(data)
    problems = validate_data(data)[1]
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_the_decoders_read_from_snippets_decode_as_modyns_code_would():
    config = load_pipeline(MODYN_FORMAT)
    pixels = torch.arange(64, dtype=torch.float32)
    decode = build_decoder(config.data.decoder, config.data.decoder_config, config.data.transformations)
    assert torch.equal(decode([pixels.numpy().tobytes()]), ((pixels.reshape(1, 1, 8, 8)) - 0.5) / 0.25)
    assert build_label_transformer(config.data.label_transformer)(torch.tensor([1, 2])).dtype == torch.float32


def test_criteo_records_decode_to_exact_dense_and_categorical_columns():
    dense = torch.arange(13, dtype=torch.float32) / 4
    ids = torch.tensor([2**31 - 1, 16_777_217] + [5] * 24, dtype=torch.int32)  # not exact in float32
    decoded = build_decoder("criteo", {})([dense.numpy().tobytes() + ids.numpy().tobytes()])
    assert torch.equal(decoded[0, :13], dense.double()) and torch.equal(decoded[0, 13:].long(), ids.long())


def test_dotted_param_group_modules_and_modyn_placeholders_are_honoured():
    config = load_pipeline(MODYN_FORMAT)
    model = build_model(config.model.id, config.model.config)
    optimizers = build_optimizers(model, config.training.optimizers)
    groups = optimizers["default"].param_groups
    assert type(optimizers["default"]).__name__ == "NAdam" and [g["lr"] for g in groups] == [0.01, 0.02]
    assert groups[1]["params"] == list(model.head.parameters())
    (scheduler,) = build_scheduler(config.training.lr_scheduler, optimizers, steps_per_epoch=7, epochs=3)
    assert scheduler.T_max == 21, "MODYN_NUM_BATCHES: the batches of all epochs"


def test_apex_fused_sgd_runs_as_torch_sgd_with_a_note():
    data = modyn_format()
    data["training"]["optimizers"][0].update(source="APEX", algorithm="FusedSGD")
    config, problems = validate_data(data)
    assert not problems
    assert "training.optimizers[0].source: APEX FusedSGD runs as torch.optim.SGD" in "\n".join(pipeline_notes(config))
    optimizers = build_optimizers(build_model("SmallCNN", {"num_classes": 10}), config.training.optimizers)
    assert type(optimizers["default"]) is torch.optim.SGD


def test_the_dlrm_scheduler_warms_up_and_decays_every_group():
    data = modyn_format()
    data["training"]["lr_scheduler"] = {
        "name": "DLRMScheduler", "source": "Custom", "step_every": "batch", "optimizers": ["default"],
        "config": {"base_lrs": [[0.4, 0.8]], "warmup_steps": 2, "warmup_factor": 0, "decay_start_step": 3,
                   "decay_steps": 2, "decay_power": 2, "end_lr_factor": 0.1},
    }  # fmt: skip
    config, problems = validate_data(data)
    assert not problems
    optimizers = build_optimizers(build_model("SmallCNN", {"num_classes": 10}), config.training.optimizers)
    (scheduler,) = build_scheduler(config.training.lr_scheduler, optimizers, 10, 1)
    seen = []
    for _ in range(6):
        scheduler.step()
        seen.append([round(g["lr"], 6) for g in optimizers["default"].param_groups])
    assert seen == [[0.2, 0.4], [0.4, 0.8], [0.4, 0.8], [0.1, 0.2], [0.04, 0.08], [0.04, 0.08]]


OLD_LAYOUT = Path(__file__).parent / "modyn" / "old_layout.yaml"


def test_import_modyn_converts_the_old_layout_and_says_what_it_changed(tmp_path):
    problems = validate_data(yaml.safe_load(OLD_LAYOUT.read_text()))[1]
    assert problems[-1].startswith("(top level): this is Modyn's pre-2024 layout: `modyn-stream import-modyn")
    result = CliRunner().invoke(app, ["import-modyn", str(OLD_LAYOUT), "-o", str(tmp_path / "new.yaml")])
    assert result.exit_code == 0, result.output
    for change in ("training.selection_strategy -> selection_strategy",
                   "selection_strategy.config.reset_after_trigger: True -> tail_triggers: 0",
                   "selection_strategy.presampling_config.strategy: RandomPresamplingStrategy -> Random",
                   "trigger.trigger_config.data_points_for_trigger -> trigger.num_samples",
                   "evaluation.datasets[0].metrics[1].name: F1-score -> F1Score",
                   "evaluation.handlers: added 'default'"):  # fmt: skip
        assert change in result.output, change
    config = load_pipeline(tmp_path / "new.yaml")
    assert config.trigger.num_samples == 500 and config.selection_strategy.tail_triggers == 0
    assert config.selection_strategy.presampling_config.ratio == 50 and config.data.decoder == "raw"
    assert [m.name for m in config.evaluation.datasets[0].metrics] == ["Accuracy", "F1Score", "RocAuc"]
    (handler,) = config.evaluation.handlers
    assert handler.models == "matrix" and handler.strategy.intervals[0][1] is None
    again = CliRunner().invoke(app, ["import-modyn", str(tmp_path / "new.yaml"), "-o", str(tmp_path / "same.yaml")])
    assert again.exit_code == 0 and "nothing to convert" in again.output
    assert yaml.safe_load((tmp_path / "same.yaml").read_text()) == yaml.safe_load((tmp_path / "new.yaml").read_text())


def test_import_modyn_refuses_what_has_no_current_equivalent(tmp_path):
    old = yaml.safe_load(OLD_LAYOUT.read_text())
    old["training"]["initial_pass"] = {"activated": True}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    result = CliRunner().invoke(app, ["import-modyn", str(tmp_path / "old.yaml"), "-o", str(tmp_path / "new.yaml")])
    assert result.exit_code == 1
    assert "training.initial_pass is activated: Modyn removed it" in result.output


def test_the_schema_accepts_exactly_the_label_transformers_the_trainer_has():
    from modyn_stream.pipeline.schema import data
    from modyn_stream.training import decoders

    assert set(data.LABEL_TRANSFORMERS) == set(decoders.LABEL_TRANSFORMERS)  # the schema imports no torch
