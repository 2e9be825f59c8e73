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

from .._calibration import hide_modalities
from ._imputer import fit_recoverer, recover


def cross_fitted_recoveries(recoverer, arrays, n_folds, rng):
    """Each sample with some modalities hidden, and those recovered out of fold.

    Parameters
    ----------
    recoverer : unfitted imputer or recoverer
        Cloned and fitted once per fold on the other folds.
    arrays : dict of str to ndarray
        NaN-marked training modalities.
    n_folds : int
    rng : numpy.random.Generator
        Draws the hidden modalities and the folds.

    Returns
    -------
    hidden : dict of str to ndarray
        ``arrays`` with the hidden modalities (or, for a single modality, entries) set to NaN.
    recovered : dict of str to ndarray
        ``hidden`` with every missing entry filled by the recoverer of the other folds.
    """
    hidden = hide_modalities(arrays, rng)
    n_samples = next(iter(arrays.values())).shape[0]
    recovered = {name: np.empty_like(array) for name, array in arrays.items()}
    folds = KFold(n_splits=min(n_folds, n_samples), shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    for fit_rows, fold_rows in folds.split(np.arange(n_samples)):
        fitted = fit_recoverer(recoverer, {name: array[fit_rows] for name, array in arrays.items()})
        for name, values in recover(fitted, {name: array[fold_rows] for name, array in hidden.items()}).items():
            recovered[name][fold_rows] = values
    return hidden, recovered
