"""Categorical columns of DataFrame modalities: one-hot inside the estimator, missing stays missing."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.model_selection import cross_val_score

from dymo_sklearn import DyMoClassifier, MARSClassifier, MultimodalDict
from dymo_sklearn._categorical import encode_categories, fit_categories

from helpers import tiny_classifier, tiny_mars


def _clinical(n_samples=300, seed=0):
    """The class is written only in the 'smoking' strings and (noisily) the 'site' Categorical;
    'age', the nullable boolean 'male' and the image are noise. 10 % of 'smoking' values and 30 %
    of images are missing."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n_samples)
    smoking = np.array(["never", "former", "current"], dtype=object)[y]
    smoking[rng.random(n_samples) < 0.1] = None
    north = (y == 2) ^ (rng.random(n_samples) < 0.15)  # not a copy of 'smoking': collinear one-hot blocks
    site = pd.Categorical(np.where(north, "north", "south"), categories=["south", "north", "east"])
    clinical = pd.DataFrame({"age": rng.normal(50, 10, n_samples), "smoking": smoking, "site": site,
                             "male": pd.array(rng.random(n_samples) < 0.5, dtype="boolean")})
    image = rng.normal(size=(n_samples, 1, 8, 8)).astype(np.float32)
    image[rng.random(n_samples) < 0.3] = np.nan
    return MultimodalDict(clinical=clinical, image=image), y


def test_categories_are_learned_per_column_in_their_own_order():
    X, _ = _clinical()
    fitted = fit_categories(X)
    assert fitted == {"clinical": [("age", None), ("smoking", ["current", "former", "never"]),
                                   ("site", ["south", "north", "east"]), ("male", None)]}


def test_a_missing_category_is_a_missing_block_not_zeros():
    X, _ = _clinical()
    encoded = encode_categories(X, fit_categories(X))["clinical"]
    assert encoded.shape == (300, 1 + 3 + 3 + 1)
    missing = X["clinical"]["smoking"].isna().to_numpy()
    assert np.isnan(encoded[missing, 1:4]).all() and not np.isnan(encoded[~missing, 1:4]).any()
    np.testing.assert_array_equal(encoded[~missing, 1:4].sum(axis=1), 1.0)
    np.testing.assert_array_equal(encoded[:, 4:7].sum(axis=1), 1.0)  # 'east' never occurs, still a column


@pytest.mark.parametrize("make", [lambda: tiny_classifier(max_epochs=15, lr=3e-3),
                                  # Bounded: unbounded BayesianRidge rounds diverge on these collinear
                                  # one-hot blocks with some BLAS builds.
                                  lambda: tiny_classifier(max_epochs=15, lr=3e-3, recoverer=IterativeImputer(
                                      max_iter=3, random_state=0, min_value=-1e3, max_value=1e3)),
                                  lambda: tiny_mars(max_epochs=15, lr=3e-3)],
                         ids=["dymo knn", "dymo iterative", "mars"])
def test_the_model_learns_from_categorical_columns(make):
    X, y = _clinical()
    model = make().fit(X[:200], y[:200])
    assert model.modality_shapes_["clinical"] == (8,)
    assert model.score(X[200:], y[200:]) > 0.85


def test_an_unseen_category_is_missing_and_named():
    X, y = _clinical()
    model = tiny_classifier().fit(X, y)
    changed, as_missing = X["clinical"].copy(), X["clinical"].copy()
    changed.loc[3, "smoking"] = "heavy"
    as_missing.loc[3, "smoking"] = None
    with pytest.warns(UserWarning, match="'smoking': 'heavy'.*treated as missing"):
        unseen = model.predict_proba({"clinical": changed, "image": X["image"]})
    np.testing.assert_array_equal(unseen, model.predict_proba({"clinical": as_missing, "image": X["image"]}))


def test_a_fully_missing_row_is_a_missing_modality_in_explain():
    X, y = _clinical()
    model = tiny_classifier().fit(X, y)
    clinical = X["clinical"].copy()
    clinical.loc[5] = [np.nan, None, np.nan, None]
    report = model.explain({"clinical": clinical, "image": np.nan_to_num(X["image"])})
    assert report.loc[5, "observed"] == ["image"] and "clinical" in report.loc[5, "candidates"]
    assert report.loc[4, "observed"] == ["clinical", "image"]


