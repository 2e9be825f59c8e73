"""Recoverers that understand modalities: multimodal VAE and TIP-style tabular model."""

import warnings

import numpy as np
import scipy.sparse
import pytest
from helpers import tiny_classifier
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from dymo_sklearn import MultimodalDict
from dymo_sklearn.datasets import apply_missing, load_breast_cancer_views, make_multiview_digits
from dymo_sklearn.recovery import (MultimodalVAERecoverer, TabularRecoverer, fit_recoverer, recover,
                                   recovery_report)


def _error_on_hidden(fitted, hidden, truth):
    recovered = recover(fitted, hidden)
    errors = [((recovered[k] - truth[k])[np.isnan(hidden[k])]) ** 2 for k in truth]
    return float(np.mean(np.concatenate([e.ravel() for e in errors])))


@pytest.fixture(scope="module")
def two_digit_views():
    X, y = make_multiview_digits(2, n_samples=900, background=0.5, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def table_and_image():
    views, y = load_breast_cancer_views()
    table = np.concatenate([views["mean"], views["se"]], axis=1)
    table = ((table - table.mean(0)) / table.std(0)).astype(np.float32)
    rng = np.random.default_rng(0)
    codes = ((y + (rng.random(len(y)) < 0.1)) % 2).astype(np.float32)
    table = np.concatenate([table, codes[:, None]], axis=1)
    digits, digit_y = make_multiview_digits(1, n_samples=3000, background=0.3, random_state=1)
    # An image per patient: a digit whose class (0 or 1) is the diagnosis.
    picks = np.array([rng.choice(np.flatnonzero(digit_y == label)) for label in y])
    return MultimodalDict(table=table, image=digits["m0"][picks]), y


def test_multimodal_vae_beats_mean_imputation_and_keeps_observed(two_digit_views):
    X, _ = two_digit_views
    train = {k: v[:700] for k, v in X.items()}
    truth = {k: v[700:] for k, v in X.items()}
    hidden = apply_missing(truth, 0.5, random_state=0)
    vae = fit_recoverer(MultimodalVAERecoverer(max_epochs=40, random_state=0, device="cpu"), train)
    mean = fit_recoverer(SimpleImputer(), train)
    assert _error_on_hidden(vae, hidden, truth) < 0.95 * _error_on_hidden(mean, hidden, truth)
    recovered = recover(vae, hidden)
    for name in hidden:
        observed = ~np.isnan(hidden[name])
        np.testing.assert_array_equal(recovered[name][observed], hidden[name][observed])
    again = vae.transform(hidden)
    np.testing.assert_array_equal(again["m0"], recovered["m0"])  # posterior mean: deterministic
    vae.set_params(sample=True)
    sampled = vae.transform(hidden)["m0"]
    assert not np.array_equal(sampled, recovered["m0"])
    np.testing.assert_array_equal(vae.transform(hidden)["m0"], sampled)  # seeded by random_state


def test_tabular_recoverer_beats_mean_imputation(table_and_image):
    X, _ = table_and_image
    train = {k: v[:450] for k, v in X.items()}
    truth = {k: v[450:] for k, v in X.items()}
    hidden = {k: v.copy() for k, v in truth.items()}
    hide = np.random.default_rng(0).random(hidden["table"].shape) < 0.5
    hidden["table"][hide] = np.nan
    tip = fit_recoverer(TabularRecoverer("table", categorical_features=[20], max_epochs=30, random_state=0,
                                         device="cpu"), train)
    mean = fit_recoverer(SimpleImputer(), train)
    tip_table = recover(tip, hidden)["table"]
    mean_table = recover(mean, hidden)["table"]
    continuous = hide[:, :20]
    tip_rmse = np.sqrt(np.mean((tip_table[:, :20] - truth["table"][:, :20])[continuous] ** 2))
    mean_rmse = np.sqrt(np.mean((mean_table[:, :20] - truth["table"][:, :20])[continuous] ** 2))
    assert tip_rmse < 0.8 * mean_rmse
    assert set(np.unique(tip_table[:, 20])) <= {0.0, 1.0}  # categories come back as codes
    observed = ~np.isnan(hidden["table"])
    np.testing.assert_array_equal(tip_table[observed], hidden["table"][observed])


def test_tabular_recoverer_rejects_bad_settings(table_and_image):
    X, _ = table_and_image
    with pytest.raises(ValueError, match="table='labs' is not one of the modalities"):
        TabularRecoverer("labs", max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="'table': categorical column 3 must hold codes"):
        TabularRecoverer("table", categorical_features=[3], max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="must be a table"):
        TabularRecoverer("image", max_epochs=1).fit(X)


@pytest.mark.parametrize("kind", ["vae", "tabular"])
def test_dymo_with_neural_recoverers_in_cross_validation(two_digit_views, table_and_image, kind):
    if kind == "vae":
        X, y = two_digit_views
        X, y = X[:300], y[:300]
        recoverer = MultimodalVAERecoverer(max_epochs=2, random_state=0, device="cpu")
    else:
        X, y = table_and_image
        X, y = X[:300], y[:300]
        recoverer = TabularRecoverer("table", categorical_features=[20], max_epochs=2, random_state=0,
                                     device="cpu")
    X = apply_missing(X, 0.5, entry_rate=0.3, tabular=["table"] if kind == "tabular" else [], random_state=0)
    clf = tiny_classifier(recoverer=recoverer)
    scores = cross_val_score(clf, X, y, cv=2)
    assert scores.shape == (2,)
    fitted = clf.fit(X, y)
    assert type(fitted.recoverer_) is type(recoverer) and fitted.recoverer_ is not recoverer
    assert fitted.predict(X).shape == (300,)
    pipeline = make_pipeline(FunctionTransformer(lambda data: MultimodalDict(**data)), clone(clf)).fit(X, y)
    np.testing.assert_array_equal(pipeline.predict(X), fitted.predict(X))


def test_recovery_report_shows_alignment(two_digit_views):
    X, y = two_digit_views
    clf = tiny_classifier(recoverer=SimpleImputer(), max_epochs=15, lr=3e-3).fit(X[:700], y[:700])
    report = recovery_report(clf.recoverer_, X[700:], y[700:], clf)
    assert list(report.index) == ["m0", "m1"]
    assert (report["n_samples"] == 200).all()
    # Mean imputation carries no class: its recoveries align far less often than real images.
    assert (report["class_alignment"] < report["true_alignment"] - 0.2).all()
    np.testing.assert_allclose(report["rmse"], report["rmse_mean"], rtol=0.05)


class _Broken(SimpleImputer):
    """An imputer whose transform fails (as a diverging IterativeImputer does) or overflows float32."""

    def __init__(self, mode="raise"):
        super().__init__()
        self.mode = mode

    def transform(self, X):
        if self.mode == "raise":
            raise ValueError("Input X contains NaN.")
        if self.mode == "sparse":
            return scipy.sparse.csr_matrix(np.nan_to_num(X, nan=7.0))
        if self.mode == "strings":
            return np.nan_to_num(X, nan=7.0).astype(str)
        return np.where(np.isnan(X), 1e39, X)


class _BrokenIterative(IterativeImputer):
    def transform(self, X):
        raise ValueError("Input X contains NaN.")


def test_a_failing_or_overflowing_imputer_is_named():
    """Catches an imputer's own error surfacing without saying which recoverer failed (with the
    bounding hint only for IterativeImputer), and recoveries beyond float32 becoming inf that the
    network would train on, or a cast warning instead of the error."""
    arrays = {"a": np.array([[1.0, np.nan], [2.0, 3.0]]), "b": np.array([[np.nan], [1.0]])}
    with pytest.raises(ValueError, match="recoverer _Broken failed.*Input X contains NaN.$"):
        recover(fit_recoverer(_Broken("raise"), arrays), arrays)
    with pytest.raises(ValueError, match="recoverer _BrokenIterative failed.*min_value and max_value"):
        recover(fit_recoverer(_BrokenIterative(max_iter=1), arrays), arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="infinite values in modality 'a'"):
            recover(fit_recoverer(_Broken("overflow"), arrays), arrays)


def test_sparse_or_string_recoveries_are_made_dense_or_refused_by_name():
    """Catches numpy's 'setting an array element with a sequence' for a recoverer's sparse
    output, and strings parsed silently into numbers."""
    arrays = {"a": np.array([[1.0, np.nan], [2.0, 3.0]]), "b": np.array([[np.nan], [1.0]])}
    recovered = recover(fit_recoverer(_Broken("sparse"), arrays), arrays)
    np.testing.assert_array_equal(recovered["a"], [[1.0, 7.0], [2.0, 3.0]])
    with pytest.raises(TypeError, match="recoverer _Broken returned <U32 values"):
        recover(fit_recoverer(_Broken("strings"), arrays), arrays)



def test_a_frozen_recoverer_is_used_as_it_is(tmp_path):
    """Catches FrozenEstimator failing in fit ('missing 1 required positional argument: y') and a
    pre-fitted recoverer refitted on the labeled rows: its recoveries must stay those it learnt
    elsewhere, in training (recovery-aware pass) and at prediction, and survive save/load."""
    from sklearn.frozen import FrozenEstimator

    from dymo_sklearn import DyMoClassifier

    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(80, 3)).astype(np.float32), "b": rng.normal(size=(80, 2)).astype(np.float32)}
    y = (X["a"][:, 0] > 0).astype(int)
    pool = np.full((10, 5), 100.0)  # "pretrained elsewhere": it fills every entry with 100
    frozen = FrozenEstimator(SimpleImputer(keep_empty_features=True).fit(pool))
    clf = DyMoClassifier(recoverer=frozen, d_model=16, n_heads=2, n_layers=1, max_epochs=1, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.recoverer_.estimator.statistics_, np.full(5, 100.0))
    missing = {"a": X["a"][:4], "b": np.full((4, 2), np.nan, dtype=np.float32)}
    np.testing.assert_array_equal(recover(clf.recoverer_, missing)["b"], np.full((4, 2), 100.0))
    clf.save(tmp_path / "m")
    loaded = DyMoClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(missing), clf.predict_proba(missing))


