"""The DyMo network: the shared backbone -> classifier + projection into the prototype space."""

from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone, split_missing

# Up to this many modalities training draws distinct subsets among all 2^M - 1; beyond, at random.
MAX_ENUMERATED_MODALITIES = 20

HIDDEN = "hidden:"  # training-input prefixes of recovery-aware training
RECOVERED = "recovered:"


def subset_bits(codes, n_modalities):
    """Boolean (len(codes), M) membership matrix of integer subset codes (bit m = modality m)."""
    shifts = torch.arange(n_modalities, device=codes.device)
    return ((codes[:, None] >> shifts) & 1).bool()


class DyMoNetwork(Backbone):
    """The backbone, a classifier head and a projection head into the prototype space.

    In training mode ``forward`` encodes each modality once and fuses ``n_subsets`` random
    modality subsets (with ``single_passes``, every single modality too), intersected with what
    each sample has, returning logits ``(A, B, K)`` and projections ``(A, B, P)``. In eval mode it
    fuses everything present once (``A = 1``).
    """

    def __init__(self, modality_names, modality_shapes, encoder_specs, n_classes, d_model=64, n_heads=4,
                 n_layers=2, projection_dim=32, dropout=0.1, n_subsets=8, entry_dropout=0.2,
                 recovered_embedding=False, standardize_inputs=False, input_scaling=None, single_passes=False):
        super().__init__(modality_names, modality_shapes, encoder_specs, d_model=d_model, n_heads=n_heads,
                         n_layers=n_layers, dropout=dropout, standardize_inputs=standardize_inputs,
                         input_scaling=input_scaling)
        self.n_subsets = n_subsets
        self.single_passes = single_passes
        self.entry_dropout = entry_dropout
        self.classifier = nn.Linear(d_model, n_classes)
        self.projection = nn.Linear(d_model, projection_dim)
        self.register_buffer("prototypes", torch.zeros(n_classes, projection_dim))
        # Added to the tokens of a recovered version, so the fusion can tell recovered from
        # observed content; zero until recovery-aware training teaches it.
        self.recovered_embedding = nn.Parameter(torch.zeros(self.n_modalities, d_model)) if recovered_embedding else None
        self.aux_active = False

    def fuse_versions(self, tokens_observed, tokens_recovered, present, taken):
        """[CLS] (B, d) of each sample's observed tokens with the recovered versions of the
        ``taken`` (B, M) modalities swapped in."""
        use_recovered = taken[:, self.token_modality][..., None]
        return self.fuse(torch.where(use_recovered, tokens_recovered, tokens_observed), present | taken)

    def heads(self, hidden):
        """Logits (B, K) and projected representation z (B, P)."""
        return self.classifier(hidden), self.projection(hidden)

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
        entries, and the ``(A_s, B, M)`` presence each of the first ``A_s`` (subset) passes fused;
        eval: logits and projections of everything present fused once (``A = 1``)."""
        hidden = {name: inputs.pop(f"{HIDDEN}{name}") for name in self.modality_names if f"{HIDDEN}{name}" in inputs}
        recovered = {name: inputs.pop(f"{RECOVERED}{name}") for name in self.modality_names
                     if f"{RECOVERED}{name}" in inputs}
        if self.training and self.entry_dropout > 0:
            inputs = self.drop_entries(inputs, self.entry_dropout)
        tokens, present = self.encode(inputs)
        if self.training:
            passes = self._sample_subsets(present)
        else:
            passes = present[None]
        n_passes, batch = passes.shape[:2]
        expanded = tokens[None].expand(n_passes, *tokens.shape).reshape(n_passes * batch, *tokens.shape[1:])
        logits, z = self.heads(self.fuse(expanded, passes.reshape(n_passes * batch, -1)))
        logits, z = logits.view(n_passes, batch, -1), z.view(n_passes, batch, -1)
        if self.training and hidden:
            recovery_logits, recovery_z = self._recovery_pass(hidden, recovered)
            logits, z = torch.cat([logits, recovery_logits[None]]), torch.cat([z, recovery_z[None]])
        if self.training:
            return logits, z, passes
        return logits, z

    def _recovery_pass(self, hidden, recovered):
        """Logits and projections of samples whose hidden modalities were recovered out of fold:
        each recovered candidate is taken with probability 1/2, as selection takes some."""
        tokens_observed, tokens_recovered, present, candidates = self.encode_versions(hidden, recovered)
        coins = torch.rand(candidates.shape, generator=self.generator, device=candidates.device) < 0.5
        return self.heads(self.fuse_versions(tokens_observed, tokens_recovered, present, candidates & coins))

    def _sample_subsets(self, present):
        """(A, B, M) presence for A distinct random non-empty subsets, intersected per sample.

        With ``single_passes`` (research option) A = M + ``n_subsets``: every single modality,
        then ``n_subsets`` distinct random subsets of two or more. Uniform draws reach a single
        modality in only M of 2^M - 1 passes, and a sample observing one modality is where the
        fusion is weakest. Past ``MAX_ENUMERATED_MODALITIES`` the subsets are per-modality coin
        flips either way.
        """
        n_modalities = self.n_modalities
        device = present.device
        if n_modalities <= MAX_ENUMERATED_MODALITIES and self.single_passes:
            codes = torch.arange(1, 2 ** n_modalities, device=device)
            single = (codes & (codes - 1)) == 0
            larger = codes[~single]
            drawn = torch.randperm(len(larger), generator=self.generator, device=device)[: self.n_subsets]
            bits = subset_bits(torch.cat([codes[single], larger[drawn]]), n_modalities)
        elif n_modalities <= MAX_ENUMERATED_MODALITIES:
            n_all = 2 ** n_modalities - 1
            codes = torch.randperm(n_all, generator=self.generator, device=device)[: min(self.n_subsets, n_all)] + 1
            bits = subset_bits(codes, n_modalities)
        else:
            bits = torch.rand(self.n_subsets, n_modalities, generator=self.generator, device=device) < 0.5
            bits[~bits.any(dim=1), 0] = True
        passes = bits[:, None, :] & present[None]
        empty = ~passes.any(dim=2, keepdim=True)
        return torch.where(empty, present[None], passes)
