"""How good are the recoveries? Reconstruction error and class alignment per modality."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._input import validate_modalities
from ._imputer import recover


def recovery_report(recoverer, X, y, classifier):
    """Hide each modality in turn on held-out samples, recover it, and score the recovery.

    Parameters
    ----------
    recoverer : fitted recoverer
        A fitted scikit-learn imputer or neural recoverer (e.g. ``clf.recoverer_``).
    X : dict of str to array
        Held-out samples; only samples that observe a modality completely and something else
        are used for that modality.
    y : array-like of shape (n_samples,)
    classifier : fitted DyMoClassifier
        Judges class alignment: the recovered modality is classified *on its own* (every other
        modality absent, ``selection="none"``).

    Returns
    -------
    pandas.DataFrame, one row per modality, with columns ``n_samples``, ``rmse`` (recovered vs
    true values), ``rmse_mean`` (the training-free baseline: the held-out mean of that
    modality), ``class_alignment`` (share of recoveries classified as the sample's true class)
    and ``true_alignment`` (the same for the real modality, the ceiling).
    """
    arrays = validate_modalities(X)
    y = np.asarray(y)
    names = list(arrays)
    n = len(y)
    complete = {name: ~np.isnan(a.reshape(n, -1)).any(1) for name, a in arrays.items()}
    rows = []
    for name in names:
        others = np.zeros(n, dtype=bool)
        for other in names:
            if other != name:
                others |= ~np.isnan(arrays[other].reshape(n, -1)).all(1)
        use = complete[name] & others
        if not use.any():
            continue
        hidden = {key: value[use].copy() for key, value in arrays.items()}
        truth = hidden[name].copy()
        hidden[name][:] = np.nan
        recovered = recover(recoverer, hidden)[name]
        baseline = truth.mean(axis=0, keepdims=True)
        alone = {key: np.full_like(value, np.nan) for key, value in hidden.items()}
        selection = classifier.selection
        try:
            classifier.set_params(selection="none")
            alignment = float(np.mean(classifier.predict({**alone, name: recovered}) == y[use]))
            true_alignment = float(np.mean(classifier.predict({**alone, name: truth}) == y[use]))
        finally:
            classifier.set_params(selection=selection)
        rows.append({
            "modality": name,
            "n_samples": int(use.sum()),
            "rmse": float(np.sqrt(np.mean((recovered - truth) ** 2))),
            "rmse_mean": float(np.sqrt(np.mean((baseline - truth) ** 2))),
            "class_alignment": alignment,
            "true_alignment": true_alignment,
        })
    return pd.DataFrame(rows).set_index("modality")
