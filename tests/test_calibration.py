"""The held-out acceptance threshold (acceptance_threshold="auto")."""

import numpy as np
import pytest
from helpers import tiny_classifier

from dymo_sklearn._calibration import best_threshold, candidate_thresholds, hide_modalities


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


def test_threshold_grid_and_tie_break():
    grid = candidate_thresholds(np.array([np.nan, -2.0, -1.0, 0.5, 1.0, 3.0]))
    assert grid[0] == -np.inf and grid[-1] == np.inf and 0.0 in grid and len(grid) == 8
    clear = {-np.inf: 0.5, -0.3: 0.8, 0.0: 0.7, 0.4: 0.8, np.inf: 0.8}
    assert best_threshold(clear, n_samples=1000) == -0.3  # +10 points, standard error 1.4
    assert best_threshold(clear, n_samples=10) == 0.0  # +10 points, standard error 14.5
    assert best_threshold({-np.inf: 0.5, 0.0: 0.9, np.inf: 0.9}, n_samples=1000) == 0.0


def test_auto_threshold_is_the_best_held_out_one(image_table_data):
    X, y = image_table_data
    clf = tiny_classifier(acceptance_threshold="auto", calibration_fraction=0.25).fit(X, y)
    accuracy = clf.calibration_accuracy_
    assert {-np.inf, 0.0, np.inf} <= set(accuracy)
    n_held_out = 100
    margin = np.sqrt(accuracy[0.0] * (1 - accuracy[0.0]) / n_held_out)
    if clf.acceptance_threshold_ == 0.0:
        assert max(accuracy.values()) - accuracy[0.0] <= margin
    else:
        assert accuracy[clf.acceptance_threshold_] == max(accuracy.values()) > accuracy[0.0] + margin
    assert clf.predict(X).shape == (400,)


def test_infinite_thresholds_reproduce_none_and_all(image_table_data):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    none = clf.set_params(selection="none").predict_proba(X)
    everything = clf.set_params(selection="all").predict_proba(X)
    clf.set_params(selection="dymo", acceptance_threshold=np.inf)
    np.testing.assert_array_equal(clf.predict_proba(X), none)
    clf.set_params(acceptance_threshold=-np.inf)
    np.testing.assert_allclose(clf.predict_proba(X), everything, atol=1e-5)


def test_too_little_data_for_a_held_out_part_falls_back_to_zero():
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(12, 3)), "b": rng.normal(size=(12, 2))}
    y = np.array([0] * 11 + [1])
    clf = tiny_classifier(acceptance_threshold="auto").fit(X, y)
    assert clf.acceptance_threshold_ == 0.0 and not hasattr(clf, "calibration_accuracy_")


@pytest.mark.parametrize("bad", ["sometimes", -1.0j])
def test_bad_threshold_is_rejected(image_table_data, bad):
    X, y = image_table_data
    with pytest.raises((ValueError, TypeError), match="acceptance_threshold"):
        tiny_classifier(acceptance_threshold=bad).fit(X, y)
