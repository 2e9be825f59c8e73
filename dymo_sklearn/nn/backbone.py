"""The shared backbone of both estimators' networks: per-modality encoders (with input
standardisation) and the masked fusion transformer with a [CLS] token."""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from .._random import Dropout, Stochastic, dropout
from .encoders import build_encoder, encoder_kind
from .standardize import InputStandardizer


def split_missing(values):
    """NaN-marked values -> (values with 0 where missing, boolean mask of observed entries)."""
    observed = ~torch.isnan(values)
    return torch.where(observed, values, torch.zeros((), dtype=values.dtype, device=values.device)), observed


class FusionBlock(Stochastic, nn.Module):
    """Pre-norm transformer block whose attention ignores masked keys."""

    def __init__(self, d_model, n_heads, dropout):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}.")
        self.n_heads = n_heads
        self.dropout = dropout
        self.norm_attention = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attention_out = nn.Linear(d_model, d_model)
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))
        self.drop = Dropout(dropout)

    def forward(self, x, key_mask, *, queries=None):
        """Transform tokens ``x`` (B, L, d), attending only to keys where ``key_mask`` (B, L) holds.

        With ``queries=q`` only the first q tokens are computed (all tokens still serve as keys
        and values): the same values for those tokens, for less work.
        """
        batch, length, d_model = x.shape
        head_dim = d_model // self.n_heads
        normed = self.norm_attention(x)
        if queries is None:
            qkv = self.qkv(normed).view(batch, length, 3, self.n_heads, head_dim)
            query, key, value = qkv.permute(2, 0, 3, 1, 4)
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
            query = F.linear(normed[:, :queries], weight[:d_model], bias[:d_model])
            query = query.view(batch, queries, self.n_heads, head_dim).transpose(1, 2)
            key_value = F.linear(normed, weight[d_model:], bias[d_model:]).view(batch, length, 2, self.n_heads, head_dim)
            key, value = key_value.permute(2, 0, 3, 1, 4)
            x = x[:, :queries]
        attended = self._attend(query, key, value, key_mask[:, None, None, :])
        x = x + self.drop(self.attention_out(attended.transpose(1, 2).reshape(batch, x.shape[1], d_model)))
        return x + self.drop(self.mlp(self.norm_mlp(x)))

    def _attend(self, query, key, value, mask):
        if not (self.training and self.dropout > 0):
            return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        # Written out in training: the fused kernel's attention dropout cannot take a generator.
        scores = (query @ key.transpose(-2, -1)) * query.shape[-1] ** -0.5
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return dropout(weights, self.dropout, True, self.generator) @ value


