"""Per-modality encoders: each maps (values, observed-entry mask) to a few d_model tokens."""

from __future__ import annotations

import math

import torch
from torch import nn

ENCODER_KINDS = ("vector", "image", "sequence")


def infer_kind(shape):
    """Encoder kind for a per-sample shape: ``(C, H, W)`` with C <= 4 and H, W >= 4 is an image.

    Anything else is flattened into a vector; a (3, 100) sensor array is not an image. Declare
    the kind explicitly (``encoders={"name": "image"}``, ``{"name": "sequence"}`` for a
    ``(channels, time)`` recording) to override.
    """
    if len(shape) == 3 and shape[0] <= 4 and min(shape[1:]) >= 4:
        return "image"
    return "vector"


class VectorEncoder(nn.Module):
    """MLP on the flattened values and their observed-entry mask, giving ``n_tokens`` tokens."""

    def __init__(self, input_shape, d_model, n_tokens=1, hidden=128):
        super().__init__()
        n_features = math.prod(input_shape)
        self.n_tokens = n_tokens
        self.d_model = d_model
        self.net = nn.Sequential(
            nn.Linear(2 * n_features, hidden),
            nn.GELU(),
            nn.Linear(hidden, d_model * n_tokens),
        )

    def forward(self, values, observed):
        inputs = torch.cat([values.flatten(1), observed.flatten(1).to(values.dtype)], dim=1)
        return self.net(inputs).view(-1, self.n_tokens, self.d_model)


class ImageEncoder(nn.Module):
    """Small CNN on (values, mask) channels; a 4x4 pooled map is projected to ``n_tokens`` tokens.

    Projecting the whole pooled map (rather than one token per cell) keeps spatial layout,
    which the order-blind fusion attention could not recover.
    """

    def __init__(self, input_shape, d_model, channels=32, n_tokens=2):
        super().__init__()
        in_channels = input_shape[0]
        downsample = 2 if min(input_shape[1:]) >= 16 else 1
        self.n_tokens = n_tokens
        self.d_model = d_model
        self.net = nn.Sequential(
            nn.Conv2d(2 * in_channels, channels // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 3, padding=1, stride=downsample),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(channels * 16, d_model * n_tokens),
        )

    def forward(self, values, observed):
        inputs = torch.cat([values, observed.to(values.dtype)], dim=1)
        return self.net(inputs).view(-1, self.n_tokens, self.d_model)


class SequenceEncoder(nn.Module):
    """Temporal convolutions on (values, mask) channels of a ``(channels, time)`` recording; 8
    pooled time segments are projected to ``n_tokens`` tokens.

    Convolutions see local shape (a step, a swing) wherever it occurs in time; projecting the
    pooled segments together keeps their order, which the fusion attention could not recover.

    Parameters
    ----------
    input_shape : (channels, time)
    d_model : int
        Width of each token.
    channels : int, default=32
        Output channels of the second convolution (the first has half).
    n_tokens : int, default=2
    kernel_size : int, default=5
        Time steps each convolution sees; the second one strides by 2 on recordings of at least
        ``4 * segments`` steps.
    segments : int, default=8
        Time segments the feature maps are averaged into before the projection.
    """

    def __init__(self, input_shape, d_model, channels=32, n_tokens=2, kernel_size=5, segments=8):
        super().__init__()
        in_channels, length = input_shape
        stride = 2 if length >= 4 * segments else 1
        self.n_tokens = n_tokens
        self.d_model = d_model
        self.net = nn.Sequential(
            nn.Conv1d(2 * in_channels, channels // 2, kernel_size, padding=kernel_size // 2),
            nn.ReLU(),
            nn.Conv1d(channels // 2, channels, kernel_size, padding=kernel_size // 2, stride=stride),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(segments),
            nn.Flatten(),
            nn.Linear(channels * segments, d_model * n_tokens),
        )

    def forward(self, values, observed):
        inputs = torch.cat([values, observed.to(values.dtype)], dim=1)
        return self.net(inputs).view(-1, self.n_tokens, self.d_model)


def encoder_kind(spec, input_shape):
    """"vector", "image" or "custom" (a factory) for an encoder spec and per-sample shape."""
    if spec is None:
        return infer_kind(input_shape)
    return spec if isinstance(spec, str) else "custom"


def build_encoder(spec, input_shape, d_model):
    """Build one encoder from a kind name, ``None`` (inferred from the shape) or a factory.

    A factory is a callable ``factory(input_shape, d_model) -> nn.Module`` whose module maps
    ``(values, observed)`` of shape ``(batch, *input_shape)`` to tokens ``(batch, T, d_model)``.
    """
    kind = infer_kind(input_shape) if spec is None else spec
    if callable(kind) and not isinstance(kind, str):
        module = kind(tuple(input_shape), d_model)
        if not isinstance(module, nn.Module):
            raise TypeError(f"Encoder factory {kind!r} returned {type(module).__name__}, not an nn.Module.")
        return module
    if kind == "vector":
        return VectorEncoder(input_shape, d_model)
    if kind == "image":
        if len(input_shape) != 3:
            raise ValueError(f"An image encoder needs per-sample shape (C, H, W), got {tuple(input_shape)}.")
        return ImageEncoder(input_shape, d_model)
    if kind == "sequence":
        if len(input_shape) != 2:
            raise ValueError(f"A sequence encoder needs per-sample shape (channels, time), got {tuple(input_shape)}.")
        return SequenceEncoder(input_shape, d_model)
    raise ValueError(f"Unknown encoder kind {kind!r}; expected one of {ENCODER_KINDS} or a factory.")
