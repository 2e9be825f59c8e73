"""A planted problem: half of the recovered modalities are real images of the wrong class."""

import numpy as np
from sklearn.base import BaseEstimator

from dymo_sklearn.datasets import make_multiview_digits


class PlantedRecoverer(BaseEstimator):
    """Returns prepared recoveries for a known test set (modality-aware recoverer protocol)."""

    accepts_multimodal_input = True

    def __init__(self, planted=None):
        self.planted = planted

    def fit(self, arrays):
        return self

    def transform(self, arrays):
        n = next(iter(arrays.values())).shape[0]
        if self.planted is None or len(next(iter(self.planted.values()))) != n:
            return {name: np.nan_to_num(array) for name, array in arrays.items()}
        return {name: self.planted[name] for name in arrays}


def test_dymo_rejects_wrong_class_recoveries_and_beats_fusing_all(fitted_multiview):
    clf, X, y = fitted_multiview
    n = len(y)
    rng = np.random.default_rng(0)
    pool, pool_y = make_multiview_digits(3, background=1.0, random_state=123)
    by_class = {k: np.flatnonzero(pool_y == k) for k in range(10)}

    observed = rng.integers(0, 3, size=n)  # each sample keeps one view
    X_test, planted, wrong = {}, {}, np.zeros((n, 3), dtype=bool)
    for m, name in enumerate(clf.modalities_):
        missing = observed != m
        X_test[name] = np.where(missing[:, None, None, None], np.nan, X[name])
        wrong[:, m] = missing & (rng.random(n) < 0.5)
        shown_class = np.where(wrong[:, m], (y + rng.integers(1, 10, size=n)) % 10, y)
        planted[name] = pool[name][[rng.choice(by_class[k]) for k in shown_class]]
        planted[name] = np.where(missing[:, None, None, None], planted[name], X[name]).astype(np.float32)

    recoverer = clf.recoverer_
    try:
        clf.recoverer_ = PlantedRecoverer(planted)
        clf.set_params(selection="dymo")
        report = clf.explain(X_test)
        accuracy = {mode: clf.set_params(selection=mode).score(X_test, y) for mode in ("none", "all", "dymo")}
    finally:
        clf.recoverer_ = recoverer
        clf.set_params(selection="dymo")

    accepted = np.stack([report[f"step_{name}"].to_numpy() > 0 for name in clf.modalities_], axis=1)
    candidates = np.stack([observed != m for m in range(3)], axis=1)
    right = candidates & ~wrong
    wrong_accepted = accepted[wrong].mean()
    right_accepted = accepted[right].mean()
    rates = f"wrong accepted {wrong_accepted:.2f}, right accepted {right_accepted:.2f}, accuracy {accuracy}"
    assert wrong_accepted < 0.35, rates
    assert right_accepted > 0.4, rates
    assert right_accepted > 2 * wrong_accepted, rates
    assert accuracy["dymo"] > accuracy["all"] + 0.05, accuracy
    assert accuracy["dymo"] >= accuracy["none"] - 0.01, accuracy
