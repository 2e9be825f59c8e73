"""MARS network: the DyMo backbone plus a mixture of experts routed by missingness residuals.

Training pairs each sample's representation fused from everything it observed (z_full) with one
fused from a random sub-pattern (z_partial). A *residual router* sees r = z_full - z_partial and
routes z_partial to the top-k of N experts; a *feature router* sees only z_partial and learns to
imitate it (KL, residual side detached). Inference uses the feature router alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._random import Stochastic, random_present_subset
from .network import DyMoNetwork


def top_k_gates(logits, k):
    """Softmax over the k largest logits per row, zero elsewhere; (B, N) -> (B, N)."""
    values, indices = logits.topk(k, dim=1)
    return torch.zeros_like(logits).scatter(1, indices, torch.softmax(values, dim=1))


def squared_variation(values):
    """Coefficient of variation squared, the load-balancing penalty."""
    return values.var(unbiased=False) / (values.mean().pow(2) + 1e-10)


class MARSNetwork(Stochastic, nn.Module):
    """Backbone (encoders + masked fusion transformer + full-input head), experts and routers."""

    def __init__(self, modality_names, modality_shapes, encoder_specs, n_classes, d_model=64, n_heads=4,
                 n_layers=2, dropout=0.1, n_experts=4, top_k=2, expert_hidden=128, noise=True,
                 residual_router=True, standardize_inputs=False, input_scaling=None):
        super().__init__()
        self.backbone = DyMoNetwork(modality_names, modality_shapes, encoder_specs, n_classes, d_model=d_model,
                                    n_heads=n_heads, n_layers=n_layers, projection_dim=1, dropout=dropout,
                                    n_subsets=1, entry_dropout=0.0, standardize_inputs=standardize_inputs,
                                    input_scaling=input_scaling)
        self.modality_names = list(modality_names)
        self.top_k = min(top_k, n_experts)
        self.noise = noise
        self.use_residual_router = residual_router
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, expert_hidden), nn.GELU(), nn.Linear(expert_hidden, d_model))
            for _ in range(n_experts))
        self.residual_router = nn.Linear(d_model, n_experts)
        self.feature_router = nn.Linear(d_model, n_experts)
        self.noise_logit = nn.Parameter(torch.zeros(n_experts))
        self.head = nn.Linear(d_model, n_classes)

    def encode(self, inputs):
        """Tokens (B, L, d) and modality presence (B, M) of NaN-marked inputs."""
        return self.backbone.encode(inputs)

    def mixture(self, hidden, gates):
        """Gate-weighted sum of the experts' outputs (residual form), then the head."""
        mixed = hidden + sum(gates[:, e:e + 1] * expert(hidden) for e, expert in enumerate(self.experts))
        return self.head(mixed)

    def route(self, tokens, present):
        """Inference: fuse what is observed, route with the feature router; logits and gates."""
        hidden = self.backbone.fuse(tokens, present)
        gates = top_k_gates(self.feature_router(hidden), self.top_k)
        return self.mixture(hidden, gates), gates

    def _partial_patterns(self, present):
        return random_present_subset(present, self.generator)

    def forward(self, **inputs):
        tokens, present = self.encode(inputs)
        if not self.training:
            logits, _ = self.route(tokens, present)
            return logits, None, logits.new_zeros(())
        partial = self._partial_patterns(present)
        batch = tokens.shape[0]
        hidden = self.backbone.fuse(torch.cat([tokens, tokens]), torch.cat([present, partial]))
        full, part = hidden[:batch], hidden[batch:]
        feature_logits = self.feature_router(part)
        if self.use_residual_router:
            routing_logits = self.residual_router(full - part)
        else:
            routing_logits = feature_logits
        noise_scale = F.softplus(self.noise_logit)
        if self.noise:
            with torch.no_grad():
                disagreement = (torch.softmax(routing_logits, 1) - torch.softmax(feature_logits, 1)).abs().mean(0)
                boost = 1.0 + disagreement / (disagreement.mean() + 1e-8)
            noise = torch.randn(routing_logits.shape, generator=self.generator, device=routing_logits.device)
            routing_logits = routing_logits + noise * noise_scale * boost
        gates = top_k_gates(routing_logits, self.top_k)
        partial_logits = self.mixture(part, gates)
        full_logits = self.backbone.classifier(full)
        auxiliary = {
            "distillation": (F.kl_div(torch.log_softmax(feature_logits, 1), torch.softmax(routing_logits, 1).detach(),
                                      reduction="batchmean") if self.use_residual_router else feature_logits.new_zeros(())),
            "noise": noise_scale.pow(2).mean() if self.noise else feature_logits.new_zeros(()),
            # importance (gate mass) and a smooth load estimate (mean routing probability) per expert
            "load_balance": squared_variation(gates.sum(0)) + squared_variation(torch.softmax(routing_logits, 1).mean(0)),
        }
        return full_logits, partial_logits, auxiliary
