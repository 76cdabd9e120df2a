"""Code a test pipeline names by module:function: importable only where the operator trusts this module."""

import numpy as np
import torch


def decode_digits(payloads: list[bytes]) -> torch.Tensor:
    pixels = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(payloads), 1, 8, 8)
    return torch.from_numpy(pixels.astype(np.float32) / 16)
