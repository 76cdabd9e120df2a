"""Modyn's model zoo: every model builds from Modyn's config keys, trains a step, and gives embeddings."""

import pytest
import torch

from modyn_stream.training.embeddings import forward_with_embeddings, last_layer
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.models import build_model, model_with_weights
from modyn_stream.training.zoo import architecture_only, weights_file

DLRM_CONFIG = {  # Modyn's keys, CUDA-only variants included (they run as torch layers)
    "embedding_dim": 4, "interaction_op": "cuda_dot", "hash_indices": True, "bottom_mlp_sizes": [8, 4],
    "top_mlp_sizes": [16, 8, 1], "embedding_type": "joint_fused", "num_numerical_features": 3, "use_cpp_mlp": True,
    "categorical_features_info": {"cat_0": 5, "cat_1": 1000}, "max_table_size": 7,
}  # fmt: skip
CASES = {  # model id: (Modyn's config, an input batch, the embedding width)
    "YearbookNet": ({"num_input_channels": 3, "num_classes": 2}, torch.rand(4, 3, 32, 32), 32),
    "SmallYearbookNet": ({"num_input_channels": 1, "num_classes": 2}, torch.rand(4, 1, 32, 32), 16),
    "ResNet18": ({"num_classes": 10}, torch.rand(2, 3, 64, 64), 512),
    "ResNet50": ({"num_classes": 5}, torch.rand(2, 3, 64, 64), 2048),
    "ResNet152": ({"num_classes": 5}, torch.rand(2, 3, 32, 32), 2048),
    "FmowNet": ({"num_classes": 62, "use_pretrained": False}, torch.rand(2, 3, 64, 64), 1024),
    "Dummy": ({}, torch.rand(4, 2), 2),
    "DLRM": (DLRM_CONFIG, torch.cat([torch.rand(4, 3), torch.randint(0, 5, (4, 2)).float()], dim=1), 8),
}


@pytest.mark.parametrize("model_id", CASES)
def test_each_model_trains_a_step_and_records_its_embeddings(model_id):
    config, x, width = CASES[model_id]
    torch.manual_seed(0)
    model = build_model(model_id, config)
    outputs, embedded = forward_with_embeddings(model, x)
    assert embedded.shape == (len(x), width) and outputs.shape[0] == len(x)
    assert torch.allclose(last_layer(model)(embedded).reshape(outputs.shape), outputs, atol=1e-5), (
        "its last layer's input"
    )
    if outputs.dim() == 1:  # one logit (DLRM)
        torch.nn.functional.binary_cross_entropy_with_logits(outputs, torch.ones(len(x))).backward()
    else:
        torch.nn.functional.cross_entropy(outputs, torch.zeros(len(x), dtype=torch.long)).backward()
    head = last_layer(model).weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    before = head.detach().clone()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, head.detach())
    reloaded = model_with_weights(model_id, config, model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values(),
                                                 strict=True))  # fmt: skip


def test_resnets_take_modyn_stream_stems_for_small_or_grey_images():
    model = build_model("ResNet18", {"num_classes": 10, "in_channels": 1, "small_input": True})
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_pretrained_weights_are_read_from_the_torch_hub_cache_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from torchvision.models import ResNet18_Weights

    with pytest.raises(TrainingError, match=r"use_pretrained needs resnet18-\w+\.pth in .*checkpoints \(download "):
        build_model("ResNet18", {"num_classes": 10, "use_pretrained": True})
    with architecture_only():  # as when validating: only the shape
        assert build_model("ResNet18", {"num_classes": 10, "use_pretrained": True}).fc.out_features == 10
    # a cache that has the file (here: weights we make, in torchvision's layout) is read
    torch.manual_seed(1)
    imagenet = build_model("ResNet18", {"num_classes": 1000}).state_dict()
    path = weights_file(ResNet18_Weights.DEFAULT)
    path.parent.mkdir(parents=True)
    torch.save(imagenet, path)
    model = build_model("ResNet18", {"num_classes": 10, "use_pretrained": True})
    assert torch.equal(model.conv1.weight, imagenet["conv1.weight"]) and model.fc.out_features == 10


def test_dlrm_takes_modyns_dict_input_and_folds_ids_into_capped_tables():
    model = build_model("DLRM", DLRM_CONFIG)
    assert [e.num_embeddings for e in model.bottom_model.embeddings] == [5, 7], "max_table_size caps the tables"
    dense, ids = torch.rand(3, 3), torch.tensor([[1, 999], [6, 13], [4, 6]])
    as_dict = model({"numerical_input": dense, "categorical_input": ids})
    folded = model(torch.cat([dense, (ids % torch.tensor([5, 7])).float()], dim=1))
    assert torch.allclose(as_dict, folded), "hash_indices: ids modulo the table size"


def test_models_name_the_config_they_run_differently_or_ignore():
    from modyn_stream.training.models import MODELS

    assert [line.split(":")[0] for line in MODELS["DLRM"].config_notes(DLRM_CONFIG)] == [
        "interaction_op", "embedding_type", "use_cpp_mlp"]  # fmt: skip
    assert MODELS["Dummy"].config_notes({"num_classes": 10}) == ["num_classes: Dummy does not read it (as in Modyn)"]
