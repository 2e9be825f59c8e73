"""Where tensors live: the one reading of the ``device`` parameter."""

from __future__ import annotations

import torch


def resolve_device(device):
    """"auto" -> "cuda" when available, else "cpu"; "cuda" without CUDA is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='cpu' or 'auto'.")
    return device


def to_device(arrays, device):
    """Every array of a batch (dict of name to array) as a tensor on ``device``."""
    return {name: torch.as_tensor(array, device=device) for name, array in arrays.items()}
