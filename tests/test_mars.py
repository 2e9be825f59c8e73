"""MARSClassifier: feature-router-only inference, no leakage, determinism, scikit-learn use."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SAMPLE_WEIGHT_EQUIVALENCE, tiny_mars
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from dymo_sklearn import MARSClassifier, MultimodalDict


@pytest.fixture(scope="module")
def fitted(image_table_data):
    X, y = image_table_data
    return tiny_mars(max_epochs=5).fit(X, y), X, y


EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": "float32 matrix products round differently with the batch size "
    "(differences ~1e-6 > the check's rtol 1e-7); batch independence is tested at atol 1e-5 below.",
    "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_EQUIVALENCE,
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
    saved_noise = module.noise_logit.detach().clone()
    with torch.no_grad():
        module.residual_router.weight.normal_(0, 100)
        module.residual_router.bias.normal_(0, 100)
        module.noise_logit.fill_(10.0)
    try:
        np.testing.assert_array_equal(clf.predict_proba(X_missing), before)
    finally:
        module.residual_router.load_state_dict(saved)
        with torch.no_grad():
            module.noise_logit.copy_(saved_noise)
    # Control: the same perturbation of the feature router does change predictions, so the
    # comparison above would see a router that inference depends on.
    saved = {k: v.clone() for k, v in module.feature_router.state_dict().items()}
    with torch.no_grad():
        module.feature_router.weight.normal_(0, 100)
        module.feature_router.bias.normal_(0, 100)
    try:
        assert np.abs(clf.predict_proba(X_missing) - before).max() > 1e-3
    finally:
        module.feature_router.load_state_dict(saved)
    np.testing.assert_array_equal(clf.predict_proba(X_missing), before)


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
        # control: with the image marked present, the same garbage does reach the output
        logits_c, _ = module.route(garbage, torch.ones_like(present))
        logits_d, _ = module.route(tokens, torch.ones_like(present))
    assert torch.equal(logits_a, logits_b) and torch.equal(gates_a, gates_b)
    assert (logits_c - logits_d).abs().max() > 1e-3


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
    np.testing.assert_array_equal(report["top_expert"], gates.argmax(1))
    np.testing.assert_array_equal(report["prediction"], clf.predict(X))
    # the pattern is what each sample observes, from the masks
    has_image = ~np.isnan(X["image"]).reshape(len(X["image"]), -1).all(1)
    has_table = ~np.isnan(X["table"]).all(1)
    expected = np.where(has_image & has_table, "image+table", np.where(has_image, "image", "table"))
    np.testing.assert_array_equal(report["pattern"], expected)
    # expert usage is the mean gate of each pattern's samples
    usage = clf.expert_usage(X)
    assert sorted(usage.index) == ["image", "image+table", "table"]
    for pattern in usage.index:
        np.testing.assert_allclose(usage.loc[pattern].to_numpy(), gates[expected == pattern].mean(0), rtol=1e-6)


def _training_step(clf, X, y):
    """One training-mode forward and backward on 64 samples; (outputs, loss), grads set."""
    module = clf.net_.module_.train()
    torch.manual_seed(0)
    try:
        outputs = module(**{name: torch.as_tensor(X[name][:64]) for name in clf.modalities_})
        loss = clf.net_.get_loss(outputs, torch.as_tensor(y[:64]))
        module.zero_grad(set_to_none=True)
        loss.backward()
    finally:
        module.eval()
    return outputs, loss


def _grad_norm(parameter):
    return 0.0 if parameter.grad is None else float(parameter.grad.abs().sum())


@pytest.fixture(scope="module")
def default_small(image_table_data):
    X, y = image_table_data
    return tiny_mars().fit(X, y)


@pytest.mark.parametrize("ablation", [dict(residual_router=False), dict(noise=False), dict(load_balance_weight=0.0)])
def test_ablations_train_and_predict(image_table_data, default_small, ablation):
    """Each ablation switch changes what is trained, in the way its name says."""
    X, y = image_table_data
    clf = tiny_mars(**ablation).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (400, 10) and not np.array_equal(proba, default_small.predict_proba(X))
    (full, partial, auxiliary), loss = _training_step(clf, X, y)
    (_, _, default_auxiliary), _ = _training_step(default_small, X, y)
    auxiliary = {name: float(value.detach()) for name, value in auxiliary.items()}
    default_auxiliary = {name: float(value.detach()) for name, value in default_auxiliary.items()}
    module, default_module = clf.net_.module_, default_small.net_.module_
    if "residual_router" in ablation:
        # no residual router: it gets no gradient and nothing is distilled from it
        assert _grad_norm(module.residual_router.weight) == 0.0 < _grad_norm(default_module.residual_router.weight)
        assert auxiliary["distillation"] == 0.0 < default_auxiliary["distillation"]
    if "noise" in ablation:
        # no routing noise: its scale gets no gradient and its regulariser is 0
        assert _grad_norm(module.noise_logit) == 0.0 < _grad_norm(default_module.noise_logit)
        assert auxiliary["noise"] == 0.0 < default_auxiliary["noise"]
    if "load_balance_weight" in ablation:
        # the load-balancing term is computed but weighted 0: the loss is the other terms exactly
        assert auxiliary["load_balance"] > 0
        target = torch.as_tensor(y[:64])
        expected = (float((F.cross_entropy(full, target) + F.cross_entropy(partial, target)).detach())
                    + auxiliary["distillation"] + 0.01 * auxiliary["noise"])
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)


def test_pipeline_cross_validation_and_grid_search(image_table_data, default_small):
    X, y = image_table_data
    # cross-validation scores are those of fits on folds cut by hand, modality by modality
    trained = dict(max_epochs=30, lr=1e-2)  # enough to be well above chance on 200 samples
    scores = cross_val_score(tiny_mars(**trained), X, y, cv=2)
    by_hand = []
    for train, test in StratifiedKFold(2).split(np.zeros(len(y)), y):
        fold = tiny_mars(**trained).fit({k: v[train] for k, v in X.items()}, y[train])
        by_hand.append(fold.score({k: v[test] for k, v in X.items()}, y[test]))
    np.testing.assert_allclose(scores, by_hand, rtol=0, atol=1e-12)
    assert scores.min() > 0.3  # well above chance (0.1): the folds kept modalities and labels aligned
    # a pipeline that passes the dict through predicts what the estimator alone predicts
    pipeline = make_pipeline(FunctionTransformer(lambda data: MultimodalDict(**data)), tiny_mars()).fit(X, y)
    np.testing.assert_array_equal(pipeline.predict_proba(X), default_small.predict_proba(X))
    # the searched parameter reaches the network: the refitted best model routes to top_k experts
    search = GridSearchCV(tiny_mars(max_epochs=2), {"top_k": [1, 2]}, cv=2).fit(X[:200], y[:200])
    best = search.best_estimator_
    gates = best.explain(X[:50])[[f"gate_{e}" for e in range(3)]].to_numpy()
    assert best.net_.module_.top_k == search.best_params_["top_k"]
    assert ((gates > 0).sum(1) == search.best_params_["top_k"]).all()


def test_expert_usage_plot_shows_the_gate_means(fitted):
    import matplotlib

    matplotlib.use("Agg")
    from dymo_sklearn.plotting import plot_expert_usage

    clf, X, _ = fitted
    usage = clf.expert_usage(X)
    ax = plot_expert_usage(usage)
    np.testing.assert_allclose(ax.images[0].get_array(), usage.to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == list(usage.index)


@pytest.mark.xfail(strict=True, reason=(
    "issue 14: the feature router barely imitates the residual router; on the procedural-background "
    "digits (since fca4482) both patterns go to the same experts. It passed on the photo backgrounds by luck."))
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