def test_a_pretrained_tabular_recoverer_is_frozen_and_used_as_it_is(image_table_data):
    """The TIP-style recipe of the user guide: a TabularRecoverer pretrained on an unlabeled pool,
    frozen, passed in. Catches the frozen wrapper hiding ``accepts_multimodal_input`` (the
    recoverer would get a flat matrix) and a refit on the labeled rows (its weights would change)."""
    import torch
    from sklearn.frozen import FrozenEstimator

    from dymo_sklearn import DyMoClassifier

    X, y = image_table_data
    pool, labeled = np.arange(0, 300), np.arange(300, 400)
    pretrained = TabularRecoverer("table", max_epochs=2, random_state=0, device="cpu").fit(
        {name: array[pool] for name, array in X.items()})
    before = {k: v.clone() for k, v in pretrained.net_.module_.state_dict().items()}
    clf = DyMoClassifier(recoverer=FrozenEstimator(pretrained), d_model=16, n_heads=2, n_layers=1, max_epochs=1,
                         random_state=0, device="cpu")
    clf.fit({name: array[labeled] for name, array in X.items()}, y[labeled])
    assert clf.recoverer_.estimator is pretrained
    assert all(torch.equal(before[k], v) for k, v in pretrained.net_.module_.state_dict().items())
    missing = {"image": X["image"][:5], "table": np.full_like(X["table"][:5], np.nan)}
    np.testing.assert_array_equal(recover(clf.recoverer_, missing)["table"], pretrained.transform(missing)["table"])
