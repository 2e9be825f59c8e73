"""scikit-learn integration: the estimator checks on 2-D input and dict-input twins."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.model_selection import GridSearchCV, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from dymo_sklearn import DyMoClassifier, MultimodalDict

from helpers import tiny_classifier

# Every check passes on the 2-D path; none is expected to fail. (check_sample_weight_* are skipped
# because fit takes no sample_weight.)
EXPECTED_FAILED_CHECKS = {}


def _checked_estimator():
    # On CUDA, batch composition moves probabilities by float rounding, beyond the rtol=1e-7 of
    # check_methods_subset_invariance; our own tests check that on every device at atol=1e-5.
    return tiny_classifier(max_epochs=30, d_model=16, lr=1e-2, device="cpu")


@parametrize_with_checks([_checked_estimator()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_is_a_classifier_for_stratified_cv():
    assert is_classifier(DyMoClassifier())


def test_dict_and_2d_paths_agree_on_a_table():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    from_array = tiny_classifier().fit(X, y).predict_proba(X)
    from_dict = tiny_classifier().fit({"x": X}, y).predict_proba({"x": X})
    np.testing.assert_allclose(from_array, from_dict, atol=1e-6)


def test_dataframe_with_column_groups_uses_names():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 4)), columns=["a", "b", "c", "d"])
    y = (frame["a"] + frame["c"] > 0).astype(int)
    clf = tiny_classifier(column_groups={"left": ["a", "b"], "right": ["c", "d"]}).fit(frame, y)
    assert clf.modalities_ == ["left", "right"]
    frame.loc[:10, ["c", "d"]] = np.nan
    assert clf.predict(frame).shape == (60,)


@pytest.mark.parametrize(
    "recoverer", [IterativeImputer(max_iter=2, n_nearest_features=8), KNNImputer(n_neighbors=3), SimpleImputer()],
    ids=["iterative", "knn", "simple"],
)
def test_usage_from_the_issue_with_each_imputer(image_table_data, recoverer):
    X, y = image_table_data
    clf = tiny_classifier(recoverer=recoverer).fit(X[:300], y[:300])
    assert isinstance(clf.recoverer_, type(recoverer)) and clf.recoverer_ is not recoverer
    assert clf.predict(X[300:]).shape == (100,)
    proba = clf.predict_proba(X[300:])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert 0.0 <= clf.score(X[300:], y[300:]) <= 1.0
    has_table = ~np.isnan(X["table"][300:]).all(1)
    only_table = {"table": X["table"][300:][has_table]}  # the image modality is absent for all
    assert set(clf.predict(only_table)) <= set(clf.classes_)


def test_clone_and_pickle_round_trip(image_table_data, tmp_path):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    unfitted = clone(clf)
    assert not hasattr(unfitted, "net_") and unfitted.get_params()["d_model"] == clf.d_model
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    joblib.dump(clf, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X), expected)


def test_same_seed_same_model(image_table_data):
    """Bit-identical on the CPU (CUDA kernels may reorder float sums; see docs)."""
    X, y = image_table_data
    first = tiny_classifier(random_state=3, device="cpu").fit(X, y).predict_proba(X)
    second = tiny_classifier(random_state=3, device="cpu").fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = tiny_classifier(random_state=4, device="cpu").fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_subset_invariance_on_dict_input(image_table_data):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    full = clf.predict_proba(X)
    rows = np.arange(0, 400, 3)
    np.testing.assert_allclose(clf.predict_proba(X[rows]), full[rows], atol=1e-5)


def test_pipeline_with_dict_input(image_table_data):
    X, y = image_table_data
    scale = FunctionTransformer(lambda data: MultimodalDict(**{k: v * 1.0 for k, v in data.items()}))
    pipeline = make_pipeline(scale, tiny_classifier()).fit(X, y)
    assert pipeline.predict(X).shape == (400,)


def test_cross_val_score_and_predict_proba(image_table_data):
    X, y = image_table_data
    scores = cross_val_score(tiny_classifier(), X, y, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))
    proba = cross_val_predict(tiny_classifier(), X, y, cv=3, method="predict_proba")
    assert proba.shape == (400, 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_grid_search_in_parallel(image_table_data):
    X, y = image_table_data
    search = GridSearchCV(
        tiny_classifier(max_epochs=2),
        {"temperature": [0.05, 0.1], "recoverer__strategy": ["mean", "median"]},
        cv=2, n_jobs=2,
    ).fit(X[:200], y[:200])
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.recoverer_.strategy in ("mean", "median")


def test_selection_modes_after_fit(image_table_data):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    for mode in ("dymo", "iterative", "simultaneous", "all", "none"):
        assert clf.set_params(selection=mode).predict(X).shape == (400,)
    report = clf.set_params(selection="dymo").explain(X[:50])
    assert {"observed", "candidates", "selected", "reward_image", "step_table", "prediction"} <= set(report)
    missing_image = np.isnan(X["image"][:50]).reshape(50, -1).all(1)
    assert all(("image" in c) == m for c, m in zip(report["candidates"], missing_image))
    assert report.loc[~missing_image & ~np.isnan(X["table"][:50]).any(1), "reward_image"].isna().all()
    assert all(set(s) <= set(c) for s, c in zip(report["selected"], report["candidates"]))


def test_fit_errors_are_named(image_table_data):
    X, y = image_table_data
    with pytest.raises(ValueError, match="y has 3 labels but X has 400"):
        tiny_classifier().fit(X, y[:3])
    with pytest.raises(ValueError, match="at least 2 classes"):
        tiny_classifier().fit(X, np.zeros(400))
    with pytest.raises(ValueError, match="encoders names unknown modalities \\['nope'\\]"):
        tiny_classifier(encoders={"nope": "image"}).fit(X, y)
    empty = MultimodalDict(image=X["image"].copy(), table=X["table"].copy())
    empty["image"][[4, 9]] = np.nan
    empty["table"][[4, 9]] = np.nan
    with pytest.raises(ValueError, match="no observed entry in any modality.*rows 4, 9"):
        tiny_classifier().fit(empty, y)
    fitted = tiny_classifier().fit(X, y)
    with pytest.raises(ValueError, match="rows 4, 9"):
        fitted.predict(empty)
    with pytest.raises(TypeError, match="fitted on a dict"):
        fitted.predict(np.ones((3, 80)))


def test_verbose_shows_training_and_prediction_progress(image_table_data, capsys):
    X, y = image_table_data
    clf = tiny_classifier(verbose=1, predict_batch_size=100).fit(X, y)
    training = capsys.readouterr()
    assert "train_loss" in training.out
    clf.predict(X)
    assert "DyMo dymo" in capsys.readouterr().err
    clf.set_params(verbose=0).predict(X)
    assert capsys.readouterr().err == ""
