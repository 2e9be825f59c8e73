"""The DyMo network: encoders -> masked fusion transformer with [CLS] -> classifier + projection."""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from .._random import Dropout, Stochastic, dropout
from .encoders import build_encoder, encoder_kind
from .standardize import InputStandardizer


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


# How training draws its modality subsets (DyMoNetwork._sample_subsets, _sample_subsets_by_size).
SUBSET_SAMPLINGS = ("uniform", "by_size")

HIDDEN = "hidden:"  # training-input prefixes of recovery-aware training
RECOVERED = "recovered:"


def split_missing(values):
    """NaN-marked values -> (values with 0 where missing, boolean mask of observed entries)."""
    observed = ~torch.isnan(values)
    return torch.where(observed, values, torch.zeros((), dtype=values.dtype, device=values.device)), observed


def subset_bits(codes, n_modalities):
    """Boolean (len(codes), M) membership matrix of integer subset codes (bit m = modality m)."""
    shifts = torch.arange(n_modalities, device=codes.device)
    return ((codes[:, None] >> shifts) & 1).bool()


class DyMoNetwork(Stochastic, nn.Module):
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
        n_subsets=8,
        entry_dropout=0.2,
        recovered_embedding=False,
        standardize_inputs=False,
        input_scaling=None,
        subset_sampling="uniform",
    ):
        super().__init__()
        self.modality_names = list(modality_names)
        self.modality_shapes = [tuple(shape) for shape in modality_shapes]
        self.n_modalities = len(self.modality_shapes)
        if subset_sampling not in SUBSET_SAMPLINGS:
            raise ValueError(f"subset_sampling must be one of {SUBSET_SAMPLINGS}, got {subset_sampling!r}.")
        self.n_subsets = n_subsets
        self.subset_sampling = subset_sampling
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
        # Added to the tokens of a recovered version, so the fusion can tell recovered from
        # observed content; zero until recovery-aware training teaches it.
        self.recovered_embedding = nn.Parameter(torch.zeros(self.n_modalities, d_model)) if recovered_embedding else None
        # Observed and recovered values alike pass through it before their encoder.
        self.standardizer = InputStandardizer(
            [encoder_kind(spec, shape) for spec, shape in zip(encoder_specs, self.modality_shapes)],
            self.modality_shapes, input_scaling) if standardize_inputs else None
        self.aux_active = False
        self.pass_counts = Counter()

    def __setstate__(self, state):
        super().__setstate__(state)
        # A network pickled before input standardisation existed feeds values as given.
        if "standardizer" not in self._modules and "standardizer" not in self.__dict__:
            self.standardizer = None
        self.__dict__.setdefault("subset_sampling", "uniform")

    def encode_modality(self, index, values, observed):
        """Tokens (B, T_m, d) of one modality from zero-filled values and the observed mask."""
        self.pass_counts[f"encoder_{index}"] += values.shape[0]
        if self.standardizer is not None:
            values = self.standardizer(index, values, observed)
        return self.encoders[index](values, observed)

    def fuse(self, tokens, present):
        """[CLS] representation (B, d) of tokens (B, L, d) with modality presence (B, M)."""
        self.pass_counts["fusion"] += tokens.shape[0]
        return self.fusion(tokens, present)

    def fuse_versions(self, tokens_observed, tokens_recovered, present, taken):
        """[CLS] (B, d) of each sample's observed tokens with the recovered versions of the
        ``taken`` (B, M) modalities swapped in."""
        use_recovered = taken[:, self.token_modality][..., None]
        return self.fuse(torch.where(use_recovered, tokens_recovered, tokens_observed), present | taken)

    def heads(self, hidden):
        """Logits (B, K) and projected representation z (B, P)."""
        return self.classifier(hidden), self.projection(hidden)

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

    def encode_versions(self, inputs, recovered=None):
        """Tokens of every modality as observed and as recovered, each version encoded once.

        A modality without any observed entry is encoded only in its recovered version, a
        complete one only as observed (both versions equal), a partially observed one in both.

        Parameters
        ----------
        inputs : dict of str to tensor
            NaN-marked values of each modality.
        recovered : dict of str to tensor, optional
            The same with every missing entry filled. Without it the recovered version of every
            token is its observed version, for modes that take no candidate.

        Returns
        -------
        tokens_observed, tokens_recovered : tensors of shape (B, L, d)
        present : (B, M) bool, some entry observed
        candidates : (B, M) bool, some entry missing (a recovered version exists)
        """
        observed_tokens, recovered_tokens, present, candidates = [], [], [], []
        for index, name in enumerate(self.modality_names):
            values, observed = split_missing(inputs[name])
            has_any = observed.flatten(1).any(dim=1)
            complete = observed.flatten(1).all(dim=1)
            tokens = values.new_zeros(values.shape[0], self.token_counts[index], self.d_model)
            rows = has_any.nonzero(as_tuple=True)[0]
            if rows.numel():
                tokens[rows] = self.encode_modality(index, values[rows], observed[rows])
            filled = tokens
            rows = (~complete).nonzero(as_tuple=True)[0]
            if recovered is not None and rows.numel():
                filled = tokens.clone()
                values = recovered[name][rows]
                filled[rows] = self.encode_modality(index, values, torch.ones_like(values, dtype=torch.bool))
                if self.recovered_embedding is not None:
                    filled[rows] = filled[rows] + self.recovered_embedding[index]
            observed_tokens.append(tokens)
            recovered_tokens.append(filled)
            present.append(has_any)
            candidates.append(~complete)
        return (torch.cat(observed_tokens, dim=1), torch.cat(recovered_tokens, dim=1),
                torch.stack(present, dim=1), torch.stack(candidates, dim=1))

    def forward(self, **inputs):
        """Training: ``(A, B, K)`` logits and ``(A, B, P)`` projections of the sampled subsets, plus
        one recovery pass when the inputs carry ``hidden:<name>`` and ``recovered:<name>``
        entries; eval: everything present fused once (``A = 1``)."""
        hidden = {name: inputs.pop(f"{HIDDEN}{name}") for name in self.modality_names if f"{HIDDEN}{name}" in inputs}
        recovered = {name: inputs.pop(f"{RECOVERED}{name}") for name in self.modality_names
                     if f"{RECOVERED}{name}" in inputs}
        if self.training and self.entry_dropout > 0:
            split = {name: split_missing(inputs[name]) for name in self.modality_names}
            inputs = {name: torch.where(self._drop_entries(observed), values, torch.full_like(values, float("nan")))
                      for name, (values, observed) in split.items()}
        tokens, present = self.encode(inputs)
        if self.training:
            passes = self._sample_subsets_by_size(present) if self.subset_sampling == "by_size" else \
                self._sample_subsets(present)
        else:
            passes = present[None]
        n_passes, batch = passes.shape[:2]
        expanded = tokens[None].expand(n_passes, *tokens.shape).reshape(n_passes * batch, *tokens.shape[1:])
        logits, z = self.heads(self.fuse(expanded, passes.reshape(n_passes * batch, -1)))
        logits, z = logits.view(n_passes, batch, -1), z.view(n_passes, batch, -1)
        if self.training and hidden:
            recovery_logits, recovery_z = self._recovery_pass(hidden, recovered)
            logits, z = torch.cat([logits, recovery_logits[None]]), torch.cat([z, recovery_z[None]])
        return logits, z

    def _recovery_pass(self, hidden, recovered):
        """Logits and projections of samples whose hidden modalities were recovered out of fold:
        each recovered candidate is taken with probability 1/2, as selection takes some."""
        tokens_observed, tokens_recovered, present, candidates = self.encode_versions(hidden, recovered)
        coins = torch.rand(candidates.shape, generator=self.generator, device=candidates.device) < 0.5
        return self.heads(self.fuse_versions(tokens_observed, tokens_recovered, present, candidates & coins))

    def _drop_entries(self, observed):
        """Hide a random fraction U(0, entry_dropout) of each sample's observed entries."""
        batch = observed.shape[0]
        device, generator = observed.device, self.generator
        rate = torch.rand(batch, *[1] * (observed.ndim - 1), generator=generator, device=device) * self.entry_dropout
        return observed & (torch.rand(observed.shape, generator=generator, device=device) >= rate)

    def _sample_subsets(self, present):
        """(A, B, M) presence for A distinct random non-empty subsets, intersected per sample."""
        n_modalities = self.n_modalities
        device = present.device
        if n_modalities <= 20:
            n_all = 2 ** n_modalities - 1
            codes = torch.randperm(n_all, generator=self.generator, device=device)[: min(self.n_subsets, n_all)] + 1
            bits = subset_bits(codes, n_modalities)
        else:
            bits = torch.rand(self.n_subsets, n_modalities, generator=self.generator, device=device) < 0.5
            bits[~bits.any(dim=1), 0] = True
        passes = bits[:, None, :] & present[None]
        empty = ~passes.any(dim=2, keepdim=True)
        return torch.where(empty, present[None], passes)

    def _sample_subsets_by_size(self, present):
        """(A, B, M) presence: per pass and sample, a size k uniform in 1..(modalities the sample
        has), then k of its present modalities uniformly.

        Every size gets the same share of training, whatever M (uniform subsets of M = 5 fuse all
        five in 1 of 31 passes and a single one in 5 of 31), and the samples of one minibatch
        train different patterns in the same pass.
        """
        generator, device = self.generator, present.device
        shape = (self.n_subsets, *present.shape)
        n_present = present.sum(dim=1)
        sizes = (torch.rand(shape[:2], generator=generator, device=device) * n_present).floor().long() + 1
        scores = torch.rand(shape, generator=generator, device=device).masked_fill(~present[None], 2.0)
        ranks = scores.argsort(dim=2).argsort(dim=2)
        return (ranks < sizes[..., None]) & present[None]
