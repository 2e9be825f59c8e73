"""Cross-fitted recoveries of the training data (recovery-aware training)."""

import numpy as np
from sklearn.impute import KNNImputer

from dymo_sklearn.recovery._cross_fit import cross_fitted_recoveries, hide_modalities


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


def test_hide_modalities_keeps_one_and_hides_at_least_one():
    rng = np.random.default_rng(0)
    arrays = {f"m{i}": rng.normal(size=(500, 3)).astype(np.float32) for i in range(4)}
    arrays["m0"][:100] = np.nan  # some samples already miss m0
    hidden = hide_modalities(arrays, rng)
    present_before = np.stack([~np.isnan(a).all(1) for a in arrays.values()], 1)
    present_after = np.stack([~np.isnan(a).all(1) for a in hidden.values()], 1)
    assert (present_after.sum(1) >= 1).all()
    assert (present_after <= present_before).all()
    assert (present_after.sum(1) < present_before.sum(1)).all()
    assert not np.isnan(arrays["m1"]).any()  # the caller's arrays are untouched


def test_hide_entries_of_a_single_modality():
    rng = np.random.default_rng(1)
    arrays = {"x": rng.normal(size=(300, 6))}
    hidden = hide_modalities(arrays, rng)["x"]
    assert (~np.isnan(hidden)).sum(1).min() >= 1
    assert 0.1 < np.isnan(hidden).mean() < 0.6


def test_only_the_given_rows_are_recovered_and_every_row_trains_the_recoverers():
    """Catches recovering unlabeled rows (wasted work, wrong row order) or leaving them out of
    the recoverers' training: with 1-NN on identity views, a labeled row whose only neighbour
    is an unlabeled one is recovered from that row alone."""
    arrays = _identity_views(120)
    rows = np.arange(0, 120, 3)  # the labeled rows
    hidden, recovered = cross_fitted_recoveries(KNNImputer(n_neighbors=1), arrays, 2, np.random.default_rng(0),
                                                rows=rows)
    assert all(array.shape == (40, 1) for array in hidden.values())
    for name, scale in (("a", 1), ("b", 10), ("c", 100)):
        was_hidden = np.isnan(hidden[name][:, 0])
        np.testing.assert_array_equal(recovered[name][~was_hidden], arrays[name][rows][~was_hidden])
        assert not np.any(recovered[name][was_hidden, 0] == scale * rows[was_hidden])  # never its own copy
    # the views are collinear, so 1-NN on the observed views finds the nearest other id: the
    # unlabeled rows between the labeled ones are among the neighbours found
    found = np.concatenate([recovered["a"][np.isnan(hidden["a"][:, 0]), 0]])
    assert np.isin(found, np.setdiff1d(np.arange(120), rows)).any()


def test_all_rows_given_is_the_same_as_none():
    """Catches a row-position mix-up: naming every row must reproduce the default exactly."""
    arrays = _identity_views(50)
    expected = cross_fitted_recoveries(KNNImputer(n_neighbors=2), arrays, 3, np.random.default_rng(4))
    named = cross_fitted_recoveries(KNNImputer(n_neighbors=2), arrays, 3, np.random.default_rng(4),
                                    rows=np.arange(50))
    for before, after in zip(expected, named):
        for name in arrays:
            np.testing.assert_array_equal(before[name], after[name])
