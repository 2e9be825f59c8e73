"""ModalityTransformer: per-modality preprocessing that keeps missing modalities missing."""

import pickle

import numpy as np
import pytest
from helpers import tiny_classifier
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from dymo_sklearn import ModalityTransformer, MultimodalDict


@pytest.fixture
def labs_and_scan():
    rng = np.random.default_rng(0)
    labs = rng.normal(50, 10, (60, 4)).astype(np.float32)
    labs[:15] = np.nan  # 15 samples without labs
    labs[20, 1] = np.nan  # one missing entry
    scan = rng.normal(0, 1, (60, 1, 8, 8)).astype(np.float32)
    scan[40:] = np.nan
    return MultimodalDict(labs=labs, scan=scan)


def test_fits_on_present_rows_and_keeps_missing_rows_missing(labs_and_scan):
    """Catches statistics polluted by missing rows (NaN or zeros), and missing rows filled in."""
    X = labs_and_scan
    out = ModalityTransformer({"labs": StandardScaler()}).fit(X).transform(X)
    present = X["labs"][15:].astype(np.float64)
    expected = (present - np.nanmean(present, 0)) / np.nanstd(present, 0)
    np.testing.assert_allclose(out["labs"][15:], expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert np.isnan(out["labs"][:15]).all() and np.isnan(out["labs"][20, 1])
    np.testing.assert_array_equal(out["scan"], X["scan"])  # remainder passes through


def test_output_width_and_shape(labs_and_scan):
    """Catches a reshape to the input shape when the width changed, or images flattened needlessly."""
    X = labs_and_scan
    out = ModalityTransformer({"scan": PCA(n_components=3), "labs": StandardScaler()}).fit(X).transform(X)
    assert out["scan"].shape == (60, 3) and np.isnan(out["scan"][40:]).all() and np.isfinite(out["scan"][:40]).all()
    same = ModalityTransformer({"scan": StandardScaler()}).fit(X).transform(X)
    assert same["scan"].shape == (60, 1, 8, 8)
    dropped = ModalityTransformer({"labs": StandardScaler()}, remainder="drop").fit(X).transform(X)
    assert list(dropped) == ["labs"]
    assert list(ModalityTransformer({"labs": "drop"}).fit(X).transform(X)) == ["scan"]


def _first_half(values):
    return values[:, : values.shape[1] // 2]


@pytest.mark.parametrize("transformer", [FunctionTransformer(_first_half), PCA(n_components=3)],
                         ids=["FunctionTransformer", "PCA"])
def test_a_batch_without_the_modality_keeps_its_transformed_width(labs_and_scan, transformer):
    """Catches the width of an absent modality taken from its input (a FunctionTransformer has no
    get_feature_names_out): a batch, or one sample, without the scan failed with a shape error."""
    X = labs_and_scan
    fitted = ModalityTransformer({"scan": transformer}).fit(X)
    width = fitted.transform(X[:5])["scan"].shape[1]
    for batch in (X[40:], X[45:46]):  # nobody in these rows has the scan
        out = fitted.transform(batch)
        assert out["scan"].shape == (len(batch["labs"]), width) and np.isnan(out["scan"]).all()
    model = make_pipeline(ModalityTransformer({"scan": transformer}), tiny_classifier(max_epochs=1))
    model.fit(X, np.arange(60) % 2)
    np.testing.assert_array_equal(model.predict(X[45:46]), model.predict(X[40:])[5:6])


def test_pipeline_grid_search_clone_and_pickle(image_table_data):
    """Catches nested parameters that do not reach the transformer, and set_params editing the
    caller's dict."""
    X, y = image_table_data
    scaler = StandardScaler()
    transformers = {"table": scaler}
    pipeline = make_pipeline(ModalityTransformer(transformers), tiny_classifier(max_epochs=2))
    search = GridSearchCV(pipeline, {"modalitytransformer__table__with_mean": [True, False]}, cv=2,
                          error_score="raise").fit(X[:200], y[:200])
    assert search.best_params_["modalitytransformer__table__with_mean"] in (True, False)
    assert scaler.get_params()["with_mean"] is True and transformers == {"table": scaler}
    fitted = search.best_estimator_.named_steps["modalitytransformer"]
    assert fitted.transformers_["table"].with_mean == search.best_params_["modalitytransformer__table__with_mean"]
    pipeline.set_params(modalitytransformer__table__with_std=False)
    assert pipeline.named_steps["modalitytransformer"].transformers["table"].with_std is False
    assert scaler.with_std is True and transformers["table"] is scaler  # the caller's dict is left alone
    copy = clone(fitted)
    assert not hasattr(copy, "transformers_") and copy.get_params()["table__with_std"] is True
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X)["table"], fitted.transform(X)["table"])


