"""Multimodal VAE recoverer, mixture-of-products-of-experts style (MoPoE, Sutter et al. 2021).

One encoder (a Gaussian expert) and one decoder per modality. The posterior of a modality subset
is the product of its experts and a standard-normal prior expert; training samples a random
non-empty subset of each sample's observed modalities and reconstructs *every* observed
modality from it, so any missing modality can be decoded from any observed subset.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._random import Stochastic, random_present_subset
from ..nn.encoders import build_encoder
from ._neural import NeuralRecoverer


class MultimodalVAE(Stochastic, nn.Module):
    """Experts, product-of-experts posterior and decoders for every modality."""

    def __init__(self, modality_names, modality_shapes, latent_dim=16, hidden=128, beta=0.05):
        super().__init__()
        self.modality_names = list(modality_names)
        self.modality_shapes = [tuple(shape) for shape in modality_shapes]
        self.latent_dim = latent_dim
        self.beta = beta
        self.experts = nn.ModuleList(build_encoder(None, shape, 2 * latent_dim) for shape in self.modality_shapes)
        self.decoders = nn.ModuleList(
            nn.Sequential(nn.Linear(latent_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                          nn.Linear(hidden, math.prod(shape)))
            for shape in self.modality_shapes
        )

    def _inputs(self, batch):
        values, observed = [], []
        for name in self.modality_names:
            array = batch[name]
            mask = ~torch.isnan(array)
            observed.append(mask)
            values.append(torch.where(mask, array, torch.zeros((), dtype=array.dtype, device=array.device)))
        return values, observed

    def posterior(self, values, observed, use):
        """Product of the experts in ``use`` (B, M) and the prior: mean and log-variance."""
        precision = torch.ones(values[0].shape[0], self.latent_dim, device=values[0].device)
        weighted_mean = torch.zeros_like(precision)
        for index, (expert, value, mask) in enumerate(zip(self.experts, values, observed)):
            mean, log_var = expert(value, mask).mean(dim=1).chunk(2, dim=-1)
            expert_precision = torch.exp(-log_var.clamp(-8.0, 8.0)) * use[:, index:index + 1]
            precision = precision + expert_precision
            weighted_mean = weighted_mean + mean * expert_precision
        return weighted_mean / precision, -torch.log(precision)

    def decode(self, z):
        return [decoder(z).view(-1, *shape) for decoder, shape in zip(self.decoders, self.modality_shapes)]

    def forward(self, **batch):
        values, observed = self._inputs(batch)
        present = torch.stack([mask.flatten(1).any(dim=1) for mask in observed], dim=1)
        use = random_present_subset(present, self.generator)
        mean, log_var = self.posterior(values, observed, use.float())
        z = mean + torch.randn(mean.shape, generator=self.generator, device=mean.device) * torch.exp(0.5 * log_var)
        reconstruction = 0.0
        for value, mask, decoded in zip(values, observed, self.decode(z)):
            error = (decoded - value).pow(2) * mask
            reconstruction = reconstruction + error.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(1)
        return (reconstruction + self.beta * kl / self.latent_dim).mean()

    def reconstruct(self, batch, generator=None):
        """Decode every modality from the posterior of what each sample observed."""
        values, observed = self._inputs(batch)
        present = torch.stack([mask.flatten(1).any(dim=1) for mask in observed], dim=1)
        mean, log_var = self.posterior(values, observed, present.float())
        z = mean
        if generator is not None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            z = mean + noise * torch.exp(0.5 * log_var)
        return dict(zip(self.modality_names, self.decode(z)))


class MultimodalVAERecoverer(NeuralRecoverer):
    """Recover missing modalities (images or vectors) with a multimodal VAE.

    Plug in as ``DyMoClassifier(recoverer=MultimodalVAERecoverer())``: it receives the modality
    structure, not a flattened matrix. Trained through skorch on the training modalities
    (standardised per feature); at transform time each sample's latent is the product-of-experts
    posterior of what it observed, and missing entries are filled with the decoding. Observed
    entries are returned unchanged.

    Parameters
    ----------
    latent_dim : int, default=16
    hidden : int, default=128
        Width of the decoders.
    beta : float, default=0.05
        Weight of the KL term (per latent dimension).
    sample : bool, default=False
        Decode a latent sampled from the posterior instead of its mean. The default is
        deterministic; sampling follows the authors' code, whose predictions change with the seed.
    max_epochs, batch_size, lr : training
    batch_size_transform : int, default=1024
    device : {"auto", "cpu", "cuda"}, default="auto"
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
    """

    def __init__(self, latent_dim=16, hidden=128, beta=0.05, sample=False, max_epochs=60, batch_size=128, lr=2e-3,
                 batch_size_transform=1024, device="auto", random_state=None, verbose=0):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.beta = beta
        self.sample = sample
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.batch_size_transform = batch_size_transform
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _module_class(self):
        return MultimodalVAE

    def _module_kwargs(self):
        return dict(modality_names=list(self.modality_shapes_), modality_shapes=list(self.modality_shapes_.values()),
                    latent_dim=self.latent_dim, hidden=self.hidden, beta=self.beta)
