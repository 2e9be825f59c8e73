"""MARSClassifier: feature-router-only inference, no leakage, determinism, scikit-learn use."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from dymo_sklearn import MARSClassifier, MultimodalDict

TINY = dict(d_model=16, n_heads=2, n_layers=1, n_experts=3, top_k=2, expert_hidden=16, max_epochs=3,
            batch_size=64, random_state=0, device="cpu")


def tiny_mars(**params):
    return MARSClassifier(**{**TINY, **params})


@pytest.fixture(scope="module")
def fitted(image_table_data):
    X, y = image_table_data
    return tiny_mars(max_epochs=5).fit(X, y), X, y


EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": "float32 matrix products round differently with the batch size "
    "(differences ~1e-6 > the check's rtol 1e-7); batch independence is tested at atol 1e-5 below.",
}


@parametrize_with_checks([tiny_mars(max_epochs=30, lr=1e-2)], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_feature_router_alone_drives_inference(fitted):
    clf, X, _ = fitted
    X_missing = X  # 20 % of images and 20 % of tables are missing
    before = clf.predict_proba(X_missing)
    module = clf.net_.module_
    saved = {k: v.clone() for k, v in module.residual_router.state_dict().items()}
    with torch.no_grad():
        module.residual_router.weight.normal_(0, 100)
        module.residual_router.bias.normal_(0, 100)
        module.noise_logit.fill_(10.0)
    try:
        np.testing.assert_array_equal(clf.predict_proba(X_missing), before)
    finally:
        module.residual_router.load_state_dict(saved)


def test_absent_modality_content_cannot_leak(fitted):
    clf, X, _ = fitted
    module = clf.net_.module_.eval()
    batch = {name: torch.as_tensor(X[name][:40]) for name in clf.modalities_}
    with torch.no_grad():
        tokens, present = module.encode(batch)
        present[:, 0] = False
        garbage = tokens.clone()
        image_tokens = module.backbone.fusion.token_modality == 0
        garbage[:, image_tokens] = torch.randn_like(garbage[:, image_tokens]) * 1e3
        logits_a, gates_a = module.route(tokens, present)
        logits_b, gates_b = module.route(garbage, present)
    assert torch.equal(logits_a, logits_b) and torch.equal(gates_a, gates_b)


def test_same_seed_same_model_and_batch_independence(image_table_data):
    X, y = image_table_data
    first = tiny_mars(random_state=5).fit(X, y)
    second = tiny_mars(random_state=5).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    small_batches = first.set_params(predict_batch_size=7).predict_proba(X)
    np.testing.assert_allclose(small_batches, second.predict_proba(X), atol=1e-5)


def test_explain_reports_top_k_gates_per_pattern(fitted):
    clf, X, _ = fitted
    report = clf.explain(X)
    gates = report[[f"gate_{e}" for e in range(3)]].to_numpy()
    np.testing.assert_allclose(gates.sum(1), 1.0, rtol=1e-5)
    assert ((gates > 0).sum(1) == 2).all()
    usage = clf.expert_usage(X)
    assert set(usage.index) == set(report["pattern"]) and usage.shape[1] == 3


@pytest.mark.parametrize("ablation", [dict(residual_router=False), dict(noise=False), dict(load_balance_weight=0.0)])
def test_ablations_train_and_predict(image_table_data, ablation):
    X, y = image_table_data
    assert tiny_mars(**ablation).fit(X, y).predict(X).shape == (400,)


def test_pipeline_cross_validation_and_grid_search(image_table_data):
    X, y = image_table_data
    assert cross_val_score(tiny_mars(), X, y, cv=2).shape == (2,)
    pipeline = make_pipeline(FunctionTransformer(lambda data: MultimodalDict(**data)), tiny_mars()).fit(X, y)
    assert pipeline.predict(X).shape == (400,)
    search = GridSearchCV(tiny_mars(max_epochs=2), {"top_k": [1, 2]}, cv=2).fit(X[:200], y[:200])
    assert search.best_params_["top_k"] in (1, 2)


def test_expert_usage_plot_shows_the_gate_means(fitted):
    import matplotlib

    matplotlib.use("Agg")
    from dymo_sklearn.plotting import plot_expert_usage

    clf, X, _ = fitted
    usage = clf.expert_usage(X)
    ax = plot_expert_usage(usage)
    np.testing.assert_allclose(ax.images[0].get_array(), usage.to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == list(usage.index)


@pytest.mark.parametrize("seed", [0, 1])
def test_routing_separates_missing_patterns(seed):
    """Samples that miss different modalities are routed to different experts (top-1 usage
    differs by more than half its mass): routing follows the missing pattern."""
    from dymo_sklearn.datasets import make_multiview_digits

    X, y = make_multiview_digits(2, n_samples=600, background=0.5, random_state=seed)
    clf = MARSClassifier(d_model=32, n_heads=2, n_layers=1, n_experts=4, top_k=1, expert_hidden=32,
                         max_epochs=15, lr=3e-3, early_stopping=False, random_state=seed, device="cpu").fit(X, y)
    only_first = MultimodalDict(m0=X["m0"], m1=np.full_like(X["m1"], np.nan))
    only_second = MultimodalDict(m0=np.full_like(X["m0"], np.nan), m1=X["m1"])
    usage_first = clf.expert_usage(only_first).to_numpy()[0]
    usage_second = clf.expert_usage(only_second).to_numpy()[0]
    assert np.abs(usage_first - usage_second).sum() > 0.5, (usage_first, usage_second)
