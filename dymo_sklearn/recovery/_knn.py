"""K-nearest-neighbour recovery computed with torch, on the model's device, batch by batch."""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._devices import resolve_device


# Rows that observe the same columns are compared on those columns only; beyond this many distinct
# patterns in a batch the per-pattern products cost more in overhead than the skipped columns save.
_MAX_PATTERNS_GROUPED = 32


def nan_euclidean_distances(X, Y):
    """Euclidean distances over the coordinates both rows observe, scaled up to all coordinates.

    d(x, y)^2 = (n_features / n_common) * sum over common coordinates of (x - y)^2, NaN when
    two rows share no observed coordinate: scikit-learn's ``nan_euclidean_distances``.
    """
    x_present = ~torch.isnan(X)
    patterns, pattern_of_row = torch.unique(x_present, dim=0, return_inverse=True)
    if len(patterns) > _MAX_PATTERNS_GROUPED:
        return _restricted_distances(X, Y, X.shape[1])
    # A coordinate a row does not observe adds zero to every term, so leaving it out of the
    # products changes nothing but the work: with whole modalities missing most columns go.
    distances = torch.empty(X.shape[0], Y.shape[0], dtype=X.dtype, device=X.device)
    for index, columns in enumerate(patterns):
        rows = torch.nonzero(pattern_of_row == index).squeeze(1)
        distances[rows] = _restricted_distances(X[rows][:, columns], Y[:, columns], X.shape[1])
    return distances


def _restricted_distances(X, Y, n_features):
    """nan-Euclidean distances on the given columns, scaled to ``n_features`` coordinates."""
    x_missing, y_missing = torch.isnan(X), torch.isnan(Y)
    if not (x_missing.any() or y_missing.any()):  # the usual case after grouping: one product, not four
        squared = (X * X).sum(dim=1, keepdim=True) + (Y * Y).sum(dim=1) - 2.0 * (X @ Y.T)
        common = torch.full_like(squared, X.shape[1])
    else:
        x, x_present = torch.nan_to_num(X, nan=0.0), (~x_missing).to(X.dtype)
        y, y_present = torch.nan_to_num(Y, nan=0.0), (~y_missing).to(Y.dtype)
        squared = (x * x) @ y_present.T + x_present @ (y * y).T - 2.0 * (x @ y.T)
        common = x_present @ y_present.T
    squared = squared.clamp_min(0.0) / common.clamp_min(1.0) * n_features
    return torch.where(common > 0, squared.sqrt(), torch.full_like(squared, float("nan")))


class KNNRecoverer(TransformerMixin, BaseEstimator):
    """scikit-learn's ``KNNImputer``, computed with torch on a device.

    Each missing entry is the (weighted) mean of that feature over the ``n_neighbors`` training
    rows nearest by nan-Euclidean distance among those that observe the feature; a row that
    shares no observed feature with any such row gets the feature's training mean. The results
    equal ``KNNImputer``'s up to float rounding (and the choice among exactly tied neighbours).
    Distances are computed ``batch_size`` rows at a time, so memory is bounded by
    ``batch_size`` times the number of training rows, whatever the number of rows transformed.

    Parameters
    ----------
    n_neighbors : int, default=5
    weights : {"uniform", "distance"}, default="uniform"
        As in ``KNNImputer``: equal weights, or inverse distance (exact matches take all weight).
    keep_empty_features : bool, default=False
        Keep features never observed in training (filled with 0) instead of dropping them.
    batch_size : int, default=1024
        Rows whose distances are computed at once.
    device : {"auto", "cpu", "cuda"}, default="auto"
    dtype : {"float64", "float32"}, default="float64"
        Precision of the distances: float64 matches ``KNNImputer``; float32 is faster on GPUs
        and may pick another neighbour where two are nearly tied.

    Attributes
    ----------
    n_features_in_ : int
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "weights": [StrOptions({"uniform", "distance"})],
        "keep_empty_features": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "dtype": [StrOptions({"float64", "float32"})],
    }

    def __init__(self, n_neighbors=5, *, weights="uniform", keep_empty_features=False, batch_size=1024,
                 device="auto", dtype="float64"):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.keep_empty_features = keep_empty_features
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X, y=None):
        """Store the training rows; ``y`` is ignored."""
        self._validate_params()
        # float32 stays float32, as in KNNImputer: half the memory (and the size of a saved model).
        X = validate_data(self, X, dtype=(np.float64, np.float32), ensure_all_finite="allow-nan")
        self.fit_X_ = X
        missing = np.isnan(X)
        self.valid_features_ = ~missing.all(axis=0)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # mean of a never-observed feature
            self.feature_means_ = np.nan_to_num(np.nanmean(X, axis=0))
        # Features observed by the same training rows share their donors: one neighbour search
        # per such group, not per feature (a missing modality makes all its features one group).
        patterns, group_of_feature = np.unique(~missing[:, self.valid_features_], axis=1, return_inverse=True)
        valid = np.flatnonzero(self.valid_features_)
        self.donor_groups_ = [
            (np.flatnonzero(patterns[:, g]), valid[np.asarray(group_of_feature).ravel() == g])
            for g in range(patterns.shape[1])
        ]
        return self

    def transform(self, X):
        """Copy of ``X`` with every missing entry imputed."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), ensure_all_finite="allow-nan", reset=False,
                          copy=True)
        device = resolve_device(self.device)
        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        fit_X = torch.as_tensor(self.fit_X_, device=device, dtype=dtype)
        # Each group's donor values, gathered once per call rather than once per batch.
        groups = [(torch.as_tensor(donors, device=device), fit_X[donors][:, features], features)
                  for donors, features in self.donor_groups_]
        missing = np.isnan(X)
        rows = np.flatnonzero(missing[:, self.valid_features_].any(axis=1))
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            distances = nan_euclidean_distances(torch.as_tensor(X[batch], device=device, dtype=dtype), fit_X)
            for donors, donor_values, features in groups:
                receivers = missing[batch][:, features].any(axis=1)
                if receivers.any():
                    imputed = self._impute(distances[torch.as_tensor(receivers, device=device)][:, donors],
                                           donor_values, features)
                    block = X[batch[receivers]][:, features]
                    X[np.ix_(batch[receivers], features)] = np.where(np.isnan(block), imputed, block)
        X[:, ~self.valid_features_] = 0.0
        return X if self.keep_empty_features else X[:, self.valid_features_]

    def _impute(self, distances, donor_values, features):
        """(receivers, features) mean of the nearest donors' values; the feature mean without any."""
        k = min(self.n_neighbors, distances.shape[1])
        nearest, index = torch.nan_to_num(distances, nan=float("inf")).topk(k, dim=1, largest=False)
        if self.weights == "uniform":
            weight = torch.isfinite(nearest).to(nearest.dtype)
        else:
            exact = nearest == 0
            weight = torch.where(exact.any(dim=1, keepdim=True), exact.to(nearest.dtype), 1.0 / nearest)
        values = donor_values[index]  # (receivers, k, features)
        total = weight.sum(dim=1, keepdim=True)
        imputed = (weight[..., None] * values).sum(dim=1) / total.clamp_min(torch.finfo(total.dtype).tiny)
        no_neighbour = (total == 0).squeeze(1)
        means = torch.as_tensor(self.feature_means_[features], device=imputed.device, dtype=imputed.dtype)
        imputed[no_neighbour] = means
        return imputed.cpu().numpy()
