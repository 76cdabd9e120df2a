"""Modyn's text workload (Wild-Time's arXiv and HuffPost): `ArticleNet`, DistilBERT with a linear classifier on its
first token, and `DistilBertTokenizerTransform`, which turns each text into (token id, attention mask) pairs.

Both need `distilbert-base-uncased` from the Hugging Face cache (`HF_HOME` or `HF_HUB_CACHE`, default
~/.cache/huggingface/hub) and never download it: where it is missing they stop with one line that says how to
provide it. The `transformers` package is an extra (`pip install 'modyn-stream[text]'`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from modyn_stream.training.exceptions import PayloadError, TrainingError

HF_MODEL = "distilbert-base-uncased"
MAX_TOKEN_LENGTH = 300  # Modyn's DistilBertTokenizerTransform default


def _transformers():
    try:
        import transformers
    except ImportError:
        raise TrainingError("ArticleNet and DistilBertTokenizerTransform need the transformers package: "
                            "pip install 'modyn-stream[text]'") from None  # fmt: skip
    return transformers


def _cache() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return os.path.join(os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")


def _local(what: str, load, needs: str = "config.json"):
    """`load` of HF_MODEL's cached snapshot (`needs` must be in it: transformers would build an empty tokenizer
    without its vocabulary), or one line saying what is missing and how to provide it."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(HF_MODEL, needs, cache_dir=_cache())
    try:
        if not isinstance(found, str):
            raise OSError(needs)
        return load(os.path.dirname(found), local_files_only=True)
    except OSError:
        raise TrainingError(
            f"{what} needs {HF_MODEL} in the Hugging Face cache {_cache()}, which does not have it (nothing is "
            f"downloaded here): on a machine with network run `hf download {HF_MODEL}` and copy its "
            f"models--{HF_MODEL} folder into that cache, or set HF_HUB_CACHE to a cache that has it"
        ) from None


def missing() -> str | None:
    """Why ArticleNet or the tokenizer could not load here, or None (for `validate`)."""
    try:
        _local("ArticleNet", _transformers().DistilBertConfig.from_pretrained)
    except TrainingError as exc:
        return str(exc)
    return None


def tokens_decoder(max_token_length: int = MAX_TOKEN_LENGTH):
    """UTF-8 payloads -> (N, max_token_length, 2): DistilBERT token ids and attention mask, padded and cut to
    `max_token_length`, as Modyn's DistilBertTokenizerTransform."""
    tokenizer = _local("DistilBertTokenizerTransform", _transformers().DistilBertTokenizer.from_pretrained, "vocab.txt")

    def decode(payloads: Sequence[bytes]) -> torch.Tensor:
        try:
            texts = [p.decode("utf-8") for p in payloads]
        except UnicodeDecodeError as exc:
            raise PayloadError(f"tokenizer: a payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        tokens = tokenizer(texts, padding="max_length", truncation=True, max_length=max_token_length,
                           return_tensors="pt")  # fmt: skip
        return torch.stack((tokens["input_ids"], tokens["attention_mask"]), dim=2)

    return decode


class ArticleNet(nn.Module):
    """Modyn's ArticleNet (from Wild-Time): DistilBERT's hidden state of the first token, then `classifier`. Its
    input is the tokenizer's (N, L, 2) ids and mask; the embedding drift and downsampling read is that state."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        from modyn_stream.training.zoo import loads_pretrained

        transformers = _transformers()
        if loads_pretrained():
            self.featurizer = _local("ArticleNet", transformers.DistilBertModel.from_pretrained)
        else:  # the shape only (the state comes from a stored model version): the cached config, else its defaults,
            try:  # which are distilbert-base-uncased's
                config = _local("ArticleNet", transformers.DistilBertConfig.from_pretrained)
            except TrainingError:
                config = transformers.DistilBertConfig()
            self.featurizer = transformers.DistilBertModel(config)
        self.classifier = nn.Linear(self.featurizer.config.dim, num_classes)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        hidden = self.featurizer(input_ids=data[:, :, 0], attention_mask=data[:, :, 1])[0]
        return self.classifier(hidden[:, 0])
