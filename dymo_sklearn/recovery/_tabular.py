"""TIP-style tabular recoverer: masked-feature modelling conditioned on the other modalities.

Each table feature is a token (value embedding + feature embedding, or a [MASK] token); the
other modalities (an image, say) add their encoder tokens; a small transformer predicts every
masked feature — a number for continuous features, a category for categorical ones. Training
hides a random share U(0.15, 0.85) of each sample's observed features and learns to recover
them, so any rate of intra-table missingness can be filled at transform time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._random import Stochastic
from ..nn.encoders import build_encoder
from ..nn.backbone import FusionBlock
from ._neural import NeuralRecoverer


class MaskedTableModel(Stochastic, nn.Module):
    """Feature tokens of one table + context tokens of the other modalities -> transformer."""

    def __init__(self, modality_names, modality_shapes, table, categories, d_model=32, n_heads=4, n_layers=2,
                 dropout=0.1):
        super().__init__()
        self.modality_names = list(modality_names)
        self.table = table
        shapes = dict(zip(modality_names, modality_shapes))
        self.n_features = int(np.prod(shapes[table]))
        self.categories = {int(k): int(v) for k, v in categories.items()}
        self.context_names = [name for name in modality_names if name != table]
        self.context = nn.ModuleList(build_encoder(None, shapes[name], d_model) for name in self.context_names)
        self.feature_embedding = nn.Parameter(torch.randn(self.n_features, d_model) * 0.02)
        self.value_weight = nn.Parameter(torch.randn(self.n_features, d_model) * 0.02)
        self.category_embedding = nn.ModuleDict(
            {str(j): nn.Embedding(k, d_model) for j, k in self.categories.items()})
        self.mask_token = nn.Parameter(torch.zeros(d_model))
        self.blocks = nn.ModuleList(FusionBlock(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.value_head = nn.Parameter(torch.randn(self.n_features, d_model) * 0.02)
        self.category_heads = nn.ModuleDict({str(j): nn.Linear(d_model, k) for j, k in self.categories.items()})
        continuous = np.ones(self.n_features, dtype=bool)
        continuous[list(self.categories)] = False
        self.register_buffer("continuous", torch.as_tensor(continuous))

    def _encode(self, batch, hide):
        table = batch[self.table].flatten(1)
        known = ~torch.isnan(table) & ~hide
        values = torch.where(known, table, torch.zeros((), dtype=table.dtype, device=table.device))
        tokens = values[..., None] * self.value_weight
        for j, embedding in self.category_embedding.items():
            codes = values[:, int(j)].round().long().clamp(0, embedding.num_embeddings - 1)
            tokens[:, int(j)] = embedding(codes)
        tokens = torch.where(known[..., None], tokens, self.mask_token) + self.feature_embedding
        attend = [torch.ones_like(known)]
        for name, encoder in zip(self.context_names, self.context):
            array = batch[name]
            observed = ~torch.isnan(array)
            zero = torch.zeros((), dtype=array.dtype, device=array.device)
            context = encoder(torch.where(observed, array, zero), observed)
            tokens = torch.cat([tokens, context], dim=1)
            present = observed.flatten(1).any(dim=1, keepdim=True)
            attend.append(present.expand(-1, context.shape[1]))
        key_mask = torch.cat(attend, dim=1)
        for block in self.blocks:
            tokens = block(tokens, key_mask)
        return self.norm(tokens[:, : self.n_features])

    def _predict(self, hidden):
        values = (hidden * self.value_head).sum(-1)
        logits = {j: head(hidden[:, int(j)]) for j, head in self.category_heads.items()}
        return values, logits

    def forward(self, **batch):
        table = batch[self.table].flatten(1)
        observed = ~torch.isnan(table)
        generator, device = self.generator, table.device
        rate = 0.15 + 0.7 * torch.rand(table.shape[0], 1, generator=generator, device=device)
        hide = observed & (torch.rand(table.shape, generator=generator, device=device) < rate)
        values, logits = self._predict(self._encode(batch, hide))
        target = torch.where(observed, table, torch.zeros((), dtype=table.dtype, device=table.device))
        scored = hide & self.continuous
        loss = ((values - target).pow(2) * scored).sum() / scored.sum().clamp_min(1)
        for j, logit in logits.items():
            rows = hide[:, int(j)]
            if rows.any():
                loss = loss + F.cross_entropy(logit[rows], target[rows, int(j)].round().long())
        return loss

    def reconstruct(self, batch, generator=None):
        table = batch[self.table]
        missing = torch.isnan(table.flatten(1))
        values, logits = self._predict(self._encode(batch, missing))
        for j, logit in logits.items():
            values[:, int(j)] = logit.argmax(-1).to(values.dtype)
        out = {name: torch.zeros_like(array) for name, array in batch.items()}  # scaled mean of the rest
        out[self.table] = values.view(table.shape)
        return out


class TabularRecoverer(NeuralRecoverer):
    """Recover missing table features from the observed ones and the other modalities.

    TIP-style masked-feature modelling: continuous features are predicted as numbers,
    categorical ones (integer codes 0..K-1) as categories. Other modalities are context only;
    their own missing entries are filled with training means (use
    :class:`MultimodalVAERecoverer` when whole images need recovering). Observed entries are
    returned unchanged.

    Parameters
    ----------
    table : str
        Name of the tabular modality to recover; its per-sample shape must be (n_features,).
    categorical_features : list of int, default=()
        Columns of the table holding category codes.
    d_model, n_heads, n_layers, dropout : transformer size
    max_epochs, batch_size, lr : training
    batch_size_transform : int, default=1024
    device : {"auto", "cpu", "cuda"}, default="auto"
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
    """

    def __init__(self, table, categorical_features=(), d_model=32, n_heads=4, n_layers=2, dropout=0.1,
                 max_epochs=60, batch_size=128, lr=2e-3, batch_size_transform=1024, device="auto",
                 random_state=None, verbose=0):
        self.table = table
        self.categorical_features = categorical_features
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.batch_size_transform = batch_size_transform
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _unscaled_features(self, name):
        return np.asarray(list(self.categorical_features), dtype=int) if name == self.table else super()._unscaled_features(name)

    def _check_fit_input(self, arrays):
        if self.table not in arrays:
            raise ValueError(f"table={self.table!r} is not one of the modalities {list(arrays)}.")
        table = arrays[self.table]
        if table.ndim != 2:
            raise ValueError(f"Modality {self.table!r} must be a table (n_samples, n_features), got {table.shape}.")
        self.categories_ = {}
        for j in self.categorical_features:
            if not 0 <= j < table.shape[1]:
                raise ValueError(f"Modality {self.table!r}: categorical column {j} is out of range.")
            codes = table[:, j][~np.isnan(table[:, j])]
            if codes.size and ((codes < 0).any() or (codes != np.round(codes)).any()):
                raise ValueError(f"Modality {self.table!r}: categorical column {j} must hold codes 0, 1, 2, ...")
            self.categories_[int(j)] = int(codes.max()) + 1 if codes.size else 1

    def _module_class(self):
        return MaskedTableModel

    def _module_kwargs(self):
        return dict(modality_names=list(self.modality_shapes_), modality_shapes=list(self.modality_shapes_.values()),
                    table=self.table, categories=self.categories_, d_model=self.d_model, n_heads=self.n_heads,
                    n_layers=self.n_layers, dropout=self.dropout)
