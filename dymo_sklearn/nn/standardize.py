"""Input standardisation inside the network, from training statistics over observed entries."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# A feature whose spread is below float32's resolution at its mean does not vary: it is
# shifted, not scaled, since dividing by that spread would turn rounding noise into large inputs.
_RESOLUTION = float(np.finfo(np.float32).eps)
_TINY = float(np.finfo(np.float32).tiny)


# Kinds standardised per channel, with the per-sample rank they need; another shape is refused
# by the encoder, with a message that says so.
_PER_CHANNEL = {"image": 3, "sequence": 2}


def _per_channel(kind, shape):
    return _PER_CHANNEL.get(kind) == len(shape)


def statistics_shape(kind, shape):
    """Shape of a modality's shift and scale: one per channel for images and sequences, else
    one per entry."""
    return (shape[0],) + (1,) * (len(shape) - 1) if _per_channel(kind, shape) else tuple(shape)


def input_statistics(array, kind, name="x"):
    """(shift, scale) of a NaN-marked modality (n, *shape): mean and standard deviation over its
    observed entries, per channel for images and sequences, per entry otherwise; shift 0 and scale 1 where
    nothing was observed, scale 1 where the values do not vary.

    A spread below float32's smallest normal number (values around 1e-40) cannot be divided by
    in float32: the modality ``name`` is refused with a ValueError asking to rescale it."""
    values = np.asarray(array, dtype=np.float64)
    axes = (0, *range(2, values.ndim)) if _per_channel(kind, values.shape[1:]) else (0,)
    observed = ~np.isnan(values)
    counts = observed.sum(axis=axes, keepdims=True)
    filled = np.where(observed, values, 0.0)
    mean = filled.sum(axis=axes, keepdims=True) / np.maximum(counts, 1)
    variance = (np.where(observed, values - mean, 0.0) ** 2).sum(axis=axes, keepdims=True) / np.maximum(counts, 1)
    scale = np.sqrt(variance)
    varies = (scale > 0) & (scale > _RESOLUTION * np.abs(mean))
    subnormal = (counts > 0) & varies & (scale < _TINY)
    if kind != "custom" and subnormal.any():
        raise ValueError(f"Modality {name!r} varies by {scale[subnormal].min():.3g}, below float32's smallest normal "
                         f"number ({_TINY:.3g}): standardising it would divide by almost zero. Rescale it (e.g. "
                         "multiply by 1e30), or pass standardize=False.")
    scale = np.where((counts > 0) & varies, scale, 1.0)
    shape = statistics_shape(kind, values.shape[1:])
    if kind == "custom":  # a factory's module gets the values it was written for (codes, raw units)
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    return mean.reshape(shape).astype(np.float32), scale.reshape(shape).astype(np.float32)


class InputStandardizer(nn.Module):
    """(values - shift) / scale on observed entries, 0 (the training mean) on missing ones.

    Parameters
    ----------
    kinds, shapes : per modality, the encoder kind and per-sample shape
    statistics : list of (shift, scale) per modality, optional
        None builds the identity, to be overwritten by a saved state.
    """

    def __init__(self, kinds, shapes, statistics=None):
        super().__init__()
        for index, (kind, shape) in enumerate(zip(kinds, shapes)):
            size = statistics_shape(kind, shape)
            shift, scale = statistics[index] if statistics is not None else (np.zeros(size), np.ones(size))
            self.register_buffer(f"shift_{index}", torch.as_tensor(np.asarray(shift, dtype=np.float32)).reshape(size))
            self.register_buffer(f"scale_{index}", torch.as_tensor(np.asarray(scale, dtype=np.float32)).reshape(size))

    def forward(self, index, values, observed):
        shift, scale = getattr(self, f"shift_{index}"), getattr(self, f"scale_{index}")
        standardized = (values - shift.to(values.dtype)) / scale.to(values.dtype)
        return torch.where(observed, standardized, torch.zeros((), dtype=values.dtype, device=values.device))
