"""The checks a faithful DyMo implementation passes (DESIGN.md section 4)."""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.recovery import fit_recoverer, recover


def test_masked_modality_content_cannot_reach_the_output(fitted_multiview):
    """Check 1: changing what an absent modality's tokens hold leaves h, logits and z bit-equal."""
    clf, X, _ = fitted_multiview
    network = clf.net_.module_.eval()
    batch = {name: X[name][:32] for name in clf.modalities_}
    tokens, present = clf._encode_observed(network, batch, clf.net_.device)
    present[:, 1] = False
    garbage = tokens.clone()
    garbage[:, network.fusion.token_modality == 1] = torch.randn_like(garbage[:, network.fusion.token_modality == 1]) * 1e3
    with torch.no_grad():
        logits_a, z_a = network.heads(network.fuse(tokens, present))
        logits_b, z_b = network.heads(network.fuse(garbage, present))
    assert torch.equal(logits_a, logits_b) and torch.equal(z_a, z_b)


def test_unselected_recovery_cannot_change_predictions(fitted_multiview):
    """Check 1 end to end: with `none`, whatever the recoverer writes is never seen."""
    clf, X, _ = fitted_multiview
    X_missing = apply_missing(X[:64], 0.67, random_state=0)
    clf.set_params(selection="none")
    before = clf.predict_proba(X_missing)
    original = clf.recoverer_
    try:
        clf.recoverer_ = SimpleImputer(strategy="constant", fill_value=123.0, keep_empty_features=True).fit(
            np.concatenate([X[:64][n].reshape(64, -1) for n in clf.modalities_], axis=1))
        after = clf.predict_proba(X_missing)
    finally:
        clf.recoverer_ = original
        clf.set_params(selection="dymo")
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("selection", ["dymo", "all", "none"])
def test_predictions_independent_of_batch_size_and_order(fitted_multiview, selection):
    """Check 2: batch size, batch composition and sample order do not change anyone's result."""
    clf, X, _ = fitted_multiview
    X_missing = apply_missing(X[:200], 0.67, random_state=1)
    clf.set_params(selection=selection, predict_batch_size=1024)
    reference = clf.predict_proba(X_missing)
    order = np.random.default_rng(0).permutation(200)
    clf.set_params(predict_batch_size=7)
    shuffled = clf.predict_proba(X_missing[order])
    single = clf.predict_proba(X_missing[5:6])
    clf.set_params(selection="dymo", predict_batch_size=1024)
    np.testing.assert_allclose(shuffled, reference[order], atol=1e-5)
    np.testing.assert_allclose(single, reference[5:6], atol=1e-5)
    np.testing.assert_array_equal(shuffled.argmax(1), reference[order].argmax(1))


def test_labels_are_never_used_at_inference(fitted_multiview):
    """Check 2: scoring with wrong labels leaves later predictions untouched."""
    clf, X, y = fitted_multiview
    X_missing = apply_missing(X[:100], 0.67, random_state=2)
    before = clf.predict_proba(X_missing)
    clf.score(X_missing, np.random.default_rng(0).permutation(y[:100]))
    np.testing.assert_array_equal(before, clf.predict_proba(X_missing))


class _Scrambler(BaseEstimator, TransformerMixin):
    """An imputer that overwrites every entry, observed or not."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.full(np.shape(X), 7.0)


@pytest.mark.parametrize(
    "imputer", [SimpleImputer(), KNNImputer(n_neighbors=3), IterativeImputer(max_iter=2, n_nearest_features=8), _Scrambler()]
)
def test_observed_entries_pass_through_recovery_unchanged(image_table_data, imputer):
    """Check 5, including an imputer that tries to change observed entries."""
    X, _ = image_table_data
    arrays = {name: X[name][:120].astype(np.float32) for name in X}
    arrays["table"][::3, :5] = np.nan  # intra-modality missingness too
    recovered = recover(fit_recoverer(imputer, arrays), arrays)
    for name, array in arrays.items():
        observed = ~np.isnan(array)
        np.testing.assert_array_equal(recovered[name][observed], array[observed])
        assert not np.isnan(recovered[name]).any()


def test_forward_pass_accounting(fitted_multiview):
    """Check 6: encoders once per sample, modality and input version; at most (#candidates + 1)
    fusion passes per selection step; the accepted candidate's pass is reused, not recomputed."""
    clf, X, _ = fitted_multiview
    X_missing = apply_missing(X[:100], 0.67, random_state=3)
    network = clf.net_.module_
    n = 100
    n_missing = {name: int(np.isnan(X_missing[name]).reshape(n, -1).all(1).sum()) for name in clf.modalities_}

    for selection in ("all", "none"):
        network.pass_counts.clear()
        clf._run(X_missing, selection)
        assert network.pass_counts["fusion"] == n  # one fusion pass per sample

    network.pass_counts.clear()
    run = clf._run(X_missing, "dymo")
    counts = dict(network.pass_counts)
    for index, name in enumerate(clf.modalities_):
        # observed version for samples that have it + recovered version for samples missing it
        assert counts[f"encoder_{index}"] == (n - n_missing[name]) + n_missing[name]
    # one initial pass per sample, plus exactly one pass per evaluated candidate
    assert counts["fusion"] == n + run["evaluations"].sum()
    n_candidates = run["candidates"].sum(1)
    steps = run["evaluations"].max(1)
    # a sample with c candidates evaluates each at most once per step
    assert (run["evaluations"].sum(1) <= n_candidates * steps).all()
    assert (steps <= n_candidates).all()
