"""The held-out acceptance threshold (acceptance_threshold="auto")."""

import numpy as np
import pytest
from helpers import tiny_classifier

from dymo_sklearn import DyMoClassifier, _classifier
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


# Held-out rewards of the toy below: 101 finite values in plateaus, so that the 10/25/50/75/90 %
# quantiles (sorted positions 10, 25, 50, 75, 90) are exactly -2, -1, 0.5, 1 and 2. With -inf, the
# paper's 0 and +inf, the grid is therefore known in advance:
_TOY_REWARDS = np.repeat([-2.0, -1.0, 0.5, 1.0, 2.0], [15, 21, 29, 20, 16])
_TOY_GRID = [-np.inf, -2.0, -1.0, 0.0, 0.5, 1.0, 2.0, np.inf]


@pytest.mark.parametrize("accuracy, expected", [
    # 100 held-out samples; at the paper's 0 the accuracy is 0.70, standard error
    # sqrt(0.70 * 0.30 / 100) = 0.0458. 0.85 beats 0.70 by 0.15 > 0.0458, so the threshold moves;
    # thresholds 1 and 2 tie at 0.85 and the one closest to 0 wins: 1.0.
    ([0.50, 0.55, 0.60, 0.70, 0.80, 0.85, 0.85, 0.75], 1.0),
    # The best, 0.74 at -1, beats 0.70 by 0.04 < 0.0458 (one standard error): the paper's 0 stays.
    ([0.50, 0.55, 0.74, 0.70, 0.72, 0.73, 0.60, 0.65], 0.0),
    # -1 is best by 0.20 > 0.0458 and alone: -1.0.
    ([0.50, 0.60, 0.90, 0.70, 0.70, 0.60, 0.60, 0.55], -1.0),
])
def test_auto_threshold_on_a_toy_held_out_part(image_table_data, monkeypatch, accuracy, expected):
    """acceptance_threshold="auto" end to end (fit -> held-out runs -> choice -> predict), with
    the held-out prediction runs replaced by a toy whose rewards and per-threshold accuracy are
    set by hand, so the right threshold is known in advance (see the cases' comments)."""
    X, y = image_table_data
    table = dict(zip(_TOY_GRID, accuracy))
    held_out_labels, scored = [], []
    calibrate = _classifier.calibrate_threshold

    def capture_labels(self, held_out, y_held_out, rng):
        held_out_labels.append(np.asarray(y_held_out))
        return calibrate(self, held_out, y_held_out, rng)

    def toy_runs(self, arrays, outputs=("logits",), **options):
        labels = held_out_labels[-1]
        n, n_classes = len(labels), len(self.classes_)
        assert next(iter(arrays.values())).shape[0] == n and options.get("recovered") is not None
        rewards = np.full((n, len(self.modalities_)), np.nan)
        rewards.flat[: len(_TOY_REWARDS)] = _TOY_REWARDS[np.random.default_rng(0).permutation(len(_TOY_REWARDS))]

        def logits(threshold):  # correct for the first table[threshold] * n samples
            scored.append(float(threshold))
            n_right = int(round(table[float(threshold)] * n))
            return np.eye(n_classes)[np.where(np.arange(n) < n_right, labels, (labels + 1) % n_classes)]

        thresholds = options.get("thresholds")
        thresholds = (self._threshold(),) if thresholds is None else list(thresholds)
        found = {"rewards": lambda: rewards, "logits": lambda: logits(thresholds[0]),
                 "threshold_logits": lambda: np.stack([logits(t) for t in thresholds], axis=1)}
        return {key: found[key]() for key in outputs}

    monkeypatch.setattr(_classifier, "calibrate_threshold", capture_labels)
    monkeypatch.setattr(DyMoClassifier, "_predict_arrays", toy_runs)
    clf = tiny_classifier(acceptance_threshold="auto", calibration_fraction=0.25).fit(X, y)
    monkeypatch.undo()

    assert len(held_out_labels) == 1 and len(held_out_labels[0]) == 100
    assert sorted(set(scored)) == _TOY_GRID  # every threshold of the grid scored, no other
    assert clf.calibration_accuracy_ == pytest.approx(table)
    assert clf.acceptance_threshold_ == expected
    # predict uses the fitted threshold
    fitted = clf.predict_proba(X)
    np.testing.assert_array_equal(fitted, clf.set_params(acceptance_threshold=expected).predict_proba(X))


def test_best_threshold_on_hand_made_tables():
    """best_threshold alone, on tables whose answer is worked out by hand."""
    # n = 400, paper 0.80: standard error sqrt(0.8 * 0.2 / 400) = 0.02.
    assert best_threshold({-np.inf: 0.6, 0.0: 0.80, 0.7: 0.83, np.inf: 0.7}, n_samples=400) == 0.7  # +0.03
    assert best_threshold({-np.inf: 0.6, 0.0: 0.80, 0.7: 0.815, np.inf: 0.7}, n_samples=400) == 0.0  # +0.015
    # equal best on both sides of 0: the one closer to 0 (-0.2 is closer than 0.5)
    assert best_threshold({-0.2: 0.9, 0.0: 0.8, 0.5: 0.9, np.inf: 0.9}, n_samples=400) == -0.2
    # +inf (accept none) wins when it is clearly best, as with a recoverer that writes garbage
    assert best_threshold({-np.inf: 0.2, 0.0: 0.5, 1.0: 0.6, np.inf: 0.9}, n_samples=400) == np.inf


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
