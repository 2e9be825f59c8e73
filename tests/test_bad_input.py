"""Malformed input gets a ValueError/TypeError naming the modality and the problem."""

import numpy as np
import pytest
import scipy.sparse
from helpers import tiny_classifier
from sklearn.exceptions import NotFittedError

from dymo_sklearn import DyMoClassifier

N = 60
RNG = np.random.default_rng(0)
IMAGE = RNG.random((N, 1, 8, 8)).astype(np.float32)
TABLE = RNG.normal(size=(N, 5)).astype(np.float32)
Y = np.arange(N) % 3


def good():
    return {"image": IMAGE.copy(), "table": TABLE.copy()}


def with_(**changes):
    X = good()
    X.update(changes)
    return X


def nan_rows(rows):
    X = good()
    X["image"][rows] = np.nan
    X["table"][rows] = np.nan
    return X


def with_inf(sign):
    X = good()
    X["table"][3, 2] = sign * np.inf
    return X


FIT_CASES = [
    ("lengths", with_(table=TABLE[:50]), Y, ValueError, "inconsistent numbers of samples.*'image': 60.*'table': 50"),
    ("strings", with_(table=np.full((N, 5), "a", dtype=object)), Y, TypeError, "'table' holds non-numeric"),
    ("unicode", with_(table=np.full((N, 5), "a")), Y, TypeError, "'table' holds non-numeric"),
    ("complex", with_(table=TABLE.astype(complex)), Y, TypeError, "'table' has unsupported dtype"),
    ("+inf", with_inf(1), Y, ValueError, "'table' contains infinite"),
    ("-inf", with_inf(-1), Y, ValueError, "'table' contains infinite"),
    ("all-NaN samples", nan_rows([7, 8]), Y, ValueError, "2 sample\\(s\\) have no observed entry.*rows 7, 8"),
    ("empty dict", {}, Y, ValueError, "no modalities"),
    ("zero samples", {"table": TABLE[:0]}, Y[:0], ValueError, "0 samples"),
    ("sparse X", scipy.sparse.csr_matrix(TABLE), Y, TypeError, "Sparse input is not supported"),
    ("dok_matrix X", scipy.sparse.dok_matrix(TABLE), Y, TypeError, "Sparse input is not supported"),
    ("sparse modality", with_(table=scipy.sparse.csr_matrix(TABLE)), Y, TypeError, "'table' is a sparse matrix"),
    ("rank 1 modality", with_(table=TABLE[:, 0]), Y, ValueError, "'table' must have shape \\(n_samples, ...\\)"),
    ("empty features", with_(table=TABLE[:, :0]), Y, ValueError, "'table' has an empty per-sample shape"),
    ("non-string key", {0: TABLE}, Y, TypeError, "names must be strings"),
    ("NaN labels", good(), np.where(Y == 0, np.nan, Y), ValueError, "NaN"),
    ("single class", good(), np.zeros(N), ValueError, "only one class"),
    ("y too short", good(), Y[:10], ValueError, "y has 10 labels but X has 60 samples"),
    ("multi-output y", good(), np.stack([Y, Y], 1), ValueError, "y|column|shape"),
    ("continuous y", good(), RNG.normal(size=N), ValueError, "Unknown label type"),
    ("a string X", "not data", Y, ValueError, "array|string|Expected"),
]


@pytest.mark.parametrize("name, X, y, error, message", FIT_CASES, ids=[case[0] for case in FIT_CASES])
def test_fit_rejects(name, X, y, error, message):
    with pytest.raises(error, match=message):
        tiny_classifier(max_epochs=1).fit(X, y)


def test_bad_encoder_settings_are_named():
    with pytest.raises(ValueError, match="unknown modalities \\['photo'\\]"):
        tiny_classifier(encoders={"photo": "image"}).fit(good(), Y)
    with pytest.raises(ValueError, match="image encoder needs per-sample shape \\(C, H, W\\), got \\(5,\\)"):
        tiny_classifier(encoders={"table": "image"}).fit(good(), Y)
    with pytest.raises(ValueError, match="Unknown encoder kind 'graph'"):
        tiny_classifier(encoders={"table": "graph"}).fit(good(), Y)


@pytest.fixture(scope="module")
def fitted():
    return tiny_classifier(max_epochs=1).fit(good(), Y)


PREDICT_CASES = [
    ("unknown key", with_(audio=TABLE), ValueError, "Unknown modalities \\['audio'\\]"),
    ("changed shape", with_(table=TABLE[:, :4]), ValueError, "'table' has per-sample shape \\(4,\\).*\\(5,\\)"),
    ("changed rank", with_(image=IMAGE.reshape(N, 64)), ValueError, "'image' has per-sample shape \\(64,\\)"),
    ("+inf", with_inf(1), ValueError, "'table' contains infinite"),
    ("all-NaN sample", nan_rows([2]), ValueError, "1 sample\\(s\\) have no observed entry.*rows 2"),
    ("only the missing modality", {"image": np.full((4, 1, 8, 8), np.nan)}, ValueError, "no observed entry"),
    ("2-D array to a dict model", TABLE, TypeError, "fitted on a dict of modalities \\['image', 'table'\\]"),
    ("numeric strings", with_(image=IMAGE.astype(str)), TypeError, "'image' holds non-numeric.*not parsed"),
    ("lengths", with_(image=IMAGE[:3]), ValueError, "inconsistent numbers of samples"),
    ("empty dict", {}, ValueError, "no modalities"),
    ("sparse", scipy.sparse.csr_matrix(TABLE), TypeError, "Sparse input is not supported"),
]


@pytest.mark.parametrize("method", ["predict", "predict_proba", "explain"])
@pytest.mark.parametrize("name, X, error, message", PREDICT_CASES, ids=[case[0] for case in PREDICT_CASES])
def test_prediction_rejects(fitted, method, name, X, error, message):
    with pytest.raises(error, match=message):
        getattr(fitted, method)(X)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "explain"])
def test_unfitted_estimator(method):
    with pytest.raises(NotFittedError):
        getattr(DyMoClassifier(), method)(good())


def test_array_model_rejects_a_dict_and_wrong_widths():
    clf = tiny_classifier(max_epochs=1).fit(TABLE, Y)
    with pytest.raises(TypeError, match="fitted on a 2-D array"):
        clf.predict({"x": TABLE})
    with pytest.raises(ValueError, match="features"):
        clf.predict(TABLE[:, :3])


def test_callers_arrays_are_never_modified(fitted):
    X = good()
    X["image"][:10] = np.nan
    X["table"][10:20, :3] = np.nan
    before = {name: array.copy() for name, array in X.items()}
    y_before = Y.copy()
    clf = tiny_classifier(max_epochs=1).fit(X, Y)
    clf.predict_proba(X)
    clf.explain(X)
    for name in X:
        np.testing.assert_array_equal(X[name], before[name])
    np.testing.assert_array_equal(Y, y_before)
