"""Fitted per-subset statistics, recomputed by brute force from the trained network.

Conventions of the code under test (dymo_sklearn/_prototypes.py, DyMoClassifier._fit_statistics):

* A subset is an int64 bit mask, bit m = ``modalities_[m]``, the order in which the input dict
  lists the modalities.
* Subset s is fitted on every training sample that observes (at least one entry of) every
  modality of s, fused with the modalities of s only; its other modalities are masked out.
* Row i of ``subset_prototypes_`` / ``ics_sigma_`` belongs to ``subset_codes_[i]``; the extra
  last row is the pooled fallback: ``prototypes_`` (the mean of c_{s,k} over the subsets) and the
  per-class sigma of all distances pooled over the subsets.
* For the cosine distance z is L2-normalised before the means; d = 1 - cos(z, c_{s,k}).
  For the squared Euclidean distance d = ||z - c_{s,k}||^2. sigma = sqrt(mean d^2).
* Past ``max_subsets`` the fitted subsets are, in this order, the full set, the singletons, the
  leave-one-outs, the patterns seen in training (most frequent first), then random ones;
  unfitted subsets map to the pooled row.
"""

import time
import warnings

import numpy as np
import pytest
import torch
from helpers import tiny_classifier, tiny_research

from dymo_sklearn import _classifier
from dymo_sklearn._prototypes import MIN_CELL_SAMPLES, SubsetStatistics, choose_subsets, subset_codes
from dymo_sklearn.datasets import make_multiview_digits


def _modalities_of(code, order):
    return [name for bit, name in enumerate(order) if code >> bit & 1]


def _brute_force(clf, X, y, order, distance):
    """Per fitted code: (centres (K, P), sigma (K,), counts (K,), sum of squared distances (K,))."""
    network = clf.net_.module_.eval()
    arrays = {name: np.asarray(X[name], dtype=np.float32) for name in order}
    present = {name: ~np.isnan(array.reshape(len(array), -1)).all(axis=1) for name, array in arrays.items()}
    labels = np.searchsorted(clf.classes_, np.asarray(y))
    n_classes = len(clf.classes_)
    results = {}
    for code in clf.subset_codes_.tolist():
        names = _modalities_of(code, order)
        rows = np.logical_and.reduce([present[name] for name in names])
        inputs = {name: torch.from_numpy(arrays[name][rows] if name in names
                                         else np.full_like(arrays[name][rows], np.nan)) for name in order}
        with torch.no_grad():
            z = network(**inputs)[1][0].double().numpy()
        if distance == "cosine":
            z = z / np.linalg.norm(z, axis=1, keepdims=True)
        k_rows = labels[rows]
        centres = np.full((n_classes, z.shape[1]), np.nan)
        sigma, counts, squares = np.full(n_classes, np.nan), np.zeros(n_classes), np.zeros(n_classes)
        for k in range(n_classes):
            zk = z[k_rows == k]
            counts[k] = len(zk)
            if not len(zk):
                continue
            centres[k] = zk.mean(axis=0)
            if distance == "cosine":
                d = 1.0 - zk @ (centres[k] / np.linalg.norm(centres[k]))
            else:
                d = ((zk - centres[k]) ** 2).sum(axis=1)
            squares[k] = (d ** 2).sum()
            sigma[k] = np.sqrt((d ** 2).mean())
        results[code] = centres, sigma, counts, squares
    return results


def _image_table(image_table_data):
    X, y = image_table_data
    return {"image": X["image"], "table": X["table"]}, y