def test_cross_validation_slices_the_frame_by_position():
    X, y = _clinical(120)
    scores = cross_val_score(tiny_classifier(max_epochs=2), X, y, cv=3)
    assert len(scores) == 3 and np.isfinite(scores).all()
    assert X[np.array([5, 2])]["clinical"]["age"].tolist() == X["clinical"]["age"].iloc[[5, 2]].tolist()


def test_categories_survive_save_and_load(tmp_path):
    X, y = _clinical()
    model = tiny_classifier().fit(X, y)
    model.save(tmp_path / "model")
    loaded = DyMoClassifier.load(tmp_path / "model")
    assert loaded.categories_ == {name: [(c, v) for c, v in columns] for name, columns in model.categories_.items()}
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_mars_keeps_its_categories_through_save_and_load(tmp_path):
    X, y = _clinical()
    model = tiny_mars().fit(X, y)
    model.save(tmp_path / "model")
    np.testing.assert_array_equal(MARSClassifier.load(tmp_path / "model").predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("change, error, message", [
    (lambda f: f.drop(columns="site"), ValueError, r"missing \['site'\]"),
    (lambda f: f.assign(extra=1.0), ValueError, r"unexpected \['extra'\]"),
    (lambda f: f.to_numpy(), TypeError, "fitted as a DataFrame with categorical columns"),
], ids=["missing column", "extra column", "array"])
def test_predict_needs_the_fitted_columns(change, error, message):
    X, y = _clinical()
    model = tiny_classifier(max_epochs=1).fit(X, y)
    with pytest.raises(error, match=message):
        model.predict({"clinical": change(X["clinical"]), "image": X["image"]})


def test_numbers_written_as_strings_are_refused():
    X, y = _clinical()
    clinical = X["clinical"].assign(age=X["clinical"]["age"].round(1).astype(str))
    with pytest.raises(TypeError, match="'age' holds numbers written as strings.*pd.to_numeric"):
        tiny_classifier().fit({"clinical": clinical, "image": X["image"]}, y)


def test_columns_order_at_predict_does_not_matter():
    X, y = _clinical()
    model = tiny_classifier(max_epochs=1).fit(X, y)
    shuffled = X["clinical"][["male", "site", "age", "smoking"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(model.predict_proba({"clinical": shuffled, "image": X["image"]}),
                                      model.predict_proba(X))


def test_object_columns_of_numbers_stay_numeric_and_declared_codes_are_categories():
    """JSON and SQL readers leave numbers (with None) in object columns: numbers, not one category
    per value. A zip code declared as a Categorical is a category even though it reads as a number."""
    frame = pd.DataFrame({"age": pd.Series([50.5, None, 61.0, 42.0], dtype=object),
                          "zip": pd.Categorical(["02139", "10001", "02139", None]),
                          "sex": ["f", "m", None, "f"]})
    fitted = fit_categories({"t": frame})
    assert fitted == {"t": [("age", None), ("zip", ["02139", "10001"]), ("sex", ["f", "m"])]}
    encoded = encode_categories({"t": frame}, fitted)["t"]
    np.testing.assert_array_equal(encoded[:, 0], [50.5, np.nan, 61.0, 42.0])
    assert np.isnan(encoded[3, 1:3]).all() and np.isnan(encoded[2, 3:5]).all()


def test_reserved_names_cannot_be_modalities():
    X, y = _clinical(60)
    with pytest.raises(ValueError, match=r"Modality names \['sample_weight'\] are reserved"):
        tiny_classifier().fit({"sample_weight": X["image"], "clinical": X["clinical"]}, y)


def test_one_table_with_categorical_columns_splits_by_column_groups(tmp_path):
    """A single DataFrame with string and Categorical columns, split by column_groups, is the
    same model as the dict of DataFrames it stands for; its column names are checked at predict."""
    X, y = _clinical()
    table = X["clinical"].assign(pixel_sum=np.nan_to_num(X["image"]).sum(axis=(1, 2, 3)))
    groups = {"labs": ["age", "pixel_sum"], "history": ["smoking", "site", "male"]}
    as_dict = MultimodalDict(labs=table[groups["labs"]], history=table[groups["history"]])
    from_table = tiny_classifier(column_groups=groups, max_epochs=5).fit(table, y)
    from_dict = tiny_classifier(max_epochs=5).fit(as_dict, y)
    assert from_table.modality_shapes_ == {"labs": (2,), "history": (7,)} == from_dict.modality_shapes_
    np.testing.assert_array_equal(from_table.predict_proba(table), from_dict.predict_proba(as_dict))
    assert list(from_table.feature_names_in_) == list(table.columns)
    with pytest.raises(ValueError, match="same order"):
        from_table.predict(table[table.columns[::-1]])
    from_table.save(tmp_path / "model")
    loaded = DyMoClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(table), from_table.predict_proba(table))


def test_a_table_keeps_the_kind_it_was_fitted_with():
    """Whether a 2-D table holds categories is decided at fit, not by the dtypes at predict."""
    X, y = _clinical()
    numeric = X["clinical"][["age"]].assign(other=np.arange(len(y), dtype=float))
    fitted = tiny_classifier(max_epochs=1).fit(numeric, y)
    # numbers that arrive as objects (read from JSON, say) are the same numbers
    np.testing.assert_array_equal(fitted.predict_proba(numeric.astype(object)), fitted.predict_proba(numeric))
    table = X["clinical"]
    categorical = tiny_classifier(max_epochs=1).fit(table, y)
    # a categorical column with no value in this batch (all-NaN floats) is missing, not a new shape
    unknown = table.assign(smoking=np.nan)
    assert categorical.predict_proba(unknown).shape == (len(y), 3)
    # refitting on numbers forgets the categories of an earlier fit
    assert categorical.fit(numeric, y).categories_ == {}


@pytest.mark.parametrize("with_category", [True, False], ids=["categorical frame", "numeric frame"])
@pytest.mark.parametrize("as_dict", [True, False], ids=["dict", "2-D"])
def test_complex_columns_are_refused_by_name(with_category, as_dict):
    """Catches a complex column whose imaginary part is dropped silently (pandas casts it)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "z": rng.normal(size=40) + 1j})
    if with_category:
        frame["c"] = rng.choice(["x", "y"], 40)
    y = np.arange(40) % 2
    with pytest.raises((TypeError, ValueError), match="[Cc]omplex"):
        tiny_classifier(max_epochs=1).fit({"t": frame} if as_dict else frame, y)
    with pytest.raises(TypeError, match="'z'.*complex"):
        tiny_classifier(max_epochs=1).fit({"t": frame}, y)


def test_repeated_column_names_in_a_categorical_frame_are_refused_by_name():
    """Catches an AttributeError ('DataFrame' object has no attribute 'dtype') from a frame
    whose two columns share a name: encoded by name, they cannot be told apart."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "c": rng.choice(["x", "y"], 40)})
    frame.columns = ["a", "a", "c"]
    with pytest.raises(ValueError, match="'labs'.*repeats the column names 'a'"):
        tiny_classifier(max_epochs=1).fit({"labs": frame}, np.arange(40) % 2)


def _frame_with(column):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=len(column)), "c": column, "s": rng.choice(["u", "v"], len(column))})


