"""Distances between projected representations and prototypes (cosine or squared Euclidean)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DISTANCES = ("cosine", "sqeuclidean")


def pairwise_distance(z, prototypes, metric):
    """Distance of every row of ``z`` (N, P) to every prototype (K, P); returns (N, K)."""
    if metric == "cosine":
        return (1.0 - F.normalize(z, dim=-1) @ F.normalize(prototypes, dim=-1).T).clamp_min(0.0)
    if metric == "sqeuclidean":
        return (z[:, None, :] - prototypes[None, :, :]).pow(2).sum(-1)
    raise ValueError(f"Unknown distance {metric!r}; expected one of {DISTANCES}.")


def paired_distance(z, prototypes, metric):
    """Distance of each row of ``z`` (N, P) to its own prototype row (N, P); returns (N,)."""
    if metric == "cosine":
        return (1.0 - (F.normalize(z, dim=-1) * F.normalize(prototypes, dim=-1)).sum(-1)).clamp_min(0.0)
    if metric == "sqeuclidean":
        return (z - prototypes).pow(2).sum(-1)
    raise ValueError(f"Unknown distance {metric!r}; expected one of {DISTANCES}.")


def prototype_log_probabilities(z, prototypes, metric, temperature):
    """log p(k | z) = log softmax_k(-d(z, c_k) / t)."""
    return torch.log_softmax(-pairwise_distance(z, prototypes, metric) / temperature, dim=-1)
