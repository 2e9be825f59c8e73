"""Input containers and validation: every accepted input becomes float32 arrays with NaN masks.

A sample *misses* a modality when every entry of its array is NaN; it has *intra-modality*
missingness when only some entries are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse
from skorch.helper import SliceDict

from ._categorical import has_categories

__all__ = ["MultimodalDict", "validate_modalities", "observed_modalities"]

_MAX_LISTED_ROWS = 10


class MultimodalDict(SliceDict):
    """Dict of per-modality arrays that scikit-learn can index by sample.

    ``len()`` is the number of samples, and indexing with a slice, a boolean mask or an
    integer array returns a ``MultimodalDict`` holding those samples of every modality, which is
    what cross-validation and grid search need. Values are arrays of shape ``(n_samples, ...)``;
    NaN marks missing entries.

    Examples
    --------
    >>> import numpy as np
    >>> X = MultimodalDict(image=np.zeros((4, 1, 8, 8)), table=np.ones((4, 3)))
    >>> len(X), len(X[:2]), sorted(X[:2])
    (4, 2, ['image', 'table'])
    """

    def __init__(self, **modalities):
        arrays = {name: value if has_categories(value) else _as_array_keep_sparse(name, value)
                  for name, value in modalities.items()}
        super().__init__(**arrays)

    def __getitem__(self, rows):
        if isinstance(rows, (str, int)):
            return super().__getitem__(rows)  # a modality by name; an integer is refused, as by SliceDict
        # A DataFrame with categorical columns is kept whole (the estimator one-hot encodes it);
        # it is indexed by position, as arrays are (scikit-learn indexes with ``X[rows, ...]``).
        frame_rows = rows[0] if isinstance(rows, tuple) and len(rows) == 2 and rows[1] is Ellipsis else rows
        return type(self)(**{name: value.iloc[frame_rows] if has_categories(value) else value[rows]
                             for name, value in self.items()})


def _as_array_keep_sparse(name, value):
    if scipy.sparse.issparse(value):
        raise TypeError(
            f"Modality {name!r} is a sparse matrix; convert it with `.toarray()` first "
            "(missing entries must be NaN, which sparse formats cannot represent)."
        )
    if isinstance(value, Mapping):
        raise TypeError(f"Modality {name!r} is itself a mapping ({type(value).__name__}); give each "
                        "modality as one array, and nested modalities as separate keys.")
    if hasattr(value, "to_numpy"):  # pandas DataFrame / Series
        return _pandas_to_numpy(name, value)
    if isinstance(value, np.ma.MaskedArray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"Modality {name!r} has unsupported dtype {value.dtype}; expected numbers.")
        return np.ma.filled(value.astype(np.float64), np.nan)  # masked entries are missing
    if hasattr(value, "shape"):
        return value
    try:
        return np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"Modality {name!r} cannot be read as one array: {error}") from None


def _pandas_to_numpy(name, frame):
    """Numbers (nullable dtypes included, pd.NA -> NaN) as float64; anything else is refused."""
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    dtypes = frame.dtypes.to_dict() if hasattr(frame, "columns") else {frame.name: frame.dtype}
    complex_columns = [str(column) for column, dtype in dtypes.items() if is_complex_dtype(dtype)]
    if complex_columns:
        raise TypeError(f"Modality {name!r}: columns {complex_columns} hold complex numbers; give their real and "
                        "imaginary parts (or modulus and phase) as two columns.")
    bad = {str(column): str(dtype) for column, dtype in dtypes.items()
           if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype))}
    if bad:
        raise TypeError(f"Modality {name!r} has non-numeric columns {bad}; DyMoClassifier and MARSClassifier "
                        "one-hot encode them (missing values stay missing), plain validation does not.")
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


def _object_to_float64(name, value):
    """Object arrays of numbers (None and pd.NA = missing); strings are never parsed."""
    flat = value.ravel()
    kinds = {type(element) for element in flat}
    refused = sorted(kind.__name__ for kind in kinds
                     if issubclass(kind, (complex, np.complexfloating))
                     or not (issubclass(kind, (int, float, np.number, np.bool_)) or kind is type(None)
                             or kind.__name__ == "NAType"))
    if refused:
        raise TypeError(f"Modality {name!r} holds non-numeric data (object array with {refused}); strings are "
                        "not parsed into numbers: convert them explicitly.")
    missing = np.array([element is None or type(element).__name__ == "NAType" for element in flat], dtype=bool)
    filled = flat.copy()
    filled[missing] = np.nan
    return filled.astype(np.float64).reshape(value.shape)


def _to_float32(name, value):
    value = _as_array_keep_sparse(name, value)
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu()
        # numpy has no bfloat16: widen low-precision floats first (exactly representable).
        value = (value.float() if value.is_floating_point() else value).numpy()
    value = np.asarray(value)
    if value.dtype.kind in "USV":
        raise TypeError(
            f"Modality {name!r} holds non-numeric data (dtype {value.dtype}); strings are not parsed "
            "into numbers: convert them explicitly."
        )
    if value.dtype.kind == "O":
        value = _object_to_float64(name, value)
    elif value.dtype.kind not in "biuf":
        raise TypeError(f"Modality {name!r} has unsupported dtype {value.dtype}; expected numbers.")
    if value.ndim < 2:
        raise ValueError(
            f"Modality {name!r} must have shape (n_samples, ...) with at least 2 dimensions, got "
            f"shape {value.shape}; use `.reshape(-1, 1)` for a single feature."
        )
    if value.dtype.kind == "f" and np.isinf(value).any():
        raise ValueError(f"Modality {name!r} contains infinite values; use NaN to mark missing entries.")
    with np.errstate(over="ignore"):
        converted = np.asarray(value, dtype=np.float32)
    if np.isinf(converted).any():
        raise ValueError(
            f"Modality {name!r} holds values beyond float32's range (|x| > {np.finfo(np.float32).max:.3g}, "
            f"largest {np.nanmax(np.abs(value)):.3g}); rescale it.")
    # torch takes neither negative strides (np.flip, a[::-1] views) nor, without a warning,
    # read-only memory: such arrays are copied here, every other float32 array is used as is.
    return np.require(converted, dtype=np.float32, requirements=["C", "W"])


def validate_modalities(X, *, reference_shapes=None):
    """Turn a mapping of arrays into an ordered dict of float32 arrays.

    Parameters
    ----------
    X : mapping of str to array-like
        One array per modality, first dimension = samples, NaN = missing.
    reference_shapes : dict of str to tuple, optional
        The fitted modalities and their per-sample shapes. Keys of ``X`` outside it raise; keys it
        has that ``X`` lacks become all-NaN (that modality is missing for every sample).

    Returns
    -------
    dict of str to ndarray
        Float32 arrays, in the order of ``reference_shapes`` when given.
    """
    if scipy.sparse.issparse(X):
        raise TypeError("Sparse input is not supported; convert it with `.toarray()` first.")
    if not isinstance(X, Mapping):
        raise TypeError(f"Expected a mapping of modality name to array, got {type(X).__name__}.")
    if len(X.keys()) == 0:
        raise ValueError("Input holds no modalities.")
    for key in X.keys():
        if not isinstance(key, str):
            raise TypeError(f"Modality names must be strings, got {key!r} ({type(key).__name__}).")
    arrays = {name: _to_float32(name, X[name]) for name in X.keys()}

    lengths = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name!r}: {n}" for name, n in lengths.items())
        raise ValueError(f"Modalities have inconsistent numbers of samples ({listed}).")
    n_samples = next(iter(lengths.values()))
    if n_samples == 0:
        raise ValueError("Input holds 0 samples; at least 1 is required.")

    if reference_shapes is None:
        for name, array in arrays.items():
            if 0 in array.shape[1:]:
                raise ValueError(f"Modality {name!r} has an empty per-sample shape {array.shape[1:]}.")
        return arrays

    unknown = [name for name in arrays if name not in reference_shapes]
    if unknown:
        raise ValueError(
            f"Unknown modalities {unknown}; the estimator was fitted on {list(reference_shapes)}."
        )
    ordered = {}
    for name, shape in reference_shapes.items():
        if name not in arrays:
            ordered[name] = np.full((n_samples, *shape), np.nan, dtype=np.float32)
            continue
        if arrays[name].shape[1:] != tuple(shape):
            raise ValueError(
                f"Modality {name!r} has per-sample shape {arrays[name].shape[1:]}, "
                f"but the estimator was fitted with shape {tuple(shape)}."
            )
        ordered[name] = arrays[name]
    return ordered


def observed_modalities(arrays):
    """Per-sample observation state of each modality.

    Returns
    -------
    present : ndarray of bool, shape (n_samples, n_modalities)
        The modality has at least one observed entry.
    complete : ndarray of bool, shape (n_samples, n_modalities)
        Every entry of the modality is observed.
    """
    observed = [~np.isnan(array.reshape(array.shape[0], -1)) for array in arrays.values()]
    present = np.stack([mask.any(axis=1) for mask in observed], axis=1)
    complete = np.stack([mask.all(axis=1) for mask in observed], axis=1)
    return present, complete


def check_some_modality_observed(present, names):
    """Raise a ValueError naming the samples that have no observed entry at all."""
    empty = np.flatnonzero(~present.any(axis=1))
    if empty.size:
        shown = ", ".join(map(str, empty[:_MAX_LISTED_ROWS])) + (" ..." if empty.size > _MAX_LISTED_ROWS else "")
        raise ValueError(
            f"{empty.size} sample(s) have no observed entry in any modality ({', '.join(names)}): "
            f"rows {shown}. There is no evidence to classify them; drop them first."
        )


def split_columns(array, column_groups, feature_names=None):
    """Split a 2-D array into named tabular modalities.

    Parameters
    ----------
    array : ndarray of shape (n_samples, n_features)
    column_groups : dict of str to sequence of int or str, or None
        Column indices (or names, when ``feature_names`` is given) of each modality. None means
        the whole array is one modality called ``"x"``.
    feature_names : ndarray of str, optional
    """
    if column_groups is None:
        return {"x": array}
    if not isinstance(column_groups, Mapping) or not column_groups:
        raise TypeError("column_groups must be a non-empty dict of modality name to columns.")
    n_features = array.shape[1]
    positions = {name: i for i, name in enumerate(feature_names)} if feature_names is not None else {}
    used = np.zeros(n_features, dtype=int)
    modalities = {}
    for name, columns in column_groups.items():
        if isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__"):
            raise TypeError(f"Modality {name!r}: column_groups values must be lists of columns, got {columns!r}.")
        indices = []
        for column in columns:
            if isinstance(column, (bool, np.bool_)):
                raise TypeError(f"Modality {name!r}: column {column!r} is a boolean, not a column index or name.")
            if isinstance(column, str):
                if column not in positions:
                    raise ValueError(f"Modality {name!r}: column {column!r} is not in the input's columns.")
                indices.append(positions[column])
            elif isinstance(column, (int, np.integer)) and -n_features <= column < n_features:
                indices.append(int(column) % n_features)
            else:
                raise ValueError(f"Modality {name!r}: column {column!r} is out of range for {n_features} features.")
        if not indices:
            raise ValueError(f"Modality {name!r} has no columns.")
        used[indices] += 1
        modalities[name] = array[:, indices]
    if (used > 1).any():
        raise ValueError(f"Columns {np.flatnonzero(used > 1).tolist()} belong to more than one modality.")
    if (used == 0).any():
        uncovered = np.flatnonzero(used == 0)
        shown = feature_names[uncovered].tolist() if feature_names is not None else uncovered.tolist()
        raise ValueError(f"Columns {shown} belong to no modality of column_groups; add them to a group "
                         "or drop them from X (nothing is dropped silently).")
    return modalities


def dense_numbers(values, who):
    """What a transformer or recoverer returned, as a dense numeric ndarray: sparse output is made
    dense; anything but numbers is refused with a TypeError naming ``who``."""
    if scipy.sparse.issparse(values):
        values = values.toarray()
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{who} returned {values.dtype} values; it must return numbers.")
    return values

