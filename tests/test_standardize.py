"""standardize=True: inputs standardised inside the network from observed training entries."""

import numpy as np
import pytest
import torch

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, load_breast_cancer_views, make_multiview_digits
from dymo_sklearn.nn.standardize import InputStandardizer, input_statistics

from helpers import tiny_classifier, tiny_mars


def test_statistics_are_taken_over_observed_entries_per_entry():
    values = np.array([[1.0, 5.0, np.nan, 2.0], [3.0, np.nan, np.nan, 2.0], [np.nan, 9.0, np.nan, 2.0]])
    shift, scale = input_statistics(values, "vector")
    np.testing.assert_allclose(shift, [2.0, 7.0, 0.0, 2.0])
    # the constant feature is only shifted, the never-observed one left alone
    np.testing.assert_allclose(scale, [1.0, 2.0, 1.0, 1.0])


def test_small_units_are_scaled_and_custom_encoders_get_values_as_given():
    values = np.random.default_rng(0).normal(0, 5e-7, size=(100, 2)) + np.array([0.0, 3.0])
    values[:, 1] = 3.0  # constant: its spread is rounding at most
    shift, scale = input_statistics(values, "vector")
    np.testing.assert_allclose(scale, [values[:, 0].std(), 1.0], rtol=1e-5)
    shift, scale = input_statistics(values * 1000, "custom")
    np.testing.assert_array_equal(shift, 0.0)
    np.testing.assert_array_equal(scale, 1.0)


def test_statistics_of_images_are_per_channel():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(50, 2, 4, 4)) * np.array([1.0, 10.0])[:, None, None] + np.array([0.0, 5.0])[:, None, None]
    images[:10, 1] = np.nan  # a missing channel of some samples
    shift, scale = input_statistics(images, "image")
    assert shift.shape == scale.shape == (2, 1, 1)
    np.testing.assert_allclose(shift.ravel(), [images[:, 0].mean(), np.nanmean(images[:, 1])], rtol=1e-5)
    np.testing.assert_allclose(scale.ravel(), [images[:, 0].std(), np.nanstd(images[:, 1])], rtol=1e-5)


def test_missing_entries_enter_the_encoder_as_zero():
    standardizer = InputStandardizer(["vector"], [(2,)], [(np.array([10.0, -1.0]), np.array([2.0, 4.0]))])
    values = torch.tensor([[14.0, 0.0]])  # the second entry is missing (zero-filled)
    observed = torch.tensor([[True, False]])
    np.testing.assert_allclose(standardizer(0, values, observed).numpy(), [[2.0, 0.0]])


def test_network_encodes_observed_and_recovered_values_standardised():
    X, y = make_multiview_digits(2, n_samples=120, random_state=0)
    X = {name: np.asarray(array) * 40.0 + 7.0 for name, array in X.items()}
    network = tiny_classifier(max_epochs=1).fit(X, y).net_.module_.eval()
    shift, scale = input_statistics(X["m0"], "image")
    values = torch.as_tensor(X["m0"][:5])
    observed = torch.ones_like(values, dtype=torch.bool)
    with torch.no_grad():
        expected = network.encoders[0]((values - torch.as_tensor(shift)) / torch.as_tensor(scale), observed)
        np.testing.assert_allclose(network.encode_modality(0, values, observed).numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("make", [tiny_classifier, tiny_mars], ids=["dymo", "mars"])
def test_the_scale_of_each_feature_does_not_matter(make):
    """Raw breast-cancer views (features from 0.001 to 2,500) give the model the standardised ones
    give, up to float rounding of the statistics."""
    X, y = load_breast_cancer_views()
    X = {name: np.asarray(array, dtype=np.float64) for name, array in X.items()}
    standardised = {name: ((array - array.mean(0)) / array.std(0)).astype(np.float32) for name, array in X.items()}
    raw = {name: array.astype(np.float32) for name, array in X.items()}
    test = apply_missing(raw, 0.5, random_state=0)
    test_standardised = {name: np.where(np.isnan(test[name]), np.nan, standardised[name]) for name in raw}
    from_raw = make(max_epochs=3).fit(raw, y).predict_proba(test)
    from_standardised = make(max_epochs=3).fit(standardised, y).predict_proba(test_standardised)
    np.testing.assert_allclose(from_raw, from_standardised, atol=2e-3)
    without = make(max_epochs=3, standardize=False).fit(raw, y).predict_proba(test)
    assert np.abs(without - from_standardised).max() > 0.1  # what the test would miss without it


def test_standardised_model_survives_save_and_load(tmp_path):
    X, y = make_multiview_digits(2, n_samples=120, random_state=0)
    X = {name: np.asarray(array) * 40.0 + 7.0 for name, array in X.items()}
    clf = tiny_classifier().fit(X, y)
    clf.save(tmp_path / "model")
    loaded = DyMoClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.standardize


def test_subnormal_features_are_refused_with_the_right_advice():
    """Catches values around 1e-45 ending in 'training diverged, lower lr' (standardising divided
    by a float32 subnormal): the modality is named and rescaling is what is asked."""
    rng = np.random.default_rng(0)
    X = {"tiny": (rng.normal(size=(60, 3)) * 1e-45).astype(np.float32), "b": rng.normal(size=(60, 2))}
    with pytest.raises(ValueError, match="'tiny' varies by .* below float32's smallest normal.*Rescale it"):
        tiny_classifier(max_epochs=1).fit(X, np.arange(60) % 2)
    tiny_classifier(max_epochs=1, standardize=False).fit(X, np.arange(60) % 2)  # the other way out
