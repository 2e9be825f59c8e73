"""Acceptance threshold fitted on held-out training data (``acceptance_threshold="auto"``).

The paper accepts a recovered modality when its reward is positive. With a weak recoverer that
can still accept wrong-class recoveries often enough to end below discarding them. Here the
threshold is chosen on a held-out part of the training data whose modalities are hidden at
random and recovered by a recoverer that never saw those samples: the paper's threshold 0 stays
unless another beats it there by more than one standard error. The grid spans -inf (accept every candidate, like ``all``), quantiles of
the observed rewards, 0 (the paper's rule) and +inf (accept none, like ``none``).
"""

from __future__ import annotations

import numpy as np

from ._base import check_finite_outputs
from .recovery import recover

_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def hide_modalities(arrays, rng):
    """Copy of ``arrays`` with extra missingness for calibration.

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


def candidate_thresholds(rewards):
    """Threshold grid from the rewards seen with the paper's rule."""
    finite = rewards[np.isfinite(rewards)]
    grid = [-np.inf, 0.0, np.inf]
    if finite.size:
        grid += np.quantile(finite, _QUANTILES).tolist()
    return np.unique(np.asarray(grid, dtype=np.float64))


def best_threshold(accuracy_by_threshold, n_samples):
    """The paper's 0 unless another threshold beats it by more than one standard error.

    Held-out accuracy is noisy; the threshold only moves when the evidence is clear (as with a
    weak recoverer, where accepting nothing wins by many points). Among thresholds that clear
    the margin, the most accurate wins, ties going to the one closest to 0.
    """
    thresholds = np.asarray(list(accuracy_by_threshold), dtype=np.float64)
    accuracy = np.asarray(list(accuracy_by_threshold.values()), dtype=np.float64)
    paper = accuracy_by_threshold.get(0.0, accuracy.max())
    margin = np.sqrt(max(paper * (1.0 - paper), 1e-12) / max(n_samples, 1))
    if accuracy.max() - paper <= margin:
        return 0.0
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(thresholds[best[np.argmin(np.abs(thresholds[best]))]])


def calibrate_threshold(estimator, held_out, y_held_out, rng):
    """Acceptance threshold with the best accuracy on held-out samples with hidden modalities.

    Two passes of ``estimator``'s prediction: the paper's rule gives the rewards that place the
    candidate thresholds, then every threshold runs on the same encodings.

    Returns
    -------
    threshold : float
    accuracy : dict of float to float
        Held-out accuracy of each threshold tried.
    """
    hidden = hide_modalities(held_out, rng)
    recovered = recover(estimator.recoverer_, hidden) if estimator.selection != "none" else None
    paper = estimator._predict_arrays(hidden, ("rewards",), recovered=recovered, thresholds=(0.0,))
    thresholds = candidate_thresholds(paper["rewards"])
    logits = estimator._predict_arrays(hidden, ("threshold_logits",), recovered=recovered,
                                       thresholds=thresholds)["threshold_logits"]
    check_finite_outputs(logits.reshape(len(logits), -1), hidden)
    accuracy = {threshold: float(np.mean(logits[:, index].argmax(1) == y_held_out))
                for index, threshold in enumerate(thresholds)}
    return best_threshold(accuracy, len(y_held_out)), accuracy
