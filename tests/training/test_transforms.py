"""Transformations as torchvision's, and random ones reproducible from their seed."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from modyn_stream.pipeline.snippets import transformation
from modyn_stream.training.decoders import build_decoder
from modyn_stream.training.exceptions import PayloadError
from modyn_stream.training.transforms import build_transform, center_crop, random_resized_crop, resize


def png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_resize_sets_the_shorter_side_and_keeps_the_aspect_ratio():
    assert resize(torch.rand(2, 3, 40, 60), 20).shape == (2, 3, 20, 30)
    assert resize(torch.rand(1, 1, 60, 40), 20).shape == (1, 1, 30, 20)
    assert resize(torch.rand(1, 1, 60, 40), [8, 9]).shape == (1, 1, 8, 9)
    flat = torch.full((1, 1, 10, 10), 0.25)
    assert torch.allclose(resize(flat, 4), torch.full((1, 1, 4, 4), 0.25)), "a constant image stays constant"


def test_center_crop_takes_the_middle():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert center_crop(x, 2).flatten().tolist() == [14.0, 15.0, 20.0, 21.0]


def test_random_resized_crop_is_a_resized_part_of_the_image_and_reproducible():
    x = torch.arange(100.0).reshape(1, 1, 10, 10)
    first = random_resized_crop(x, 4, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(3))
    again = random_resized_crop(x, 4, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(3))
    other = random_resized_crop(x, 4, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(4))
    assert first.shape == (1, 1, 4, 4) and torch.equal(first, again) and not torch.equal(first, other)
    assert x.min() <= first.min() and first.max() <= x.max()
    whole = random_resized_crop(x, 10, (1.0, 1.0), (1.0, 1.0), torch.Generator())
    assert torch.allclose(whole, x), "all of the area at ratio 1 is the image itself"


def test_horizontal_flips_are_drawn_per_sample_with_probability_p():
    x = torch.arange(2.0).reshape(1, 1, 1, 2).repeat(1000, 1, 1, 1)
    flipped = build_transform([{"name": "RandomHorizontalFlip"}], generator=torch.Generator().manual_seed(0))(x)
    share = float((flipped[:, 0, 0, 0] == 1.0).float().mean())
    assert 0.45 < share < 0.55


def test_images_of_any_size_decode_to_one_batch_after_a_random_crop_the_same_way_each_time():
    payloads = [png(30, 20, 1), png(16, 40, 2), png(25, 25, 3)]
    steps = ["transforms.RandomResizedCrop(8)", "transforms.RandomHorizontalFlip()"]
    specs = [transformation(s) for s in steps]
    first = build_decoder("image", {"mode": "RGB"}, specs, seed=5)(payloads)
    assert first.shape == (3, 3, 8, 8)
    assert torch.equal(first, build_decoder("image", {"mode": "RGB"}, specs, seed=5)(payloads))
    assert not torch.equal(first, build_decoder("image", {"mode": "RGB"}, specs, seed=6)(payloads))
    with pytest.raises(PayloadError, match=r"images of sizes .* in one batch; add a Resize"):
        build_decoder("image", {"mode": "RGB"}, [])(payloads)
