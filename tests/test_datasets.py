"""The offline data sets: deterministic, in range, one background look per modality."""

import numpy as np
import pytest

from dymo_sklearn.datasets import _backgrounds, apply_missing, make_multiview_digits


def test_multiview_digits_is_deterministic_and_in_range():
    X_a, y_a = make_multiview_digits(3, n_samples=50, random_state=3)
    X_b, y_b = make_multiview_digits(3, n_samples=50, random_state=3)
    X_c, _ = make_multiview_digits(3, n_samples=50, random_state=4)
    np.testing.assert_array_equal(y_a, y_b)
    for name in ("m0", "m1", "m2"):
        assert X_a[name].shape == (50, 1, 8, 8) and X_a[name].dtype == np.float32
        np.testing.assert_array_equal(X_a[name], X_b[name])
        assert 0.0 <= X_a[name].min() and X_a[name].max() <= 1.0
        assert not np.array_equal(X_a[name], X_c[name])


def test_each_modality_has_its_own_smooth_background():
    """Catches textures that are all alike (modalities indistinguishable) or white noise (no
    structure to learn as a background), and any change that needs image files."""
    textures = _backgrounds(4)
    for texture in textures:
        assert texture.min() >= 0.0 and texture.max() <= 1.0
        # neighbouring pixels agree far more than distant ones: a smooth, photo-like field
        near = np.corrcoef(texture[:, :-1].ravel(), texture[:, 1:].ravel())[0, 1]
        far = np.corrcoef(texture[:, :-100].ravel(), texture[:, 100:].ravel())[0, 1]
        assert near > 0.9 and abs(far) < 0.5
    means = [texture.mean() for texture in textures]
    assert len({round(mean, 2) for mean in means}) == 4
    np.testing.assert_array_equal(_backgrounds(2)[1], textures[1])


def test_apply_missing_keeps_one_modality_and_hides_the_requested_share():
    X, _ = make_multiview_digits(5, n_samples=200, random_state=0)
    X_missing = apply_missing(X, 0.8, random_state=0)
    missing = np.stack([np.isnan(X_missing[n]).reshape(200, -1).all(1) for n in X_missing], axis=1)
    np.testing.assert_array_equal(missing.sum(1), np.full(200, 4))
    observed = ~missing
    for index, name in enumerate(X_missing):
        np.testing.assert_array_equal(X_missing[name][observed[:, index]], X[name][observed[:, index]])
    with pytest.raises(ValueError, match="missing_rate"):
        apply_missing(X, 1.5)
