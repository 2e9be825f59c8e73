"""MARS network: the shared backbone plus a mixture of experts routed by missingness residuals.

Training pairs each sample's representation fused from everything it observed (z_full) with one
fused from a random sub-pattern (z_partial). A *residual router* sees r = z_full - z_partial
together with z_partial and routes z_partial to the top-k of N experts; a *feature router* sees
only what inference sees (z_partial and which modalities it holds) and learns to imitate the
residual router. Inference uses the feature router alone. The equations, and where they depart
from the paper, are in docs/mars_method.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._random import random_present_subset
from .backbone import Backbone


def top_k_gates(logits, k):
    """Softmax over the k largest logits per row, zero elsewhere; (B, N) -> (B, N)."""
    values, indices = logits.topk(k, dim=1)
    return torch.zeros_like(logits).scatter(1, indices, torch.softmax(values, dim=1))


def top_k_sets(logits, k):
    """(B, N) bool: the k experts with the largest logits of each row."""
    return torch.zeros_like(logits, dtype=torch.bool).scatter(1, logits.topk(k, dim=1).indices, True)


def squared_variation(values):
    """Coefficient of variation squared, the load-balancing penalty."""
    return values.var(unbiased=False) / (values.mean().pow(2) + 1e-10)


def router_gap(residual_logits, feature_logits):
    """Per sample, total variation distance between the two routers' distributions, in [0, 1]."""
    return 0.5 * (torch.softmax(residual_logits, 1) - torch.softmax(feature_logits, 1)).abs().sum(1)


class MARSNetwork(Backbone):
    """The backbone, a full-input head, experts and the two routers."""

    def __init__(self, modality_names, modality_shapes, encoder_specs, n_classes, d_model=64, n_heads=4,
                 n_layers=2, dropout=0.1, n_experts=4, top_k=2, expert_hidden=128, noise=True, noise_scale=5.0,
                 residual_router=True, standardize_inputs=False, input_scaling=None, single_passes=False,
                 entry_dropout=0.0):
        super().__init__(modality_names, modality_shapes, encoder_specs, d_model=d_model, n_heads=n_heads,
                         n_layers=n_layers, dropout=dropout, standardize_inputs=standardize_inputs,
                         input_scaling=input_scaling)
        self.classifier = nn.Linear(d_model, n_classes)
        self.top_k = min(top_k, n_experts)
        self.noise = noise
        self.noise_scale = noise_scale
        self.use_residual_router = residual_router
        self.single_passes = single_passes
        self.entry_dropout = entry_dropout
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, expert_hidden), nn.GELU(), nn.Linear(expert_hidden, d_model))
            for _ in range(n_experts))
        self.residual_router = nn.Linear(2 * d_model + self.n_modalities, n_experts)
        self.feature_router = nn.Linear(d_model + self.n_modalities, n_experts)
        self.head = nn.Linear(d_model, n_classes)

    def mixture(self, hidden, gates):
        """Gate-weighted sum of the experts' outputs (residual form), then the head."""
        mixed = hidden + sum(gates[:, e:e + 1] * expert(hidden) for e, expert in enumerate(self.experts))
        return self.head(mixed)

    def feature_logits(self, hidden, present):
        """Feature router: routing logits (B, N) from the fused representation and the pattern."""
        return self.feature_router(torch.cat([hidden, present.to(hidden.dtype)], dim=1))

    def residual_logits(self, full, partial, pattern):
        """Residual router: routing logits (B, N) from r = z_full - z_partial, z_partial and the pattern."""
        return self.residual_router(torch.cat([full - partial, partial, pattern.to(full.dtype)], dim=1))

    def route(self, tokens, present):
        """Inference: fuse what is observed, route with the feature router; logits and gates."""
        hidden = self.fuse(tokens, present)
        gates = top_k_gates(self.feature_logits(hidden, present), self.top_k)
        return self.mixture(hidden, gates), gates

    def paired(self, tokens, present, partial):
        """z_full (B, d), z_partial (A * B, d) and both routers' logits (A * B, N) of samples seen
        whole and through each of the A sub-patterns stacked in ``partial`` (A * B, M)."""
        batch = tokens.shape[0]
        n_passes = partial.shape[0] // batch
        hidden = self.fuse(torch.cat([tokens] * (1 + n_passes)), torch.cat([present, partial]))
        full, part = hidden[:batch], hidden[batch:]
        return (full, part, self.feature_logits(part, partial),
                self.residual_logits(full.repeat(n_passes, 1), part, partial))

    def perturb(self, residual_logits, feature_logits):
        """Discrepancy-aware noise: Gaussian noise on each sample's residual routing logits with a
        standard deviation of ``noise_scale`` x the routers' gap (total variation) x the spread of
        that sample's logits, so experts learn under the imitation errors they meet at inference."""
        gap = router_gap(residual_logits, feature_logits).detach()[:, None]
        # the sample standard deviation over experts; 0, not NaN, when there is one expert
        spread = residual_logits.detach().std(1, keepdim=True, correction=int(residual_logits.shape[1] > 1))
        noise = torch.randn(residual_logits.shape, generator=self.generator, device=residual_logits.device,
                            dtype=residual_logits.dtype)
        return residual_logits + noise * (self.noise_scale * gap * spread)

    def partial_patterns(self, present):
        """(A * B, M) training sub-patterns: one random sub-pattern of what each sample observes
        (A = 1), then with ``single_passes`` each modality alone where observed (A = 1 + M; a
        sample without that modality keeps everything it observes there)."""
        random = random_present_subset(present, self.generator)
        if not self.single_passes:
            return random
        eye = torch.eye(self.n_modalities, dtype=torch.bool, device=present.device)
        alone = eye[:, None, :] & present[None]  # (M, B, M)
        alone = torch.where(alone.any(dim=2, keepdim=True), alone, present[None])
        return torch.cat([random, alone.reshape(-1, self.n_modalities)])

    def forward(self, **inputs):
        """Eval: logits of the inference path, then None and a zero. Training: logits of the
        full-input head (B, K), of the routed sub-patterns (A * B, K), the auxiliary terms, and the
        modalities each pass fused, (1 + A, B, M): everything observed, then the sub-patterns."""
        if self.training and self.entry_dropout > 0:
            inputs = self.drop_entries(inputs, self.entry_dropout)
        tokens, present = self.encode(inputs)
        if not self.training:
            logits, _ = self.route(tokens, present)
            return logits, None, logits.new_zeros(())
        partial = self.partial_patterns(present)
        full, part, feature_logits, residual_logits = self.paired(tokens, present, partial)
        if not self.use_residual_router:
            routing_logits = feature_logits
        elif self.noise:
            routing_logits = self.perturb(residual_logits, feature_logits)
        else:
            routing_logits = residual_logits
        gates = top_k_gates(routing_logits, self.top_k)
        partial_logits = self.mixture(part, gates)
        full_logits = self.classifier(full)
        imitation = (F.kl_div(torch.log_softmax(feature_logits, 1), torch.softmax(residual_logits, 1).detach(),
                              reduction="batchmean") if self.use_residual_router else feature_logits.new_zeros(()))
        auxiliary = {
            "distillation": imitation,
            # importance (gate mass) and a smooth load estimate (mean routing probability) per expert
            "load_balance": squared_variation(gates.sum(0)) + squared_variation(torch.softmax(routing_logits, 1).mean(0)),
        }
        passes = torch.cat([present, partial]).view(-1, *present.shape)
        return full_logits, partial_logits, auxiliary, passes
