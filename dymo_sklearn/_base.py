"""What every multimodal estimator of the package shares: input validation, the fit preamble,
encoder choices, validation splits and tags."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import scipy.sparse
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from ._input import (
    check_some_modality_observed,
    observed_modalities,
    split_columns,
    validate_modalities,
)
from ._prototypes import MAX_MODALITIES

AUTO_EARLY_STOPPING_MIN_SAMPLES = 500

# Constraints of the parameters both estimators share (input, network size, training, device).
SHARED_PARAMETER_CONSTRAINTS = {
    "encoders": [dict, None],
    "column_groups": [dict, None],
    "d_model": [Interval(Integral, 1, None, closed="left")],
    "n_heads": [Interval(Integral, 1, None, closed="left")],
    "n_layers": [Interval(Integral, 1, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "patience": [Interval(Integral, 1, None, closed="left")],
    "predict_batch_size": [Interval(Integral, 1, None, closed="left")],
    "device": [StrOptions({"auto", "cpu", "cuda"})],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def resolve_device(device):
    """"auto" -> "cuda" when available, else "cpu"; "cuda" without CUDA is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='cpu' or 'auto'.")
    return device


class MultimodalEstimatorMixin:
    """Input handling shared by DyMoClassifier and MARSClassifier (put it before ClassifierMixin)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = self.device == "cuda"
        return tags

    # ----------------------------------------------------------------- input
    def _modalities(self, X, *, reset):
        """Validated float32 arrays per modality, in the fitted order when not resetting."""
        if scipy.sparse.issparse(X):
            raise TypeError(
                "Sparse input is not supported: missing entries must be NaN. Convert with `.toarray()`."
            )
        if isinstance(X, Mapping):
            if reset:
                for attribute in ("n_features_in_", "feature_names_in_"):
                    if hasattr(self, attribute):
                        delattr(self, attribute)
            elif hasattr(self, "n_features_in_"):
                raise TypeError("This estimator was fitted on a 2-D array; predict on a 2-D array too.")
            return validate_modalities(X, reference_shapes=None if reset else self.modality_shapes_)
        if not reset and not hasattr(self, "n_features_in_"):
            raise TypeError(
                f"This estimator was fitted on a dict of modalities {self.modalities_}; got {type(X).__name__}."
            )
        array = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=np.float32)
        if np.isinf(array).any():
            raise ValueError("Input contains infinite values; use NaN to mark missing entries.")
        modalities = split_columns(array, self.column_groups, getattr(self, "feature_names_in_", None))
        return validate_modalities(modalities, reference_shapes=None if reset else self.modality_shapes_)

    def _encoder_specs(self, names):
        specs = dict(self.encoders or {})
        unknown = sorted(set(specs) - set(names))
        if unknown:
            raise ValueError(f"encoders names unknown modalities {unknown}; the input has {names}.")
        return [specs.get(name) for name in names]

    def _start_fit(self, X, y):
        """Validate parameters, input and labels; set classes_, modalities_, modality_shapes_.

        Returns the arrays, per-sample modality presence, encoded labels and encoder specs.
        """
        self._validate_params()
        arrays = self._modalities(X, reset=True)
        y = column_or_1d(np.asarray(y), warn=True)
        n_samples = next(iter(arrays.values())).shape[0]
        if len(y) != n_samples:
            raise ValueError(f"y has {len(y)} labels but X has {n_samples} samples.")
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"Need samples of at least 2 classes to fit; y holds only one class: {encoder.classes_[0]!r}.")
        if len(arrays) > MAX_MODALITIES:
            raise ValueError(f"At most {MAX_MODALITIES} modalities are supported, got {len(arrays)}.")
        names = list(arrays)
        present, _ = observed_modalities(arrays)
        check_some_modality_observed(present, names)
        specs = self._encoder_specs(names)
        self.classes_ = encoder.classes_
        self.modalities_ = names
        self.modality_shapes_ = {name: array.shape[1:] for name, array in arrays.items()}
        return arrays, present, encoder.transform(y).astype(np.int64), specs

    @staticmethod
    def _stratifiable(y_encoded, fraction):
        counts = np.bincount(y_encoded)
        n_held_out = int(np.ceil(fraction * len(y_encoded)))
        return counts.min() >= 2 and len(y_encoded) - n_held_out >= len(counts) and n_held_out >= len(counts)

    def _use_validation(self, y_encoded):
        feasible = self._stratifiable(y_encoded, self.validation_fraction)
        if self.early_stopping == "auto":
            return feasible and len(y_encoded) >= AUTO_EARLY_STOPPING_MIN_SAMPLES
        if self.early_stopping and not feasible:
            raise ValueError(
                "early_stopping=True needs a stratified validation split with every class on both sides; "
                f"class counts {np.bincount(y_encoded).tolist()} with validation_fraction="
                f"{self.validation_fraction} cannot."
            )
        return bool(self.early_stopping)
