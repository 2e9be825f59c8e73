"""Cross-fitted recoveries of the training data (recovery-aware training)."""

import numpy as np
from sklearn.impute import KNNImputer

from dymo_sklearn.recovery._cross_fit import cross_fitted_recoveries


def _identity_views(n):
    """Three views of sample i, each holding i: a recoverer that saw sample i recovers it exactly."""
    ids = np.arange(n, dtype=np.float32)[:, None]
    return {"a": ids.copy(), "b": 10 * ids, "c": 100 * ids}


def test_no_sample_is_recovered_by_a_recoverer_that_saw_it():
    """Catches in-sample recovery: 1-NN fitted on all rows returns each hidden view exactly."""
    arrays = _identity_views(60)
    hidden, recovered = cross_fitted_recoveries(KNNImputer(n_neighbors=1), arrays, 2, np.random.default_rng(0))
    ids = np.arange(60)
    for name, scale in (("a", 1), ("b", 10), ("c", 100)):
        was_hidden = np.isnan(hidden[name][:, 0])
        assert was_hidden.any()
        assert not np.any(recovered[name][was_hidden, 0] == scale * ids[was_hidden])
        np.testing.assert_array_equal(recovered[name][~was_hidden], arrays[name][~was_hidden])


def test_each_sample_hides_some_and_keeps_some_modalities():
    """Catches a sample with nothing hidden (no recovery to learn from) or nothing left observed."""
    arrays = _identity_views(200)
    hidden, recovered = cross_fitted_recoveries(KNNImputer(), arrays, 2, np.random.default_rng(1))
    n_hidden = np.stack([np.isnan(hidden[name][:, 0]) for name in arrays], axis=1).sum(1)
    assert n_hidden.min() == 1 and n_hidden.max() == 2
    assert abs(np.mean(n_hidden == 1) - 0.5) < 0.15  # k uniform in 1 .. 2
    assert all(not np.isnan(array).any() for array in recovered.values())
    for name in arrays:  # the input is not modified
        np.testing.assert_array_equal(arrays[name], _identity_views(200)[name])
