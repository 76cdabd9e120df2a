import pytest
import torch

from modyn_stream.training.models import build_model, model_with_weights

CONFIGS = {
    "MLP": {"in_features": 4, "num_classes": 3, "hidden": [8]},
    "SmallCNN": {"num_classes": 10},
    "ResNet18": {"num_classes": 10},
    "TabularDLRM": {"num_dense": 3, "cardinalities": [5, 7], "num_classes": 2},
}


@pytest.mark.parametrize("model_id", CONFIGS)
def test_model_with_weights_holds_exactly_the_state_and_draws_no_random_numbers(model_id):
    torch.manual_seed(0)
    state = build_model(model_id, CONFIGS[model_id]).state_dict()
    generator = torch.get_rng_state()
    model = model_with_weights(model_id, CONFIGS[model_id], state)
    assert torch.equal(torch.get_rng_state(), generator)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for name, tensor in state.items():
        assert loaded[name].device.type == "cpu"
        assert torch.equal(loaded[name], tensor), name
