import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from dymo_sklearn import MultimodalDict
from dymo_sklearn._input import observed_modalities, split_columns, validate_modalities


def test_multimodal_dict_slices_every_modality():
    X = MultimodalDict(a=np.arange(10).reshape(5, 2), b=np.arange(5 * 4).reshape(5, 1, 2, 2))
    part = X[np.array([0, 3])]
    assert isinstance(part, MultimodalDict) and len(part) == 2
    np.testing.assert_array_equal(part["a"], [[0, 1], [6, 7]])
    assert part["b"].shape == (2, 1, 2, 2)


def test_multimodal_dict_accepts_dataframe_and_rejects_sparse():
    X = MultimodalDict(t=pd.DataFrame({"u": [1.0, 2.0], "v": [3.0, 4.0]}))
    assert isinstance(X["t"], np.ndarray) and X["t"].shape == (2, 2)
    with pytest.raises(TypeError, match="'s'.*sparse"):
        MultimodalDict(s=scipy.sparse.csr_matrix(np.eye(3)))


def test_whole_and_intra_modality_missingness():
    a = np.array([[1.0, 2.0], [np.nan, np.nan], [np.nan, 3.0]])
    present, complete = observed_modalities(validate_modalities({"a": a}))
    np.testing.assert_array_equal(present[:, 0], [True, False, True])
    np.testing.assert_array_equal(complete[:, 0], [True, False, False])


def test_absent_key_at_predict_means_missing_for_all():
    arrays = validate_modalities({"a": np.ones((3, 2))}, reference_shapes={"a": (2,), "b": (1, 4, 4)})
    assert list(arrays) == ["a", "b"]
    assert arrays["b"].shape == (3, 1, 4, 4) and np.isnan(arrays["b"]).all()


@pytest.mark.parametrize(
    "X, error, message",
    [
        ({"a": np.ones((3, 2)), "b": np.ones((4, 2))}, ValueError, "inconsistent numbers of samples.*'a': 3.*'b': 4"),
        ({"a": np.array([["x", "y"], ["z", "w"]])}, TypeError, "'a'.*non-numeric"),
        ({"a": np.array([[1.0, np.inf]])}, ValueError, "'a'.*infinite"),
        ({"a": np.ones(3)}, ValueError, "'a'.*at least 2 dimensions"),
        ({"a": scipy.sparse.csr_matrix(np.eye(3))}, TypeError, "'a'.*sparse"),
        ({}, ValueError, "no modalities"),
        ({"a": np.ones((0, 2))}, ValueError, "0 samples"),
        ({1: np.ones((2, 2))}, TypeError, "strings"),
        (np.ones((3, 2)), TypeError, "mapping"),
    ],
)
def test_bad_input_is_named(X, error, message):
    with pytest.raises(error, match=message):
        validate_modalities(X)


def test_unknown_key_and_changed_shape_against_fit():
    reference = {"a": (2,)}
    with pytest.raises(ValueError, match="Unknown modalities \\['z'\\]"):
        validate_modalities({"a": np.ones((2, 2)), "z": np.ones((2, 1))}, reference_shapes=reference)
    with pytest.raises(ValueError, match="'a' has per-sample shape \\(3,\\).*\\(2,\\)"):
        validate_modalities({"a": np.ones((2, 3))}, reference_shapes=reference)


def test_caller_arrays_are_not_modified():
    a = np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32)
    before = a.copy()
    validate_modalities({"a": a})
    np.testing.assert_array_equal(a, before)


def test_split_columns_by_index_and_name():
    array = np.arange(12.0).reshape(3, 4)
    parts = split_columns(array, {"left": [0, 1], "right": ["c", "d"]}, np.array(["a", "b", "c", "d"]))
    np.testing.assert_array_equal(parts["right"], array[:, 2:])
    with pytest.raises(ValueError, match="more than one modality"):
        split_columns(array, {"x": [0, 1], "y": [1]})
    with pytest.raises(ValueError, match="'x': column 9 is out of range"):
        split_columns(array, {"x": [9]})
