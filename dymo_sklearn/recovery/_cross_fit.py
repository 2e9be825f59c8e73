"""Recoveries of the training data as the network will meet them at prediction time.

For recovery-aware training each training sample hides some of its modalities and has them
recovered by a recoverer that never saw the sample (cross-fitting): a recoverer fitted on all
the training data would recover a training sample from its own stored copy (KNN finds the
sample itself), and the network would learn to trust recoveries far better than those it meets
on new samples.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold

from ._imputer import fit_recoverer, recover


def hide_modalities(arrays, rng):
    """Copy of ``arrays`` with extra missingness, as recovery-aware training hides modalities.

    With several modalities each sample loses k of its present modalities, k uniform in
    1 .. (present - 1), so at least one stays. A single modality instead loses a random
    fraction U(0, 0.8) of its observed entries, keeping at least one.
    """
    names = list(arrays)
    hidden = {name: array.copy() for name, array in arrays.items()}
    n_samples = next(iter(arrays.values())).shape[0]
    if len(names) == 1:
        flat = hidden[names[0]].reshape(n_samples, -1)
        observed = ~np.isnan(flat)
        drop = observed & (rng.random(flat.shape) < rng.uniform(0, 0.8, size=(n_samples, 1)))
        keep_one = np.argmax(observed, axis=1)
        drop[np.arange(n_samples), keep_one] = False
        flat[drop] = np.nan
        return hidden
    present = np.stack([~np.isnan(a.reshape(n_samples, -1)).all(1) for a in arrays.values()], axis=1)
    n_present = present.sum(1)
    n_drop = np.floor(rng.random(n_samples) * np.maximum(n_present - 1, 0)).astype(int) + (n_present > 1)
    # Rank present modalities randomly; drop the n_drop lowest ranks.
    scores = np.where(present, rng.random(present.shape), np.inf)
    ranks = np.argsort(np.argsort(scores, axis=1), axis=1)
    drop = present & (ranks < n_drop[:, None])
    for index, name in enumerate(names):
        hidden[name][drop[:, index]] = np.nan
    return hidden


def cross_fitted_recoveries(recoverer, arrays, n_folds, rng, rows=None):
    """Each sample with some modalities hidden, and those recovered out of fold.

    Parameters
    ----------
    recoverer : unfitted imputer or recoverer
        Cloned and fitted once per fold on the other folds.
    arrays : dict of str to ndarray
        NaN-marked training modalities, unlabeled rows included: they train the recoverers.
    n_folds : int
    rng : numpy.random.Generator
        Draws the hidden modalities and the folds.
    rows : ndarray of int, default=None
        The rows to hide and recover (the labeled ones); None for every row.

    Returns
    -------
    hidden : dict of str to ndarray
        ``arrays[rows]`` with the hidden modalities (or, for a single modality, entries) set to NaN.
    recovered : dict of str to ndarray
        ``hidden`` with every missing entry filled by the recoverer of the other folds.
    """
    n_samples = next(iter(arrays.values())).shape[0]
    hidden = hide_modalities(arrays if rows is None else {name: a[rows] for name, a in arrays.items()}, rng)
    position = np.arange(n_samples) if rows is None else np.full(n_samples, -1)
    if rows is not None:
        position[rows] = np.arange(len(rows))
    recovered = {name: np.empty_like(array) for name, array in hidden.items()}
    folds = KFold(n_splits=min(n_folds, n_samples), shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    for fit_rows, fold_rows in folds.split(np.arange(n_samples)):
        targets = position[fold_rows]
        targets = targets[targets >= 0]
        if not len(targets):
            continue
        fitted = fit_recoverer(recoverer, {name: array[fit_rows] for name, array in arrays.items()})
        for name, values in recover(fitted, {name: array[targets] for name, array in hidden.items()}).items():
            recovered[name][targets] = values
    return hidden, recovered
