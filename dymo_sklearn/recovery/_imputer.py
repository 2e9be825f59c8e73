"""Adapter that lets any scikit-learn imputer recover missing modalities.

The modalities are flattened and concatenated column-wise, so an imputer such as
``KNNImputer`` or ``IterativeImputer`` can use one modality's entries to fill another's.
Observed entries are always copied back unchanged, whatever the imputer does with them.
A recoverer that understands modalities itself declares ``accepts_multimodal_input = True``
and receives the dict of arrays instead.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from .._input import dense_numbers


def _flatten(arrays):
    return np.concatenate([array.reshape(array.shape[0], -1) for array in arrays.values()], axis=1)


def _unflatten(matrix, arrays):
    out, start = {}, 0
    for name, array in arrays.items():
        width = int(np.prod(array.shape[1:]))
        out[name] = matrix[:, start:start + width].reshape(array.shape)
        start += width
    return out


def fit_recoverer(recoverer, arrays):
    """Clone ``recoverer`` and fit it on the training modalities; returns the fitted clone.

    A ``sklearn.frozen.FrozenEstimator`` is its own clone and ignores ``fit``: a recoverer
    fitted elsewhere (on a larger, unlabeled pool, say) is used as it is."""
    if not (hasattr(recoverer, "fit") and hasattr(recoverer, "transform")):
        raise TypeError(
            f"recoverer must have fit and transform methods (a scikit-learn imputer), got {type(recoverer).__name__}."
        )
    fitted = clone(recoverer)
    if getattr(fitted, "accepts_multimodal_input", False):
        return fitted.fit(arrays, None)
    if "keep_empty_features" in fitted.get_params():
        # All-NaN columns would otherwise vanish and shift every later modality.
        fitted.set_params(keep_empty_features=True)
    return fitted.fit(_flatten(arrays), None)  # y given: FrozenEstimator.fit requires it


def recover(fitted, arrays):
    """Recovered copy of ``arrays``: missing entries filled, observed entries untouched."""
    if getattr(fitted, "accepts_multimodal_input", False):
        filled = fitted.transform(arrays)
    else:
        try:
            matrix = fitted.transform(_flatten(arrays))
        except ValueError as error:
            iterative = any(cls.__name__ == "IterativeImputer" for cls in type(fitted).__mro__)
            hint = (" Its rounds may have diverged (e.g. on collinear one-hot columns): bound them with "
                    "min_value and max_value." if iterative else "")
            raise ValueError(
                f"The recoverer {type(fitted).__name__} failed on the data to recover: {error}{hint}"
            ) from error
        matrix = dense_numbers(matrix, f"The recoverer {type(fitted).__name__}")
        with np.errstate(over="ignore"):  # values beyond float32 are refused below, by modality
            matrix = matrix.astype(np.float32)
        expected = sum(int(np.prod(a.shape[1:])) for a in arrays.values())
        if matrix.shape != (next(iter(arrays.values())).shape[0], expected):
            raise ValueError(
                f"The recoverer returned shape {matrix.shape}; expected {(len(matrix), expected)}. "
                "It must keep every column (keep_empty_features=True)."
            )
        filled = _unflatten(matrix, arrays)
    recovered = {}
    for name, array in arrays.items():
        with np.errstate(over="ignore"):
            values = np.asarray(filled[name], dtype=np.float32).reshape(array.shape)
        values = np.where(np.isnan(array), values, array)
        if np.isnan(values).any():
            raise ValueError(f"The recoverer left missing entries in modality {name!r}.")
        if not np.isfinite(values).all():
            raise ValueError(f"The recoverer returned infinite values in modality {name!r} (beyond float32).")
        recovered[name] = values
    return recovered