@pytest.mark.parametrize("distance", ["cosine", "sqeuclidean"])
def test_statistics_match_brute_force(image_table_data, distance):
    """Catches wrong per-subset means, a wrong sigma formula, the wrong rows or the wrong modalities per subset."""
    X, y = _image_table(image_table_data)
    clf = tiny_research(distance=distance, max_epochs=2).fit(X, y)
    order = ["image", "table"]
    assert clf.modalities_ == order
    np.testing.assert_array_equal(clf.subset_codes_, [1, 2, 3])
    expected = _brute_force(clf, X, y, order, distance)
    n_classes = len(clf.classes_)
    assert clf.subset_prototypes_.shape == (4, n_classes, clf.projection_dim)
    assert clf.ics_sigma_.shape == (4, n_classes)
    for row, code in enumerate(clf.subset_codes_.tolist()):
        centres, sigma, counts, _ = expected[code]
        assert (counts >= MIN_CELL_SAMPLES).all()  # no fallback involved here
        np.testing.assert_allclose(clf.subset_prototypes_[row], centres, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(clf.ics_sigma_[row], sigma, rtol=1e-4, atol=1e-7)
    overall = np.mean([expected[code][0] for code in (1, 2, 3)], axis=0)
    np.testing.assert_allclose(clf.prototypes_, overall, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(clf.subset_prototypes_[-1], clf.prototypes_, rtol=0, atol=0)
    pooled = np.sqrt(sum(expected[c][3] for c in (1, 2, 3)) / sum(expected[c][2] for c in (1, 2, 3)))
    np.testing.assert_allclose(clf.ics_sigma_[-1], pooled, rtol=1e-4, atol=1e-7)
    # The subsets differ: a mix-up of codes would not pass the comparisons above by accident.
    assert np.abs(expected[1][0] - expected[2][0]).max() > 1e-3


def test_subset_code_bit_follows_input_order():
    """Catches a bit convention other than bit m = m-th modality in input order (e.g. sorted names)."""
    # 900 samples: every (subset, class) cell has enough samples for statistics of its own.
    views, y = make_multiview_digits(3, n_samples=900, background=0.3, random_state=1)
    rng = np.random.default_rng(1)
    order = ["c", "a", "b"]  # deliberately not sorted
    X = {name: views[f"m{m}"].copy() for m, name in enumerate(order)}
    drop = rng.integers(0, 4, len(y))  # 0: complete; 1, 2, 3: modality c, a or b missing
    for m, name in enumerate(order):
        X[name][drop == m + 1] = np.nan
    clf = tiny_classifier(max_epochs=1).fit(X, y)
    assert clf.modalities_ == order
    np.testing.assert_array_equal(clf.subset_codes_, np.arange(1, 8))
    expected = _brute_force(clf, X, y, order, "cosine")
    for row, code in enumerate(clf.subset_codes_.tolist()):
        assert (expected[code][2] >= MIN_CELL_SAMPLES).all()
        np.testing.assert_allclose(clf.subset_prototypes_[row], expected[code][0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(clf.ics_sigma_[row], expected[code][1], rtol=1e-4, atol=1e-7)
    assert _modalities_of(1, order) == ["c"] and _modalities_of(6, order) == ["a", "b"]


def test_subset_codes_function():
    """Catches a reversed bit order in the code of an observed pattern (used to look statistics up)."""
    present = torch.tensor([[True, False, True], [False, True, False], [True, True, True]])
    assert subset_codes(present).tolist() == [0b101, 0b010, 0b111]


def test_subset_without_samples_of_a_class_falls_back(image_table_data):
    """Catches NaN or zero statistics for a (subset, class) no training sample realises."""
    X, y = _image_table(image_table_data)
    X = {name: array.copy() for name, array in X.items()}
    y = np.asarray(y)
    X["table"][y == 0] = np.nan  # class 0 never has a table: subsets {table}, {image, table} lack it
    X["image"][(y == 0) & np.isnan(X["image"]).reshape(len(y), -1).all(axis=1)] = 0.5
    clf = tiny_classifier(max_epochs=1).fit(X, y)
    np.testing.assert_array_equal(clf.subset_codes_, [1, 2, 3])
    assert np.isfinite(clf.subset_prototypes_).all() and np.isfinite(clf.ics_sigma_).all()
    expected = _brute_force(clf, X, y, ["image", "table"], "cosine")
    np.testing.assert_allclose(clf.prototypes_[0], expected[1][0][0], rtol=1e-5, atol=1e-5)
    for row in (1, 2):
        np.testing.assert_array_equal(clf.subset_prototypes_[row, 0], clf.prototypes_[0])
        assert clf.ics_sigma_[row, 0] == clf.ics_sigma_[-1, 0] > 0
    np.testing.assert_allclose(clf.ics_sigma_[-1, 0], expected[1][1][0], rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------------- the cap
def test_choose_subsets_all_when_under_the_cap():
    """Catches a cap that drops subsets although all 2^M - 1 fit."""
    np.testing.assert_array_equal(choose_subsets(3, 7, [], 0), np.arange(1, 8))
    np.testing.assert_array_equal(choose_subsets(4, 1000, [], 0), np.arange(1, 16))


def test_choose_subsets_priority_past_the_cap():
    """Catches a wrong priority past the cap: full set, singletons, leave-one-outs, seen patterns, random."""
    full = 0b11111
    singletons = [1 << m for m in range(5)]
    leave_one_out = [full ^ (1 << m) for m in range(5)]
    assert choose_subsets(3, 4, [], 0).tolist() == [1, 2, 4, 7]
    assert choose_subsets(3, 6, [], 0).tolist() == [1, 2, 4, 5, 6, 7]  # {0, 1} = 3 is the one left out
    seen = [0b00011] * 10 + [0b01100] * 5 + [0b01001] * 2
    codes = choose_subsets(5, 13, seen, 0).tolist()
    assert codes == sorted([full, *singletons, *leave_one_out, 0b00011, 0b01100])  # the rarest seen (9) is out
    codes = choose_subsets(5, 20, seen, 0)
    assert len(set(codes.tolist())) == 20 and {0b01001}.issubset(codes.tolist()) and (codes > 0).all()


def test_choose_subsets_scales_to_many_modalities():
    """Catches an enumeration of the 2^M - 1 subsets when M is large (time or memory blow-up)."""
    rng = np.random.default_rng(0)
    seen = rng.integers(1, 2 ** 62, 1000, dtype=np.int64)
    start = time.perf_counter()
    codes = choose_subsets(62, 300, seen, 0)
    assert time.perf_counter() - start < 5
    assert codes.dtype == np.int64 and len(codes) == 300 == len(np.unique(codes))
    assert (codes > 0).all() and (codes <= 2 ** 62 - 1).all()
    assert {2 ** 62 - 1, *[1 << m for m in range(62)]}.issubset(codes.tolist())


def test_capped_fit_with_many_modalities(monkeypatch):
    """Catches statistics computed for all 2^M - 1 subsets past the cap, or for other subsets than chosen."""
    n_modalities, n, cap = 24, 60, 16
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, n)
    order = [f"v{m}" for m in range(n_modalities)]
    X = {name: (y[:, None] + rng.normal(0, 1, (n, 2))).astype(np.float32) for name in order}
    fused = {}
    original = _classifier.fit_subset_statistics

    def counting(network, batches, n_classes, codes, distance):
        before = network.pass_counts["fusion"]
        result = original(network, batches, n_classes, codes, distance)
        fused["rows"] = network.pass_counts["fusion"] - before
        return result

    monkeypatch.setattr(_classifier, "fit_subset_statistics", counting)
    clf = tiny_research(max_epochs=1, max_subsets=cap, n_subsets=2).fit(X, y)
    full = 2 ** n_modalities - 1
    # Full set first, then singletons in modality order, up to the cap.
    np.testing.assert_array_equal(clf.subset_codes_, sorted([full] + [1 << m for m in range(cap - 1)]))
    assert clf.subset_prototypes_.shape[0] == clf.ics_sigma_.shape[0] == cap + 1
    assert fused["rows"] == 2 * cap * n  # two passes (means, then sigma) over each fitted subset only
    expected = _brute_force(clf, X, y, order, "cosine")
    for row, code in enumerate(clf.subset_codes_.tolist()):
        np.testing.assert_allclose(clf.subset_prototypes_[row], expected[code][0], rtol=1e-5, atol=1e-5)


def test_unfitted_subset_looks_up_the_pooled_row():
    """Catches an unfitted subset mapped to some fitted subset's statistics instead of the pooled row."""
    views, y = make_multiview_digits(3, n_samples=200, background=0.3, random_state=2)
    clf = tiny_research(max_epochs=1, max_subsets=4).fit(views, y)
    np.testing.assert_array_equal(clf.subset_codes_, [1, 2, 4, 7])
    statistics = SubsetStatistics(clf.subset_codes_, clf.subset_prototypes_, clf.ics_sigma_, clf.prototypes_)
    rows = statistics.to_torch("cpu").lookup(torch.tensor([3, 7, 1, 5, 6, 4, 2]))
    assert rows.tolist() == [4, 3, 0, 4, 4, 2, 1]


def _two_views_one_rarely_complete(n_complete_of_class_1):
    """Two classes of 60; class 1 observes view b in only ``n_complete_of_class_1`` samples."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    centre = np.where(y[:, None] == 1, 1.5, -1.5)
    X = {"a": (centre + rng.normal(size=(120, 4))).astype(np.float32),
         "b": (centre + rng.normal(size=(120, 4))).astype(np.float32)}
    X["b"][60 + n_complete_of_class_1:] = np.nan
    return X, y


def test_cells_with_few_samples_take_the_class_pooled_statistics():
    """Class 1 has 5 samples with view b: its cells {b} and {a, b} use the class's overall prototype
    (here that of {a}, its only cell with enough samples) and its pooled sigma; class 0 keeps its own."""
    X, y = _two_views_one_rarely_complete(5)
    clf = tiny_classifier(max_epochs=2).fit(X, y)
    np.testing.assert_array_equal(clf.subset_codes_, [1, 2, 3])
    a, b, both, pooled = 0, 1, 2, 3
    prototypes, sigma = clf.subset_prototypes_, clf.ics_sigma_
    for cell in (b, both):
        np.testing.assert_array_equal(prototypes[cell, 1], prototypes[a, 1])
        np.testing.assert_array_equal(sigma[cell, 1], sigma[pooled, 1])
        assert not np.allclose(prototypes[cell, 0], prototypes[a, 0])  # class 0: 60 samples per cell
        assert sigma[cell, 0] != sigma[pooled, 0]
    assert sigma[a, 1] != sigma[pooled, 1]


def test_a_class_with_too_few_samples_is_named_in_a_warning():
    X, y = _two_views_one_rarely_complete(60)
    labels = np.where(y == 1, "rare", "common")
    keep = np.r_[np.arange(60), np.arange(60, 66)]  # 6 samples of "rare"
    with pytest.warns(UserWarning, match=r"fewer than 10 training samples: 'rare' \(6\)") as caught:
        tiny_classifier(max_epochs=1).fit({n: a[keep] for n, a in X.items()}, labels[keep])
    # It points at the caller's fit line, not into the package.
    assert [w.filename for w in caught if "fewer than" in str(w.message)] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_classifier(max_epochs=1).fit(X, labels)
