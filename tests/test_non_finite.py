"""Nothing goes silently NaN: diverging training, overflowing inputs and non-finite outputs all
stop with an error that says what to change (issue 13, class 2)."""

import numpy as np
import pytest
from helpers import tiny_classifier, tiny_mars
from sklearn.impute import KNNImputer


def _with_value(X, name, value):
    arrays = {key: np.array(X[key], dtype=np.float64) for key in X}
    first_observed = np.flatnonzero(~np.isnan(arrays[name].reshape(len(arrays[name]), -1)).all(1))[0]
    arrays[name].reshape(len(arrays[name]), -1)[first_observed, 0] = value
    return arrays, first_observed


@pytest.mark.parametrize("make", [
    lambda: tiny_classifier(lr=1e9), lambda: tiny_classifier(weight_decay=1e9),
    lambda: tiny_mars(lr=1e9)], ids=["dymo lr", "dymo weight_decay", "mars lr"])
def test_diverging_training_stops_with_advice(image_table_data, make):
    X, y = image_table_data
    with pytest.raises(ValueError, match="training loss became nan.*Lower `lr`"):
        make().fit(X, y)


@pytest.mark.parametrize("make", [lambda: tiny_classifier(recoverer=KNNImputer(), standardize=False),
                                  lambda: tiny_mars(standardize=False)], ids=["dymo knn", "mars"])
def test_one_huge_training_value_is_named(image_table_data, make):
    X, y = image_table_data
    huge, _ = _with_value(X, "table", 1e30)
    with pytest.raises(ValueError, match="training loss became.*table 1e\\+30"):
        make().fit(huge, y)


@pytest.mark.parametrize("make", [lambda: tiny_classifier(recoverer=KNNImputer()), lambda: tiny_mars()],
                         ids=["dymo knn", "mars"])
def test_standardised_inputs_absorb_one_huge_training_value(image_table_data, make):
    """Standardisation divides the outlier by the spread it causes: training stays finite."""
    X, y = image_table_data
    huge, _ = _with_value(X, "table", 1e30)
    assert np.isfinite(make().fit(huge, y).predict_proba(X)).all()


@pytest.mark.parametrize("make", [lambda: tiny_classifier(), lambda: tiny_mars()], ids=["dymo", "mars"])
def test_predict_never_answers_silently_from_non_finite_outputs(image_table_data, make):
    X, y = image_table_data
    clf = make().fit(X, y)
    huge, row = _with_value(X, "table", 1e30)
    for method in (clf.predict, clf.predict_proba, clf.predict_log_proba):
        with pytest.raises(ValueError, match=f"not finite for 1 sample.*rows \\[{row}\\].*table 1e\\+30"):
            method(huge)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_values_beyond_float32_are_refused_with_the_modality_named(image_table_data):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    beyond, _ = _with_value(X, "image", 1e300)
    with pytest.raises(ValueError, match="Modality 'image' holds values beyond float32's range"):
        clf.predict(beyond)
    with pytest.raises(ValueError, match="Modality 'image' holds values beyond float32's range"):
        tiny_classifier().fit(beyond, y)
