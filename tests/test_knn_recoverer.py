"""KNNRecoverer equals scikit-learn's KNNImputer, batch by batch, on whole and partial gaps."""

import numpy as np
import pytest
import torch
from sklearn.impute import KNNImputer
from sklearn.metrics.pairwise import nan_euclidean_distances as sklearn_nan_euclidean

from dymo_sklearn.datasets import apply_missing, make_multiview_digits
from dymo_sklearn.recovery import KNNRecoverer
from dymo_sklearn.recovery._knn import _MAX_PATTERNS_GROUPED, nan_euclidean_distances


def _flat(X):
    return np.concatenate([X[name].reshape(len(X[name]), -1) for name in X], axis=1)


@pytest.fixture(scope="module")
def digits_with_gaps():
    X, _ = make_multiview_digits(3, n_samples=300, random_state=0)
    train = apply_missing(X[:200], 0.34, random_state=0)  # incomplete training data: per-group donors
    test = apply_missing(X[200:], 0.67, random_state=1)
    train_flat, test_flat = _flat(train).astype(np.float64), _flat(test).astype(np.float64)
    rng = np.random.default_rng(0)
    train_flat[rng.random(train_flat.shape) < 0.05] = np.nan  # scattered entries too
    test_flat[rng.random(test_flat.shape) < 0.05] = np.nan
    return train_flat, test_flat


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("n_neighbors", [1, 5])
def test_equals_knn_imputer(digits_with_gaps, weights, n_neighbors):
    train, test = digits_with_gaps
    expected = KNNImputer(n_neighbors=n_neighbors, weights=weights).fit(train).transform(test)
    ours = KNNRecoverer(n_neighbors=n_neighbors, weights=weights, batch_size=37, device="cpu").fit(train)
    np.testing.assert_allclose(ours.transform(test), expected, rtol=1e-6, atol=1e-6)


def test_batch_size_does_not_change_the_result(digits_with_gaps):
    train, test = digits_with_gaps
    one = KNNRecoverer(batch_size=1, device="cpu").fit(train).transform(test)
    np.testing.assert_array_equal(KNNRecoverer(batch_size=4096, device="cpu").fit(train).transform(test), one)


def test_no_shared_feature_falls_back_to_the_training_mean_and_empty_features():
    """Rows sharing no observed feature with any donor get the feature's mean, as in KNNImputer;
    a feature never observed in training is dropped, or kept as zeros."""
    train = np.array([[1.0, np.nan, 5.0, np.nan], [3.0, np.nan, 7.0, np.nan], [np.nan, 2.0, 9.0, np.nan]])
    test = np.array([[np.nan, 4.0, np.nan, 1.0], [2.0, np.nan, np.nan, np.nan]])
    for keep in (False, True):
        expected = KNNImputer(n_neighbors=2, keep_empty_features=keep).fit(train).transform(test)
        ours = KNNRecoverer(n_neighbors=2, keep_empty_features=keep, device="cpu").fit(train).transform(test)
        np.testing.assert_allclose(ours, expected)
    # row 0 shares only feature 1 with row 2, which has no value of feature 0: mean of 1 and 3
    assert ours[0, 0] == 2.0


def test_observed_entries_pass_through_and_input_is_not_modified(digits_with_gaps):
    train, test = digits_with_gaps
    before = test.copy()
    out = KNNRecoverer(device="cpu").fit(train).transform(test)
    observed = ~np.isnan(test)
    np.testing.assert_array_equal(out[observed], test[observed])
    np.testing.assert_array_equal(test, before)
    assert not np.isnan(out).any()


def test_feature_count_is_checked():
    recoverer = KNNRecoverer(device="cpu").fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="3 features"):
        recoverer.transform(np.zeros((2, 5)))


def test_float32_input_matches_within_float32_rounding(digits_with_gaps):
    """KNNImputer keeps float32 input in float32; we compute in float64: equal to float32 rounding."""
    train, test = (array.astype(np.float32) for array in digits_with_gaps)
    expected = KNNImputer(weights="distance").fit(train).transform(test)
    ours = KNNRecoverer(weights="distance", device="cpu").fit(train).transform(test)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scattered", [False, True], ids=["whole-modality gaps", "scattered gaps"])
@pytest.mark.parametrize("complete_donors", [True, False])
def test_distances_equal_scikit_learns_per_pattern_and_all_at_once(scattered, complete_donors):
    """Whole-modality gaps leave few patterns, computed pattern by pattern on the observed columns;
    scattered gaps leave more than the grouping takes, computed at once; both equal scikit-learn."""
    X, _ = make_multiview_digits(3, n_samples=260, random_state=0)
    donors = X[:60] if complete_donors else apply_missing(X[:60], 0.34, random_state=2)
    donors, rows = _flat(donors).astype(np.float64), _flat(apply_missing(X[60:], 0.67, random_state=3)).astype(np.float64)
    if scattered:
        rows[np.random.default_rng(0).random(rows.shape) < 0.05] = np.nan
    n_patterns = len(np.unique(np.isnan(rows), axis=0))
    assert (n_patterns > _MAX_PATTERNS_GROUPED) == scattered
    ours = nan_euclidean_distances(torch.as_tensor(rows), torch.as_tensor(donors)).numpy()
    np.testing.assert_allclose(ours, sklearn_nan_euclidean(rows, donors), rtol=1e-9, atol=1e-9)
