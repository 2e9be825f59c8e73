"""The shared spine: predict outputs agree, prediction is batched, predict-time parameters are
checked, and a mode recovers only what it uses."""

import numpy as np
import pytest
from helpers import tiny_classifier, tiny_mars, tiny_research
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer



class _CountingImputer(TransformerMixin, BaseEstimator):
    """Mean imputation that counts its transform calls (class attribute: clones share it)."""

    calls = 0

    def fit(self, X, y=None):
        self.imputer_ = SimpleImputer(keep_empty_features=True).fit(X)
        return self

    def transform(self, X):
        type(self).calls += 1
        return self.imputer_.transform(X)


@pytest.fixture(scope="module")
def fitted(image_table_data):
    X, y = image_table_data
    return tiny_classifier(recoverer=_CountingImputer()).fit(X, y), X, y


def test_none_never_calls_the_recoverer_and_other_modes_do(fitted):
    clf, X, _ = fitted
    X_missing = X  # 20 % of images and 20 % of tables missing
    try:
        _CountingImputer.calls = 0
        clf.set_params(selection="none", predict_batch_size=100)
        clf.predict(X_missing)
        clf.explain(X_missing)
        assert _CountingImputer.calls == 0
        clf.set_params(selection="dymo")
        clf.predict(X_missing)
        assert _CountingImputer.calls == 4  # one per batch of 100 of the 400 samples
        _CountingImputer.calls = 0
        clf.explain(X_missing)  # the selection and the observed-only prediction share a recovery
        assert _CountingImputer.calls == 4
    finally:
        clf.set_params(selection="dymo", predict_batch_size=1024)


def test_log_proba_proba_and_predict_agree(fitted):
    clf, X, _ = fitted
    proba = clf.predict_proba(X)
    log_proba = clf.predict_log_proba(X)
    np.testing.assert_allclose(np.exp(log_proba), proba, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    assert np.isfinite(log_proba).all()


def test_decision_function_is_the_logits(fitted):
    """Catches scores out of step with predict_proba, and the wrong shape for two classes."""
    clf, X, y = fitted
    scores = clf.decision_function(X)
    assert scores.shape == (len(y), len(clf.classes_))
    shifted = np.exp(scores - scores.max(1, keepdims=True))
    np.testing.assert_allclose(shifted / shifted.sum(1, keepdims=True), clf.predict_proba(X), rtol=1e-6, atol=1e-9)
    two = np.isin(y, clf.classes_[:2])
    binary = tiny_classifier().fit({name: np.asarray(a)[two] for name, a in X.items()}, y[two])
    X_two = {name: np.asarray(a)[two] for name, a in X.items()}
    margin = binary.decision_function(X_two)
    assert margin.shape == (int(two.sum()),)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), binary.predict_proba(X_two)[:, 1], rtol=1e-6)
    np.testing.assert_array_equal(binary.classes_[(margin > 0).astype(int)], binary.predict(X_two))


def test_explain_is_batched_and_matches_predict(fitted):
    clf, X, _ = fitted
    X_missing = X
    whole = clf.explain(X_missing)
    try:
        clf.set_params(predict_batch_size=7)
        batched = clf.explain(X_missing)
    finally:
        clf.set_params(predict_batch_size=1024)
    np.testing.assert_array_equal(batched["prediction"], whole["prediction"])
    np.testing.assert_array_equal(batched["prediction_observed_only"], whole["prediction_observed_only"])
    np.testing.assert_array_equal(whole["prediction"], clf.predict(X_missing))
    clf.set_params(selection="none")
    try:
        np.testing.assert_array_equal(whole["prediction_observed_only"], clf.predict(X_missing))
    finally:
        clf.set_params(selection="dymo")


@pytest.mark.parametrize("name, value, message", [
    ("temperature", 0.0, "temperature"),
    ("temperature", -1.0, "temperature"),
    ("acceptance_threshold", "bogus", "acceptance_threshold"),
    ("acceptance_threshold", None, "acceptance_threshold"),
    ("predict_batch_size", 0, "predict_batch_size"),
    ("selection", "best", "selection"),
    ("selection", "iterative", "selection"),  # an ablation of DyMoResearchClassifier only
])
def test_predict_time_parameters_are_checked(fitted, name, value, message):
    clf, X, _ = fitted
    original = clf.get_params()[name]
    clf.set_params(**{name: value})
    try:
        for method in (clf.predict, clf.predict_proba, clf.explain):
            with pytest.raises(ValueError, match=message):
                method(X)
    finally:
        clf.set_params(**{name: original})
    clf.predict(X)


def test_a_distance_changed_after_fitting_is_refused(image_table_data):
    """Catches prototypes of one distance read with another (research estimator only)."""
    X, y = image_table_data
    clf = tiny_research(max_epochs=1).fit(X, y)
    clf.set_params(distance="sqeuclidean")
    with pytest.raises(ValueError, match="distance was changed"):
        clf.predict(X)
    clf.set_params(distance="cosine")
    clf.predict(X)


def test_mars_shares_the_predict_path(image_table_data):
    X, y = image_table_data
    clf = tiny_mars(max_epochs=2, predict_batch_size=64).fit(X, y)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X), rtol=1e-10)
    reference = clf.predict_proba(X)
    clf.set_params(predict_batch_size=1000)
    np.testing.assert_allclose(clf.predict_proba(X), reference, atol=1e-6)


def test_a_failed_refit_leaves_the_estimator_unfitted(image_table_data):
    from sklearn.exceptions import NotFittedError

    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    with pytest.raises(ValueError, match="training loss became"):
        clf.set_params(lr=1e9).fit(X, np.where(y == 0, 10, y))
    assert not [name for name in vars(clf) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_mars_checks_its_predict_time_parameters(image_table_data):
    X, y = image_table_data
    clf = tiny_mars(max_epochs=1).fit(X, y)
    for value in (0, -5, True):
        clf.set_params(predict_batch_size=value)
        with pytest.raises(ValueError, match="predict_batch_size"):
            clf.predict(X)


@pytest.mark.parametrize("make", [lambda: tiny_classifier(), lambda: tiny_mars()], ids=["dymo", "mars"])
def test_explain_never_reports_a_class_from_non_finite_outputs(image_table_data, make):
    X, y = image_table_data
    clf = make().fit(X, y)
    huge = {name: np.array(X[name]) for name in X}
    row = int(np.flatnonzero(~np.isnan(huge["table"]).all(1))[0])
    huge["table"][row] = 3e37
    with pytest.raises(ValueError, match=f"not finite.*rows \\[{row}\\]"):
        clf.explain(huge)