class FusionTransformer(nn.Module):
    """[CLS] + modality tokens (+ modality embeddings); absent modalities are zeroed key-masked.

    The [CLS] token is always a valid key, so no attention row is ever fully masked, and the
    content of an absent modality cannot reach the [CLS] output.
    """

    def __init__(self, token_modality, n_modalities, d_model, n_heads, n_layers, dropout):
        super().__init__()
        self.register_buffer("token_modality", torch.as_tensor(token_modality, dtype=torch.long))
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.modality_embedding = nn.Embedding(n_modalities, d_model)
        self.blocks = nn.ModuleList(FusionBlock(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tokens, present):
        """Fuse tokens (B, L, d) given which modalities are present (B, M); returns (B, d)."""
        token_present = present[:, self.token_modality]
        embedded = tokens + self.modality_embedding(self.token_modality)
        x = torch.where(token_present[..., None], embedded, torch.zeros((), dtype=tokens.dtype, device=tokens.device))
        batch = x.shape[0]
        x = torch.cat([self.cls.expand(batch, -1, -1), x], dim=1)
        key_mask = torch.cat([token_present.new_ones(batch, 1), token_present], dim=1)
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            # Only [CLS] leaves the last block at inference; training runs every token.
            x = block(x, key_mask, queries=1 if index == last and not self.training else None)
        return self.norm(x[:, 0])


class Backbone(Stochastic, nn.Module):
    """Encoders (each modality encoded once) and the fusion transformer; no head.

    DyMo's and MARS's networks extend it with their heads. ``pass_counts`` counts encoded rows
    per modality and fused rows, for forward-pass accounting.
    """

    def __init__(self, modality_names, modality_shapes, encoder_specs, d_model=64, n_heads=4, n_layers=2,
                 dropout=0.1, standardize_inputs=False, input_scaling=None):
        super().__init__()
        self.modality_names = list(modality_names)
        self.modality_shapes = [tuple(shape) for shape in modality_shapes]
        self.n_modalities = len(self.modality_shapes)
        self.encoders = nn.ModuleList(
            build_encoder(spec, shape, d_model) for spec, shape in zip(encoder_specs, self.modality_shapes)
        )
        token_modality = []
        with torch.no_grad():
            for index, (encoder, shape) in enumerate(zip(self.encoders, self.modality_shapes)):
                probe = encoder(torch.zeros(1, *shape), torch.ones(1, *shape, dtype=torch.bool))
                if probe.ndim != 3 or probe.shape[0] != 1 or probe.shape[2] != d_model:
                    raise ValueError(
                        f"Encoder of modality {index} must return (batch, tokens, {d_model}), got {tuple(probe.shape)}."
                    )
                token_modality += [index] * probe.shape[1]
        self.fusion = FusionTransformer(token_modality, self.n_modalities, d_model, n_heads, n_layers, dropout)
        # Observed and recovered values alike pass through it before their encoder.
        self.standardizer = InputStandardizer(
            [encoder_kind(spec, shape) for spec, shape in zip(encoder_specs, self.modality_shapes)],
            self.modality_shapes, input_scaling) if standardize_inputs else None
        self.pass_counts = Counter()

    def encode_modality(self, index, values, observed):
        """Tokens (B, T_m, d) of one modality from zero-filled values and the observed mask."""
        self.pass_counts[f"encoder_{index}"] += values.shape[0]
        if self.standardizer is not None:
            values = self.standardizer(index, values, observed)
        return self.encoders[index](values, observed)

    def drop_entries(self, inputs, rate):
        """Training augmentation: each sample hides a random fraction U(0, ``rate``) of the
        observed entries of each modality (NaN-marked ``inputs`` in, NaN-marked out)."""
        dropped = {}
        for name in self.modality_names:
            values, observed = split_missing(inputs[name])
            device, generator = observed.device, self.generator
            fraction = torch.rand(observed.shape[0], *[1] * (observed.ndim - 1), generator=generator, device=device)
            keep = observed & (torch.rand(observed.shape, generator=generator, device=device) >= fraction * rate)
            dropped[name] = torch.where(keep, values, torch.full_like(values, float("nan")))
        return dropped

    def fuse(self, tokens, present):
        """[CLS] representation (B, d) of tokens (B, L, d) with modality presence (B, M)."""
        self.pass_counts["fusion"] += tokens.shape[0]
        return self.fusion(tokens, present)

    @property
    def token_modality(self):
        """Modality index of each token, (L,)."""
        return self.fusion.token_modality

    @property
    def token_counts(self):
        """Number of tokens of each modality."""
        return torch.bincount(self.fusion.token_modality, minlength=self.n_modalities).tolist()

    @property
    def d_model(self):
        return self.fusion.cls.shape[-1]

    def encode(self, inputs):
        """Tokens (B, L, d) of the observed entries and modality presence (B, M).

        ``inputs`` maps each modality name to a NaN-marked tensor.
        """
        tokens, present = [], []
        for index, name in enumerate(self.modality_names):
            values, observed = split_missing(inputs[name])
            tokens.append(self.encode_modality(index, values, observed))
            present.append(observed.flatten(1).any(dim=1))
        return torch.cat(tokens, dim=1), torch.stack(present, dim=1)
