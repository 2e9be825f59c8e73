"""The input layer: containers, dtypes, shapes and labels become float32 arrays with NaN masks,
or a clear error naming the modality."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from helpers import tiny_classifier

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


# ---- containers, dtypes and labels a careless user hands over (issue 13, class 6)
def _digits_dict(n=60):
    from dymo_sklearn.datasets import make_multiview_digits

    X, y = make_multiview_digits(2, n_samples=n, random_state=0)
    return {"m0": X["m0"], "m1": X["m1"].reshape(n, -1)}, y


def test_pandas_nullable_columns_in_a_dict_modality_become_nan():
    frame = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"), "b": pd.array([0.5, 1.5, None], dtype="Float64"),
                          "c": pd.array([True, None, False], dtype="boolean")})
    array = validate_modalities({"t": frame})["t"]
    np.testing.assert_array_equal(np.isnan(array), [[False, False, False], [True, False, True], [False, True, False]])
    assert array[0, 0] == 1.0 and array[2, 2] == 0.0


def test_non_numeric_frame_columns_are_named():
    frame = pd.DataFrame({"age": [1.0, 2.0], "sex": ["f", "m"]})
    with pytest.raises(TypeError, match="Modality 't' has non-numeric columns \\{'sex': '(object|str)'\\}"):
        validate_modalities({"t": frame})


def test_numeric_strings_in_object_arrays_are_not_parsed_but_none_is_missing():
    with pytest.raises(TypeError, match="Modality 't' holds non-numeric data.*str.*not parsed"):
        validate_modalities({"t": np.array([["1.5", 2.0]], dtype=object)})
    array = validate_modalities({"t": np.array([[1, None], [2.5, pd.NA]], dtype=object)})["t"]
    np.testing.assert_array_equal(np.isnan(array), [[False, True], [False, True]])


def test_masked_arrays_keep_their_mask_as_missing():
    values = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0]], mask=[[False, True], [False, False]])
    array = validate_modalities({"t": values})["t"]
    assert np.isnan(array[0, 1]) and array[1, 1] == 4.0


def test_nested_mapping_ragged_lists_and_bfloat16():
    with pytest.raises(TypeError, match="Modality 'outer' is itself a mapping"):
        validate_modalities({"outer": MultimodalDict(inner=np.zeros((2, 2)))})
    with pytest.raises(ValueError, match="Modality 'r' cannot be read as one array"):
        validate_modalities({"r": [[1.0, 2.0], [3.0]]})
    tensor = torch.tensor([[1.5, 2.0], [float("nan"), 4.0]], dtype=torch.bfloat16)
    array = validate_modalities({"b": tensor})["b"]
    assert array.dtype == np.float32 and np.isnan(array[1, 0]) and array[0, 0] == 1.5


def test_labels_mixing_strings_and_missing_values_are_a_value_error():
    X, y = _digits_dict()
    labels = np.array(["a", "b"] * 29 + [None, "a"], dtype=object)
    with pytest.raises(ValueError, match="y mixes label types"):
        tiny_classifier().fit(X, labels)


@pytest.mark.parametrize("name", ["max_epochs", "batch_size", "patience", "n_subsets"])
def test_booleans_are_refused_for_integer_parameters(name):
    X, y = _digits_dict()
    with pytest.raises(ValueError, match=f"'{name}' parameter.*must be an integer, got True"):
        tiny_classifier(**{name: True}).fit(X, y)


def test_boolean_predict_batch_size_is_refused_at_predict():
    X, y = _digits_dict()
    clf = tiny_classifier().fit(X, y)
    clf.set_params(predict_batch_size=True)
    with pytest.raises(ValueError, match="'predict_batch_size' parameter.*must be an integer"):
        clf.predict(X)


@pytest.mark.parametrize("groups, error, message", [
    ({"a": "abc", "b": [3]}, TypeError, "column_groups values must be lists"),
    ({"a": [True, False], "b": [2, 3]}, TypeError, "is a boolean"),
    ({"a": [0, 1], "b": [2]}, ValueError, "Columns \\[3\\] belong to no modality"),
])
def test_column_groups_mistakes_are_refused(groups, error, message):
    X = np.random.default_rng(0).random((40, 4))
    y = np.arange(40) % 2
    with pytest.raises(error, match=message):
        tiny_classifier(column_groups=groups).fit(X, y)


def test_column_groups_with_dict_input_is_refused():
    X, y = _digits_dict()
    with pytest.raises(ValueError, match="column_groups applies to 2-D input only"):
        tiny_classifier(column_groups={"a": [0]}).fit(X, y)


def test_a_modality_never_observed_in_training_is_refused():
    X, y = _digits_dict()
    X["m1"] = np.full_like(X["m1"], np.nan)
    with pytest.raises(ValueError, match="Modalities \\['m1'\\] have no observed entry in the training data"):
        tiny_classifier().fit(X, y)


def test_flipped_and_read_only_arrays_are_accepted(image_table_data):
    """Catches views with negative strides (np.flip, a[::-1]) that crashed in torch at predict,
    and read-only arrays that made torch warn; both must predict as their plain copies do."""
    X, y = image_table_data
    clf = tiny_classifier(max_epochs=1).fit(X, y)
    flipped = {"image": np.flip(X["image"], 3), "table": X["table"][::-1][::-1]}
    frozen = {name: np.array(values) for name, values in X.items()}
    for values in frozen.values():
        values.setflags(write=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable.*")
        np.testing.assert_array_equal(clf.predict_proba(frozen), clf.predict_proba(X))
    expected = clf.predict_proba({"image": np.ascontiguousarray(flipped["image"]), "table": X["table"]})
    np.testing.assert_array_equal(clf.predict_proba(flipped), expected)
    reversed_rows = {name: values[::-1] for name, values in X.items()}
    np.testing.assert_allclose(clf.predict_proba(reversed_rows), clf.predict_proba(X)[::-1], atol=1e-6)
