"""Shared pieces of the neural recoverers: scaling, a skorch net for self-supervised losses,
and the base class that validates input and keeps observed entries."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._devices import resolve_device
from .._input import validate_modalities
from .._random import device_generator, fit_seed
from .._training import SeededNet, build_net


class SelfSupervisedNet(SeededNet):
    """skorch net whose module returns its own training loss (no targets)."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return y_pred


class NeuralRecoverer(TransformerMixin, BaseEstimator):
    """Base of recoverers that see the modality structure (``accepts_multimodal_input``).

    Subclasses implement ``_module_class()`` and ``_module_kwargs()``: a module whose forward
    returns its own training loss and whose ``reconstruct(batch, generator=None)`` returns every
    modality filled, in the scaled space. This class validates, scales, trains through the
    package's one skorch net builder and copies observed entries back unchanged.
    """

    accepts_multimodal_input = True

    def _unscaled_features(self, name):
        """Flat indices of a modality's features left unscaled (e.g. category codes)."""
        return np.array([], dtype=int)

    def _check_fit_input(self, arrays):
        """Hook for subclass-specific validation of the training modalities."""

    def fit(self, X, y=None):
        """Fit on a dict of modalities (NaN = missing); ``y`` is ignored."""
        arrays = validate_modalities(X)
        self.modality_shapes_ = {name: array.shape[1:] for name, array in arrays.items()}
        self.center_, self.scale_ = {}, {}
        for name, array in arrays.items():
            flat = array.reshape(array.shape[0], -1)
            with np.errstate(all="ignore"):
                center = np.nan_to_num(np.nanmean(flat, axis=0))
                scale = np.nan_to_num(np.nanstd(flat, axis=0))
            scale = np.where(scale > 1e-6, scale, 1.0)
            exempt = self._unscaled_features(name)
            center[exempt], scale[exempt] = 0.0, 1.0
            self.center_[name] = center.astype(np.float32)
            self.scale_[name] = scale.astype(np.float32)
        self._check_fit_input(arrays)
        self.net_ = self._build_net(fit_seed(self.random_state))
        self.net_.fit(self._scaled(arrays), None)
        return self

    def _build_net(self, seed):
        """The skorch net that trains (or, loaded, holds) the module, seeded with ``seed``."""
        return build_net(SelfSupervisedNet, self._module_class(), self._module_kwargs(), lr=self.lr,
                         max_epochs=self.max_epochs, batch_size=self.batch_size, device=resolve_device(self.device),
                         random_seed=seed, verbose=self.verbose)

    def _scaled(self, arrays):
        return {name: ((array.reshape(array.shape[0], -1) - self.center_[name]) / self.scale_[name]).reshape(array.shape)
                for name, array in arrays.items()}

    def transform(self, X):
        """Dict of arrays with every missing entry filled and observed entries unchanged."""
        check_is_fitted(self)
        arrays = validate_modalities(X, reference_shapes=self.modality_shapes_)
        scaled = self._scaled(arrays)
        module = self.net_.module_.eval()
        device = self.net_.device
        generator = None
        if getattr(self, "sample", False):
            generator = device_generator(fit_seed(self.random_state), device)
        n_samples = next(iter(arrays.values())).shape[0]
        pieces = {name: [] for name in arrays}
        with torch.inference_mode():
            for start in range(0, n_samples, self.batch_size_transform):
                batch = {name: torch.as_tensor(array[start:start + self.batch_size_transform], device=device)
                         for name, array in scaled.items()}
                for name, value in module.reconstruct(batch, generator=generator).items():
                    pieces[name].append(value.float().cpu().numpy())
        recovered = {}
        for name, array in arrays.items():
            filled = np.concatenate(pieces[name]).reshape(array.shape[0], -1)
            filled = filled * self.scale_[name] + self.center_[name]
            recovered[name] = np.where(np.isnan(array), filled.reshape(array.shape), array).astype(np.float32)
        return recovered

    # ------------------------------------------------------------ persistence
    def saved_state(self):
        """What ``save()`` stores of this fitted recoverer, without pickle: (JSON-able fitted
        attributes, dict of arrays, the network's state dict)."""
        check_is_fitted(self)
        fitted = {"modality_shapes_": {name: list(shape) for name, shape in self.modality_shapes_.items()}}
        if hasattr(self, "categories_"):
            fitted["categories_"] = {str(column): int(count) for column, count in self.categories_.items()}
        arrays = {f"{kind}:{name}": values for kind, by_name in (("center", self.center_), ("scale", self.scale_))
                  for name, values in by_name.items()}
        state = {key: value.detach().cpu().contiguous() for key, value in self.net_.module_.state_dict().items()}
        return fitted, arrays, state

    @classmethod
    def from_saved_state(cls, params, fitted, arrays, state, device=None):
        """The fitted recoverer that :meth:`saved_state` describes, its network on ``device``
        (default: its ``device`` parameter)."""
        recoverer = cls(**params)
        if device is not None:
            recoverer.set_params(device=device)
        recoverer.modality_shapes_ = {name: tuple(shape) for name, shape in fitted["modality_shapes_"].items()}
        if "categories_" in fitted:
            recoverer.categories_ = {int(column): int(count) for column, count in fitted["categories_"].items()}
        recoverer.center_ = {name: arrays[f"center:{name}"] for name in recoverer.modality_shapes_}
        recoverer.scale_ = {name: arrays[f"scale:{name}"] for name in recoverer.modality_shapes_}
        net = recoverer._build_net(seed=0)  # the weights are loaded next
        net.initialize()
        net.module_.load_state_dict({key: value.to(net.device) for key, value in state.items()})
        net.module_.eval()
        recoverer.net_ = net
        return recoverer

