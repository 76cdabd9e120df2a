"""Modyn's DLRM (NVIDIA's recipe, as Modyn configures it), in plain torch: runs on CPU and GPU alike.

Dense features go through the bottom MLP; each categorical feature has an embedding table of its
cardinality (`categorical_features_info`, capped by `max_table_size`, ids taken modulo the table size
with `hash_indices`); the bottom output and the embeddings interact (`dot`: their pairwise dot
products with the bottom output; `cat`: all of them concatenated) and the top MLP gives one logit.
Modyn's CUDA-only variants compute the same function and run as these torch layers here:
`interaction_op: cuda_dot` as `dot`, every `embedding_type` as one table per feature, `use_cpp_mlp`
as torch's Linear layers (notes say so).

Input: Modyn's dict (`numerical_input`, `categorical_input`) or one tensor of the dense columns then
the ids (the `criteo` decoder's).

>>> model = DLRM(embedding_dim=4, interaction_op="dot", hash_indices=False, bottom_mlp_sizes=[8, 4],
...              top_mlp_sizes=[8, 1], embedding_type="joint", num_numerical_features=3, use_cpp_mlp=False,
...              categorical_features_info={"cat_0": 5, "cat_1": 7})
>>> model(torch.zeros(6, 5)).shape
torch.Size([6])
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from torch import nn

INTERACTIONS = ("dot", "cuda_dot", "cat")
EMBEDDING_TYPES = ("joint", "joint_fused", "joint_sparse", "multi_table")


class DLRM(nn.Module):
    def __init__(
        self,
        embedding_dim: int,
        interaction_op: Literal["dot", "cuda_dot", "cat"],
        hash_indices: bool,
        bottom_mlp_sizes: list[int],
        top_mlp_sizes: list[int],
        embedding_type: Literal["joint", "joint_fused", "joint_sparse", "multi_table"],
        num_numerical_features: int,
        use_cpp_mlp: bool,
        categorical_features_info: dict[str, int],
        max_table_size: int | None = None,
    ):
        super().__init__()
        if interaction_op not in INTERACTIONS or embedding_type not in EMBEDDING_TYPES:
            raise ValueError(f"interaction_op is one of {INTERACTIONS} and embedding_type one of {EMBEDDING_TYPES}")
        if interaction_op != "cat" and bottom_mlp_sizes[-1] != embedding_dim:
            raise ValueError("a dot interaction needs the last bottom MLP size to equal embedding_dim")
        sizes = [min(n, max_table_size) if max_table_size else n for n in categorical_features_info.values()]
        self.register_buffer("table_sizes", torch.tensor(sizes), persistent=False)
        self.num_dense, self.hash_indices, self.dot = num_numerical_features, hash_indices, interaction_op != "cat"
        self.bottom_model = nn.Module()  # Modyn's module names, which its param_groups refer to
        self.bottom_model.mlp = _mlp([num_numerical_features, *bottom_mlp_sizes], last_relu=True)
        self.bottom_model.embeddings = nn.ModuleList(nn.Embedding(n, embedding_dim) for n in sizes)
        features = len(sizes) + 1
        width = bottom_mlp_sizes[-1] + (features * (features - 1) // 2 if self.dot else len(sizes) * embedding_dim)
        self.top_model = nn.Module()
        self.top_model.mlp = _mlp([width, *top_mlp_sizes[:-1]], last_relu=True)
        self.top_model.classifier = nn.Linear(([width, *top_mlp_sizes])[-2], top_mlp_sizes[-1])

    @property
    def classifier(self) -> nn.Module:
        return self.top_model.classifier

    @staticmethod
    def config_notes(config: dict) -> list[str]:
        """What of a DLRM config runs differently here, as 'field: note' lines (pipeline/notes.py prints them)."""
        notes = []
        if config.get("interaction_op") == "cuda_dot":
            notes.append("interaction_op: cuda_dot is computed as dot (the same function, in torch)")
        if config.get("embedding_type", "joint") != "joint":
            notes.append(f"embedding_type: {config['embedding_type']} runs as one torch table per feature")
        if config.get("use_cpp_mlp"):
            notes.append("use_cpp_mlp: the MLPs are torch's Linear layers")
        return notes

    def forward(self, data: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(data, dict):
            dense, ids = data["numerical_input"].float(), data["categorical_input"].long()
        else:
            dense, ids = data[:, : self.num_dense].float(), data[:, self.num_dense :].long()
        if self.hash_indices:
            ids = torch.remainder(ids, self.table_sizes)
        bottom = self.bottom_model.mlp(dense)
        embedded = [table(ids[:, i]) for i, table in enumerate(self.bottom_model.embeddings)]
        if self.dot:
            stacked = torch.stack([bottom, *embedded], dim=1)  # (batch, features, dim)
            products = stacked @ stacked.transpose(1, 2)
            rows, cols = torch.tril_indices(stacked.shape[1], stacked.shape[1], offset=-1, device=stacked.device)
            interacted = torch.cat([bottom, products[:, rows, cols]], dim=1)
        else:
            interacted = torch.cat([bottom, *embedded], dim=1)
        return self.top_model.classifier(self.top_model.mlp(interacted)).squeeze(-1)


def _mlp(sizes: list[int], last_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (inputs, outputs) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(inputs, outputs))
        if last_relu or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
