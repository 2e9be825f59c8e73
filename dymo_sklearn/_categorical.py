"""Categorical columns of DataFrame modalities: one-hot indicators whose missing entries stay NaN.

A tabular modality given as a pandas DataFrame may hold string, pandas Categorical or other
non-numeric columns next to numeric and boolean ones. At fit each such column gets its
categories (a Categorical's own, in its order; otherwise the observed values, sorted). Encoding
replaces the column by one indicator per category; a missing value (None, NaN, pd.NA) makes the
whole block NaN, so the recoverer, the network's observed-entry mask and ``explain`` all see a
missing entry, never a row of zeros. A category not seen in training is treated as missing,
with a warning. Numbers written as strings are refused: they are almost always a parsing slip.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = ["has_categories", "fit_categories", "encode_categories"]


# Strings that a reader leaves where a value was missing; as categories they would pass unnoticed.
_MISSING_WORDS = ("nan", "<na>", "none", "null")


def _is_frame(value):
    return hasattr(value, "columns") and hasattr(value, "iloc")


def _categorical_columns(frame):
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return [column for column, dtype in frame.dtypes.items() if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype))]


def has_categories(value):
    """Whether ``value`` is a DataFrame with a non-numeric column."""
    return _is_frame(value) and bool(_categorical_columns(value))


def _plain(value):
    """A category as a JSON-able Python value (numpy scalars unwrapped)."""
    return value.item() if isinstance(value, np.generic) else value


def _holds_only_numbers(values):
    """An object column of numbers (None for missing), as JSON or SQL readers leave them."""
    from pandas.api.types import infer_dtype

    return infer_dtype(values, skipna=True) in ("integer", "floating", "mixed-integer-float", "decimal", "empty")


def _categories(name, frame, column):
    """The column's categories, or None for an object column that holds only numbers."""
    import pandas as pd

    values = frame[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = [_plain(value) for value in values.dtype.categories]
    elif _holds_only_numbers(values):
        return None
    else:
        observed = [_plain(value) for value in values.dropna()]
        other = next((value for value in observed if not isinstance(value, (str, numbers.Real))), None)
        if other is not None:  # lists, dicts, sets: unhashable, and no category either
            raise TypeError(f"Modality {name!r}, column {column!r}: categories must be strings, numbers or "
                            f"booleans, got {other!r} ({type(other).__name__}).")
        booleans = {value for value in observed if isinstance(value, bool)}
        if booleans and any(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in observed):
            # True == 1 and False == 0 in Python: as categories they would merge silently
            raise TypeError(f"Modality {name!r}, column {column!r} mixes booleans and numbers; make it one type.")
        spelled = sorted({value for value in observed if isinstance(value, str) and value.lower() in _MISSING_WORDS})
        if spelled:
            raise TypeError(f"Modality {name!r}, column {column!r} holds {spelled[0]!r} as a value; mark missing "
                            "values with NaN or None, or make the column a pd.Categorical if it is a category.")
        categories = sorted(set(observed), key=lambda v: (type(v).__name__, v))
    refused = [value for value in categories if not isinstance(value, (str, numbers.Real))]
    if refused:
        raise TypeError(f"Modality {name!r}, column {column!r}: categories must be strings, numbers or booleans, "
                        f"got {refused[0]!r} ({type(refused[0]).__name__}).")
    text = [value for value in categories if isinstance(value, str)]
    if isinstance(values.dtype, pd.CategoricalDtype):
        return categories  # a declared code such as a zip code "02139" is a category
    if text and len(pd.to_numeric(pd.Series(text), errors="coerce").dropna()) == len(text):
        raise TypeError(f"Modality {name!r}, column {column!r} holds numbers written as strings (e.g. {text[0]!r}); "
                        "convert it with pd.to_numeric, or make it a pd.Categorical if it is a code.")
    return categories


def fit_categories(X):
    """Columns of every DataFrame modality that has a categorical one.

    Returns
    -------
    dict of str to list of (column, categories or None)
        Per such modality, its columns in order; None marks a numeric (or boolean) column.
    """
    fitted = {}
    for name in X.keys():
        frame = X[name]
        if not has_categories(frame):
            continue
        repeated = sorted({repr(column) for column in frame.columns[frame.columns.duplicated()]})
        if repeated:  # a column is encoded by name: two of one name cannot be told apart
            raise ValueError(f"Modality {name!r} has categorical columns and repeats the column names "
                             f"{', '.join(repeated)}; give every column a distinct name.")
        categorical = set(_categorical_columns(frame))
        fitted[name] = [(_plain(column), _categories(name, frame, column) if column in categorical else None)
                        for column in frame.columns]
    return fitted


def encode_categories(X, fitted):
    """``X`` with each fitted modality's DataFrame turned into a float64 array, categorical
    columns as indicators; other modalities pass through unchanged."""
    import pandas as pd

    encoded = {name: X[name] for name in X.keys()}
    for name, columns in fitted.items():
        if name not in encoded:
            continue
        frame = encoded[name]
        names = [column for column, _ in columns]
        if not _is_frame(frame):
            raise TypeError(f"Modality {name!r} was fitted as a DataFrame with categorical columns; pass a DataFrame "
                            f"with columns {names}, not {type(frame).__name__}.")
        missing = [column for column in names if column not in frame.columns]
        extra = [column for column in frame.columns if column not in set(names)]
        if missing or extra:
            raise ValueError(f"Modality {name!r} must have the columns it was fitted with; missing {missing}, "
                             f"unexpected {extra}.")
        blocks, unseen = [], {}
        for column, categories in columns:
            values = frame[column]
            if categories is None:
                if values.dtype == object and not _holds_only_numbers(values):
                    raise TypeError(f"Modality {name!r}, column {column!r} was numeric in fit and now holds "
                                    "non-numbers (strings are never parsed into numbers).")
                if pd.api.types.is_complex_dtype(values.dtype):  # to_numpy would drop the imaginary part
                    raise TypeError(f"Modality {name!r}, column {column!r} holds complex numbers ({values.dtype}); "
                                    "give their real and imaginary parts (or modulus and phase) as two columns.")
                try:
                    blocks.append(values.to_numpy(dtype=np.float64, na_value=np.nan)[:, None])
                except (TypeError, ValueError):
                    raise TypeError(f"Modality {name!r}, column {column!r} was numeric in fit and now holds "
                                    f"non-numbers ({values.dtype}).") from None
                continue
            # Code -1: missing, or a category not seen in training.
            codes = pd.Index(categories, dtype=object).get_indexer(values.astype(object))
            known = codes >= 0
            block = np.full((len(values), len(categories)), np.nan)
            block[known] = 0.0
            block[known, codes[known]] = 1.0
            new = values[~known & values.notna().to_numpy()]
            if len(new):
                unseen[column] = sorted({repr(value) for value in new})
            blocks.append(block)
        if unseen:
            listed = "; ".join(f"{column!r}: {', '.join(values[:5])}" for column, values in unseen.items())
            warnings.warn(f"Modality {name!r} holds categories not seen in training ({listed}); they are treated as "
                          "missing entries.", UserWarning, stacklevel=5)
        encoded[name] = np.concatenate(blocks, axis=1)
    return encoded