def test_set_output_is_forwarded_and_the_output_stays_a_multimodal_dict(labs_and_scan):
    transformer = ModalityTransformer({"labs": StandardScaler()}).set_output(transform="pandas")
    assert transformer.transformers["labs"].get_params() and transformer.transformers["labs"]._sklearn_output_config
    out = transformer.fit(labs_and_scan).transform(labs_and_scan)
    assert isinstance(out, MultimodalDict) and isinstance(out["labs"], np.ndarray)


def test_bad_parameters_name_the_modality(labs_and_scan):
    X = labs_and_scan
    with pytest.raises(ValueError, match=r"modalities \['vitals'\] that X does not have"):
        ModalityTransformer({"vitals": StandardScaler()}).fit(X)
    with pytest.raises(TypeError, match="modality 'labs' must have fit and transform"):
        ModalityTransformer({"labs": 3}).fit(X)
    with pytest.raises(ValueError, match="remainder must be"):
        ModalityTransformer({}, remainder="keep").fit(X)
    empty = MultimodalDict(labs=np.full((5, 2), np.nan), scan=np.ones((5, 3)))
    with pytest.raises(ValueError, match="'labs' is missing in every sample"):
        ModalityTransformer({"labs": StandardScaler()}).fit(empty)
    with pytest.raises(ValueError, match="no modality 'vitals'"):
        ModalityTransformer({"labs": StandardScaler()}).set_params(vitals__with_mean=False)


class _Broken(TransformerMixin, BaseEstimator):
    """A transformer whose output is wrong in the way ``kind`` says."""

    def __init__(self, kind="strings"):
        self.kind = kind

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        if self.kind == "drops a row":
            return X[1:]
        if self.kind == "strings":
            return X.astype(str)
        if self.kind == "NaN":
            return np.full_like(X, np.nan)
        return X[:, 0]  # 1-D


@pytest.mark.parametrize("kind, error", [("drops a row", ValueError), ("strings", TypeError), ("1-D", ValueError),
                                         ("NaN", ValueError)])
def test_bad_transformer_output_names_the_modality(labs_and_scan, kind, error):
    """Catches numpy's own messages ('setting an array element...', a broadcast error) reaching
    the user without the modality whose transformer misbehaved, and samples turned silently
    missing by a transformer that returns NaN."""
    with pytest.raises(error, match="transformer of modality 'labs'"):
        ModalityTransformer({"labs": _Broken(kind)}).fit(labs_and_scan).transform(labs_and_scan)


def test_sparse_output_is_made_dense(labs_and_scan):
    """Catches a default OneHotEncoder (sparse output) failing: its indicators come out dense."""
    from sklearn.preprocessing import OneHotEncoder

    X = MultimodalDict(labs=np.nan_to_num(np.round(labs_and_scan["labs"] / 20)), scan=labs_and_scan["scan"])
    out = ModalityTransformer({"labs": OneHotEncoder(handle_unknown="ignore")}).fit(X).transform(X)
    dense = OneHotEncoder(handle_unknown="ignore").fit(X["labs"]).transform(X["labs"]).toarray()
    np.testing.assert_array_equal(out["labs"], dense)


def test_a_categorical_frame_passes_through_to_the_estimator():
    """Catches the documented preprocess-then-DyMo pipeline refusing a DataFrame modality with
    categorical columns (the transformer validated it as numbers), and a transformer given to
    such a frame failing without naming it."""
    import pandas as pd

    rng = np.random.default_rng(0)
    info = pd.DataFrame({"age": rng.normal(60, 10, 80), "ward": rng.choice(["a", "b", "c"], 80)})
    X = MultimodalDict(labs=rng.normal(50, 10, (80, 4)), info=info)
    y = (X["labs"][:, 0] > 50).astype(int)
    model = make_pipeline(ModalityTransformer({"labs": StandardScaler()}), tiny_classifier(max_epochs=2)).fit(X, y)
    out = model[0].transform(X)
    assert out["info"] is not None and list(out["info"].columns) == ["age", "ward"]
    direct = tiny_classifier(max_epochs=2).fit(model[0].transform(X), y)
    np.testing.assert_array_equal(model.predict_proba(X), direct.predict_proba(model[0].transform(X)))
    with pytest.raises(TypeError, match="'info' is a DataFrame with categorical columns"):
        ModalityTransformer({"info": StandardScaler()}).fit(X)
