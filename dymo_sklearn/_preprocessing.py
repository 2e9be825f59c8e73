"""Per-modality preprocessing that keeps missing modalities missing: :class:`ModalityTransformer`."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from ._categorical import has_categories
from ._input import MultimodalDict, dense_numbers, observed_modalities, validate_modalities

__all__ = ["ModalityTransformer"]

_SPECIAL = ("passthrough", "drop")


def transformer_output(name, values, n_rows):
    """A transformer's output for ``n_rows`` rows of modality ``name`` as a float64 (n_rows, width)
    array: sparse output (a default OneHotEncoder's) made dense; anything else that is not one
    number per row and feature refused, naming the modality."""
    values = dense_numbers(values, f"The transformer of modality {name!r}")
    if values.ndim != 2 or values.shape[0] != n_rows:
        raise ValueError(f"The transformer of modality {name!r} returned shape {values.shape} for {n_rows} rows; "
                         "expected one 2-D row per input row.")
    return values.astype(np.float64)


def _is_special(transformer):
    return isinstance(transformer, str) and transformer in _SPECIAL


class ModalityTransformer(TransformerMixin, BaseEstimator):
    """Apply a scikit-learn transformer to each modality, on the samples that have it.

    The multimodal counterpart of ``ColumnTransformer``: put it before a
    :class:`~dymo_sklearn.DyMoClassifier` in a Pipeline to scale a lab table or reduce an image
    without touching the other modalities. Each transformer is cloned and fitted on the rows
    where its modality is present (some entry observed), on the modality flattened to
    ``(n_rows, n_features)``; a sample missing the modality stays missing (all NaN, at the
    transformer's output width). When the output width equals the input width the per-sample
    shape is kept (an image stays an image); otherwise the modality becomes ``(n, width)``.
    Missing entries inside a present row go to the transformer as NaN (``StandardScaler`` and
    most scikit-learn scalers ignore them in fit and keep them in transform).

    Parameters
    ----------
    transformers : dict of str to transformer, "passthrough" or "drop"
        The transformer of each named modality. Nested parameters are reachable as
        ``<modality>__<parameter>``, e.g. ``modalitytransformer__labs__with_mean`` in a grid.
    remainder : {"passthrough", "drop"}, default="passthrough"
        What happens to modalities that ``transformers`` does not name.

    Attributes
    ----------
    transformers_ : dict of str to fitted transformer, "passthrough" or "drop"
    output_widths_ : dict of str to int
        Features each fitted transformer returns per sample.
    modalities_ : list of str
        Modalities seen in fit, in order.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> model = make_pipeline(ModalityTransformer({"labs": StandardScaler()}),
    ...                       DyMoClassifier())  # doctest: +SKIP
    """

    def __init__(self, transformers, *, remainder="passthrough"):
        self.transformers = transformers
        self.remainder = remainder

    # ------------------------------------------------------------ parameters
    def get_params(self, deep=True):
        params = super().get_params(deep=False)
        if deep and isinstance(self.transformers, dict):
            for name, transformer in self.transformers.items():
                params[name] = transformer
                if hasattr(transformer, "get_params"):
                    params.update({f"{name}__{key}": value for key, value in transformer.get_params(deep=True).items()})
        return params

    def set_params(self, **params):
        own = {key: params.pop(key) for key in ("transformers", "remainder") if key in params}
        super().set_params(**own)
        if params:
            transformers = dict(self.transformers)  # never edit the dict the caller passed
            nested = {}
            for key, value in params.items():
                name, _, sub = key.partition("__")
                if name not in transformers:
                    raise ValueError(f"Invalid parameter {key!r} for ModalityTransformer: no modality {name!r} "
                                     f"among {sorted(transformers)}.")
                if sub:
                    nested.setdefault(name, {})[sub] = value
                else:
                    transformers[name] = value
            for name, values in nested.items():
                transformers[name] = clone(transformers[name]).set_params(**values)
            self.transformers = transformers
        return self

    def set_output(self, *, transform=None):
        """Forward ``set_output`` to every transformer; the output stays a :class:`MultimodalDict`."""
        if isinstance(self.transformers, dict):
            for transformer in self.transformers.values():
                if hasattr(transformer, "set_output"):
                    transformer.set_output(transform=transform)
        return self

    # ------------------------------------------------------------------- fit
    def _check_parameters(self):
        if not isinstance(self.transformers, dict):
            raise TypeError(f"transformers must be a dict of modality name to transformer, got "
                            f"{type(self.transformers).__name__}.")
        if self.remainder not in _SPECIAL:
            raise ValueError(f"remainder must be 'passthrough' or 'drop', got {self.remainder!r}.")
        for name, transformer in self.transformers.items():
            if not (_is_special(transformer) or (hasattr(transformer, "fit") and hasattr(transformer, "transform"))):
                raise TypeError(f"The transformer of modality {name!r} must have fit and transform, or be "
                                f"'passthrough' or 'drop'; got {transformer!r}.")

    def fit(self, X, y=None):
        """Fit each modality's transformer on the samples where that modality is present.

        Parameters
        ----------
        X : dict of str to array-like or MultimodalDict
        y : array-like of shape (n_samples,), optional
            Passed on (restricted to the same rows) to transformers that use it.

        Returns
        -------
        self
        """
        self._check_parameters()
        if not hasattr(X, "keys"):
            raise TypeError(f"Expected a mapping of modality name to array, got {type(X).__name__}.")
        unknown = sorted(set(self.transformers) - set(X.keys()))
        if unknown:
            raise ValueError(f"transformers names modalities {unknown} that X does not have: {list(X.keys())}.")
        arrays, _ = self._split(X, {name: self.transformers.get(name, self.remainder) for name in X.keys()})
        present = observed_modalities(arrays)[0] if arrays else None
        self.modalities_ = list(X.keys())
        self.transformers_ = {}
        self.output_widths_ = {}
        for name in self.modalities_:
            transformer = self.transformers.get(name, self.remainder)
            if _is_special(transformer):
                self.transformers_[name] = transformer
                continue
            array = arrays[name]
            rows = present[:, list(arrays).index(name)]
            if not rows.any():
                raise ValueError(f"Modality {name!r} is missing in every sample: its transformer cannot be fitted.")
            fitted = clone(transformer).fit(array[rows].reshape(int(rows.sum()), -1),
                                            None if y is None else np.asarray(y)[rows])
            self.transformers_[name] = fitted
            # The output width of one sample, for a batch in which nobody has the modality.
            first = np.flatnonzero(rows)[:1]
            self.output_widths_[name] = transformer_output(name, fitted.transform(array[first].reshape(1, -1)), 1).shape[1]
        return self

    def transform(self, X):
        """Transformed modalities as a :class:`MultimodalDict`; missing samples stay all-NaN.

        A modality absent from ``X`` stays absent (missing for every sample).
        """
        check_is_fitted(self)
        if not hasattr(X, "keys"):
            raise TypeError(f"Expected a mapping of modality name to array, got {type(X).__name__}.")
        unseen = [name for name in X.keys() if name not in self.transformers_]
        if unseen:
            raise ValueError(f"Modality {unseen[0]!r} was not seen in fit; fitted on {self.modalities_}.")
        arrays, frames = self._split(X, self.transformers_)
        present, _ = observed_modalities(arrays) if arrays else (None, None)
        out = {}
        for name in X.keys():
            transformer = self.transformers_[name]
            if isinstance(transformer, str):
                if transformer == "passthrough":
                    out[name] = frames[name] if name in frames else arrays[name]
                continue
            out[name] = self._transform_modality(name, transformer, arrays[name],
                                                 present[:, list(arrays).index(name)], self.output_widths_[name])
        return MultimodalDict(**out)

    @staticmethod
    def _split(X, transformers):
        """(validated arrays, DataFrames with categorical columns passed through as they are).

        A DataFrame modality with categorical columns can only pass through (or be dropped):
        the estimator after it one-hot encodes it."""
        frames = {name: X[name] for name in X.keys()
                  if has_categories(X[name]) and transformers.get(name) in _SPECIAL}
        refused = [name for name in X.keys() if has_categories(X[name]) and name not in frames]
        if refused:
            raise TypeError(f"Modality {refused[0]!r} is a DataFrame with categorical columns; a ModalityTransformer "
                            "passes it through (or drops it) and the estimator one-hot encodes it. Transform it "
                            "before, or give its numeric columns as a separate modality.")
        rest = {name: X[name] for name in X.keys() if name not in frames}
        arrays = validate_modalities(rest) if rest else {}
        lengths = {len(value) for value in frames.values()} | {len(value) for value in arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"Modalities have inconsistent numbers of samples: {sorted(lengths)}.")
        return arrays, frames

    @staticmethod
    def _transform_modality(name, transformer, array, rows, width):
        n_samples = array.shape[0]
        flat = array.reshape(n_samples, -1)
        if rows.any():
            values = transformer_output(name, transformer.transform(flat[rows]), int(rows.sum()))
            lost = np.isnan(values).all(axis=1) if values.shape[1] else np.zeros(len(values), bool)
            if lost.any():
                raise ValueError(f"The transformer of modality {name!r} returned only NaN for {int(lost.sum())} "
                                 "sample(s) that have the modality: they would silently become missing.")
        else:  # nobody in X has it: all missing, at the transformer's output width
            values = np.empty((0, width))
        output = np.full((n_samples, values.shape[1]), np.nan)
        output[rows] = values
        if values.shape[1] == flat.shape[1]:
            output = output.reshape(array.shape)
        return output.astype(np.float32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
