"""The DyMo network: encoders -> masked fusion transformer with [CLS] -> classifier + projection."""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import build_encoder


class FusionBlock(nn.Module):
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
        self.drop = nn.Dropout(dropout)

    def forward(self, x, key_mask):
        batch, length, d_model = x.shape
        qkv = self.qkv(self.norm_attention(x)).view(batch, length, 3, self.n_heads, d_model // self.n_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            query, key, value,
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        x = x + self.drop(self.attention_out(attended.transpose(1, 2).reshape(batch, length, d_model)))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


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
        for block in self.blocks:
            x = block(x, key_mask)
        return self.norm(x[:, 0])


def subset_bits(codes, n_modalities):
    """Boolean (len(codes), M) membership matrix of integer subset codes (bit m = modality m)."""
    shifts = torch.arange(n_modalities, device=codes.device)
    return ((codes[:, None] >> shifts) & 1).bool()


class DyMoNetwork(nn.Module):
    """Encoders, fusion transformer, classifier head and projection head.

    In training mode ``forward`` encodes each modality once and fuses ``n_subsets`` random
    modality subsets (intersected with what each sample has), returning logits ``(A, B, K)`` and
    projections ``(A, B, P)``. In eval mode it fuses everything present once (``A = 1``).

    ``pass_counts`` counts encoded rows per modality and fused rows, for forward-pass accounting.
    """

    def __init__(
        self,
        modality_names,
        modality_shapes,
        encoder_specs,
        n_classes,
        d_model=64,
        n_heads=4,
        n_layers=2,
        projection_dim=32,
        dropout=0.1,
        n_subsets=4,
        entry_dropout=0.2,
    ):
        super().__init__()
        self.modality_names = list(modality_names)
        self.modality_shapes = [tuple(shape) for shape in modality_shapes]
        self.n_modalities = len(self.modality_shapes)
        self.n_subsets = n_subsets
        self.entry_dropout = entry_dropout
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
        self.classifier = nn.Linear(d_model, n_classes)
        self.projection = nn.Linear(d_model, projection_dim)
        self.register_buffer("prototypes", torch.zeros(n_classes, projection_dim))
        self.aux_active = False
        self.pass_counts = Counter()

    def encode_modality(self, index, values, observed):
        """Tokens (B, T_m, d) of one modality from zero-filled values and the observed mask."""
        self.pass_counts[f"encoder_{index}"] += values.shape[0]
        return self.encoders[index](values, observed)

    def fuse(self, tokens, present):
        """[CLS] representation (B, d) of tokens (B, L, d) with modality presence (B, M)."""
        self.pass_counts["fusion"] += tokens.shape[0]
        return self.fusion(tokens, present)

    def heads(self, hidden):
        """Logits (B, K) and projected representation z (B, P)."""
        return self.classifier(hidden), self.projection(hidden)

    def forward(self, **inputs):
        arrays = [inputs[name] for name in self.modality_names]
        observed = [~torch.isnan(array) for array in arrays]
        if self.training and self.entry_dropout > 0:
            observed = [self._drop_entries(mask) for mask in observed]
        values = [torch.where(mask, array, torch.zeros((), dtype=array.dtype, device=array.device))
                  for mask, array in zip(observed, arrays)]
        tokens = torch.cat([self.encode_modality(i, v, o) for i, (v, o) in enumerate(zip(values, observed))], dim=1)
        present = torch.stack([mask.flatten(1).any(dim=1) for mask in observed], dim=1)
        if self.training:
            passes = self._sample_subsets(present)
        else:
            passes = present[None]
        n_passes, batch = passes.shape[:2]
        expanded = tokens[None].expand(n_passes, *tokens.shape).reshape(n_passes * batch, *tokens.shape[1:])
        logits, z = self.heads(self.fuse(expanded, passes.reshape(n_passes * batch, -1)))
        return logits.view(n_passes, batch, -1), z.view(n_passes, batch, -1)

    def _drop_entries(self, observed):
        """Hide a random fraction U(0, entry_dropout) of each sample's observed entries."""
        batch = observed.shape[0]
        rate = torch.rand(batch, *[1] * (observed.ndim - 1), device=observed.device) * self.entry_dropout
        return observed & (torch.rand(observed.shape, device=observed.device) >= rate)

    def _sample_subsets(self, present):
        """(A, B, M) presence for A distinct random non-empty subsets, intersected per sample."""
        n_modalities = self.n_modalities
        device = present.device
        if n_modalities <= 20:
            n_all = 2 ** n_modalities - 1
            codes = torch.randperm(n_all, device=device)[: min(self.n_subsets, n_all)] + 1
            bits = subset_bits(codes, n_modalities)
        else:
            bits = torch.rand(self.n_subsets, n_modalities, device=device) < 0.5
            bits[~bits.any(dim=1), 0] = True
        passes = bits[:, None, :] & present[None]
        empty = ~passes.any(dim=2, keepdim=True)
        return torch.where(empty, present[None], passes)