@pytest.mark.parametrize("column, message", [
    ([True, 1] * 20, "mixes booleans and numbers"),
    (["a", "nan"] * 20, "holds 'nan' as a value"),
    (["a", "None"] * 20, "holds 'None' as a value"),
    ([["a"], ["b"]] * 20, r"categories must be strings, numbers or booleans, got \['a'\] \(list\)"),
    ([{"k": 1}, "b"] * 20, r"categories must be strings, numbers or booleans, got \{'k': 1\} \(dict\)"),
], ids=["True and 1", "the string nan", "the string None", "lists", "dicts"])
def test_ambiguous_categories_are_refused_by_column(column, message):
    """Catches True and 1 merged into one category (equal in Python), a missing value spelled as
    a string turned into a category without a word, and lists or dicts failing as 'unhashable'."""
    with pytest.raises(TypeError, match=f"'t', column 'c':? {message}"):
        tiny_classifier(max_epochs=1).fit({"t": _frame_with(column)}, np.arange(40) % 2)


def test_numbers_as_strings_are_refused_at_predict_too():
    """Catches a numeric column that refuses strings at fit but parses them at predict."""
    frame = _frame_with(np.arange(40.0))
    clf = tiny_classifier(max_epochs=1).fit({"t": frame}, np.arange(40) % 2)
    frame["x"] = frame["x"].astype(str).astype(object)
    with pytest.raises(TypeError, match="'t', column 'x' was numeric in fit and now holds non-numbers"):
        clf.predict({"t": frame})
    frame["x"] = frame["x"].astype(float).astype(object)  # numbers in an object column still work
    clf.predict({"t": frame})
