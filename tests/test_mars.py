"""MARSClassifier: feature-router-only inference, no leakage, determinism, scikit-learn use."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    MINUS_ONE_IS_UNLABELED,
    SAMPLE_ORDER_ROUNDING,
    SAMPLE_WEIGHT_EQUIVALENCE,
    tiny_mars,
    tiny_research_mars,
)
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from dymo_sklearn import MultimodalDict
from dymo_sklearn._random import attach_generator, random_present_subset
from dymo_sklearn._training import SAMPLE_WEIGHT
from dymo_sklearn.nn.mars import MARSNetwork, router_gap


@pytest.fixture(scope="module")
def fitted(image_table_data):
    X, y = image_table_data
    return tiny_mars(max_epochs=5).fit(X, y), X, y


EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": "float32 matrix products round differently with the batch size "
    "(differences ~1e-6 > the check's rtol 1e-7); batch independence is tested at atol 1e-5 below.",
    "check_methods_sample_order_invariance": SAMPLE_ORDER_ROUNDING + "below.",
    "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_EQUIVALENCE,
    "check_classifiers_classes": MINUS_ONE_IS_UNLABELED,
}


@parametrize_with_checks([tiny_mars(max_epochs=30, lr=1e-2)], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_feature_router_alone_drives_inference(fitted):
    clf, X, _ = fitted
    X_missing = X  # 20 % of images and 20 % of tables are missing
    before = clf.predict_proba(X_missing)
    module = clf.net_.module_
    for router, should_change in ((module.residual_router, False), (module.feature_router, True)):
        saved = {k: v.clone() for k, v in router.state_dict().items()}
        with torch.no_grad():
            router.weight.normal_(0, 100, generator=torch.Generator().manual_seed(0))
            router.bias.normal_(0, 100, generator=torch.Generator().manual_seed(1))
        try:
            changed = np.abs(clf.predict_proba(X_missing) - before).max() > 1e-3
        finally:
            router.load_state_dict(saved)
        # the residual router (training only) must not matter; the feature router (the control,
        # showing the comparison sees a router inference depends on) must
        assert changed == should_change
    np.testing.assert_array_equal(clf.predict_proba(X_missing), before)


def test_absent_modality_content_cannot_leak(fitted):
    clf, X, _ = fitted
    module = clf.net_.module_.eval()
    batch = {name: torch.as_tensor(X[name][:40]) for name in clf.modalities_}
    with torch.no_grad():
        tokens, present = module.encode(batch)
        present[:, 0] = False
        garbage = tokens.clone()
        image_tokens = module.fusion.token_modality == 0
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
    order = np.random.default_rng(0).permutation(len(y))
    permuted = {name: values[order] for name, values in X.items()}
    np.testing.assert_allclose(first.predict_proba(permuted), second.predict_proba(X)[order], atol=1e-5)


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


def _training_step(clf, X, y, seed=0, **attributes):
    """One training-mode forward and backward on 64 samples with the module's random draws from
    ``seed`` and its ``attributes`` set for the step; (outputs, loss), grads set."""
    module = clf.net_.module_.train()
    saved = {name: getattr(module, name) for name in attributes}
    for name, value in attributes.items():
        setattr(module, name, value)
    attach_generator(module, torch.Generator().manual_seed(seed))
    try:
        # The paper's terms: the teachers' term needs the batch's teacher entries (tested apart).
        outputs = module(**{name: torch.as_tensor(X[name][:64]) for name in clf.modalities_})[:3]
        loss = clf.net_.get_loss(outputs, torch.as_tensor(y[:64]))
        module.zero_grad(set_to_none=True)
        loss.backward()
    finally:
        attach_generator(module, None)
        for name, value in saved.items():
            setattr(module, name, value)
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
    clf = tiny_research_mars(**ablation).fit(X, y)
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
        # no routing noise: the noise scale no longer reaches the routed output
        (_, loud, _), _ = _training_step(clf, X, y, noise_scale=1e4)
        torch.testing.assert_close(loud, partial, rtol=0, atol=0)
        (_, default_partial, _), _ = _training_step(default_small, X, y)
        (_, default_loud, _), _ = _training_step(default_small, X, y, noise_scale=1e4)
        assert (default_loud - default_partial).abs().max() > 1e-3
    if "load_balance_weight" in ablation:
        # the load-balancing term is computed but weighted 0: the loss is the other terms exactly
        assert auxiliary["load_balance"] > 0
        target = torch.as_tensor(y[:64])
        routed = target.repeat(len(partial) // len(target))  # the random sub-pattern and each modality alone
        expected = (float((F.cross_entropy(full, target) + F.cross_entropy(partial, routed)).detach())
                    + auxiliary["distillation"])
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)


def test_discrepancy_noise_is_per_sample_and_proportional_to_the_router_gap():
    module = MARSNetwork(["a"], [(3,)], ["vector"], n_classes=2, d_model=8, n_heads=2, n_layers=1,
                         n_experts=4, noise_scale=1.0)
    residual = torch.tensor([[2.0, 0.0, -1.0, 0.5], [2.0, 0.0, -1.0, 0.5], [1.0, 3.0, 0.0, -2.0]])
    feature = torch.tensor([[2.0, 0.0, -1.0, 0.5], [-3.0, 4.0, 0.0, 1.0], [1.0, 2.0, 0.0, -2.0]])

    def noise(scale):
        module.noise_scale, module.generator = scale, torch.Generator().manual_seed(0)
        return module.perturb(residual, feature) - residual

    one, three = noise(1.0), noise(3.0)
    # a sample whose routers agree is not perturbed, whatever the others' gaps (a batch-mean
    # scale would perturb it)
    assert torch.equal(one[0], torch.zeros(4)) and one[1].abs().min() > 0
    torch.testing.assert_close(three, 3 * one)
    # the standard deviation is proportional to each sample's own gap x logit spread
    draws = torch.randn(residual.shape, generator=torch.Generator().manual_seed(0))
    gap = router_gap(residual, feature)
    torch.testing.assert_close(one, draws * (gap * residual.std(1))[:, None])
    assert gap[1] > gap[2] > gap[0] == 0


def test_a_single_expert_trains(image_table_data):
    """One expert: the logit spread is 0, the noise must be 0 too (a sample std would be NaN)."""
    X, y = image_table_data
    clf = tiny_mars(n_experts=1, top_k=1, max_epochs=2).fit(X, y)
    assert np.isfinite(clf.net_.history[:, "train_loss"]).all()
    assert (clf.explain(X)["gate_0"] == 1.0).all()


def test_imitation_target_is_the_noise_free_residual_router(default_small, image_table_data):
    """Noise perturbs routing, never what the feature router is taught to imitate."""
    X, y = image_table_data
    (_, quiet_partial, quiet), _ = _training_step(default_small, X, y, noise_scale=0.0)
    (_, loud_partial, loud), _ = _training_step(default_small, X, y, noise_scale=1e4)
    assert (loud_partial - quiet_partial).abs().max() > 1e-3  # the noise did change the routing
    imitation = float(quiet["distillation"].detach())
    assert float(loud["distillation"].detach()) == pytest.approx(imitation, rel=1e-6) and imitation > 0


def test_routing_agreement_compares_the_two_routers_on_the_same_sub_patterns(image_table_data):
    X, y = image_table_data
    clf = tiny_mars().fit(X, y)
    module = clf.net_.module_
    d_model, n_modalities = 16, 2
    with torch.no_grad():
        # a residual router that ignores the residual and copies the feature router: full agreement
        module.residual_router.weight.zero_()
        module.residual_router.weight[:, d_model:] = module.feature_router.weight
        module.residual_router.bias.copy_(module.feature_router.bias)
    agreement = clf.routing_agreement(X)
    assert agreement["top1"] == agreement["top_k"] == 1.0 and agreement["n_samples"] == 400
    assert agreement["kl"] == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():  # opposite, sharper preferences: the top experts never coincide
        module.residual_router.weight.mul_(-50)
        module.residual_router.bias.mul_(-50)
    opposite = clf.routing_agreement(X)
    assert opposite["top1"] == 0.0 and opposite["kl"] > 0.1
    assert module.residual_router.weight.shape[1] == 2 * d_model + n_modalities
    # reproducible, and the caller's random streams untouched
    state = torch.random.get_rng_state()
    assert clf.routing_agreement(X, random_state=3) == clf.routing_agreement(X, random_state=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    # the sub-patterns are drawn once for all samples: the batch size does not change them
    by_batches = clf.set_params(predict_batch_size=7).routing_agreement(X, random_state=3)
    assert by_batches == pytest.approx(clf.set_params(predict_batch_size=1024).routing_agreement(X, random_state=3))
    for bad in (-1, True, 0.5):
        with pytest.raises(ValueError, match="random_state"):
            clf.routing_agreement(X, random_state=bad)
    with pytest.raises(ValueError, match="residual_router=False"):
        tiny_research_mars(max_epochs=1, residual_router=False).fit(X, y).routing_agreement(X)


def test_distillation_teaches_the_feature_router_to_imitate(image_table_data):
    """Held-out agreement is far higher with the imitation term than without it."""
    X, y = image_table_data
    train, test = np.arange(300), np.arange(300, 400)
    settings = dict(max_epochs=15, lr=3e-3)
    taught = tiny_mars(**settings).fit(X[train], y[train]).routing_agreement(X[test])
    untaught = tiny_research_mars(distillation_weight=0.0, **settings).fit(X[train], y[train]).routing_agreement(X[test])
    assert taught["kl"] < 0.5 * untaught["kl"], (taught, untaught)
    assert taught["top1"] > untaught["top1"] + 0.2, (taught, untaught)




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


def test_validation_loss_watches_observed_and_sub_pattern_inputs(fitted):
    """Early stopping's loss is the mean of the inference path's weighted cross-entropy on what
    each sample observes and on a random sub-pattern of it, both through the feature router."""
    clf, X, y = fitted
    net, module = clf.net_, clf.net_.module_
    inputs = {name: torch.as_tensor(X[name][:50]) for name in clf.modalities_}
    weights = torch.linspace(0.2, 1.8, 50)
    labels = torch.as_tensor(y[:50])
    net.validation_generator_ = torch.Generator().manual_seed(7)
    try:
        step = net.validation_step(({**inputs, SAMPLE_WEIGHT: weights}, labels))
    finally:
        net.validation_generator_ = None
    with torch.no_grad():
        tokens, present = module.encode(inputs)
        sub_pattern = random_present_subset(present, torch.Generator().manual_seed(7))
        assert not torch.equal(sub_pattern, present)

        def weighted_ce(pattern):
            losses = F.cross_entropy(module.route(tokens, pattern)[0], labels, reduction="none")
            return (weights * losses).sum() / weights.sum()

        expected = 0.5 * (weighted_ce(present) + weighted_ce(sub_pattern))
    assert float(step["loss"]) == pytest.approx(float(expected), rel=1e-5)
    torch.testing.assert_close(step["y_pred"], module.route(tokens, present)[0])


def test_early_stopping_reads_the_sub_pattern_validation_loss(image_table_data):
    X, y = image_table_data
    clf = tiny_mars(max_epochs=3, early_stopping=True).fit(X, y)
    history = clf.net_.history
    assert np.isfinite(history[:, "valid_loss"]).all() and len(history[:, "valid_acc_subsets"]) == 3
    # the sub-pattern accuracy is its own number, not a copy of the observed one
    assert history[:, "valid_acc_subsets"] != history[:, "valid_acc"]


def test_single_passes_route_every_modality_alone():
    """Catches single passes that fuse a modality a sample lacks, skip a modality, or lose the
    paper's random sub-pattern (which must stay the first pass)."""
    module = MARSNetwork(["a", "b", "c"], [(2,), (2,), (2,)], ["vector"] * 3, n_classes=2, d_model=8, n_heads=2,
                         n_layers=1, single_passes=True)
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    attach_generator(module, torch.Generator().manual_seed(0))
    patterns = module.partial_patterns(present).view(4, 3, 3)
    attach_generator(module, torch.Generator().manual_seed(0))
    torch.testing.assert_close(patterns[0], random_present_subset(present, module.generator))
    for index in range(3):
        alone = patterns[1 + index]
        expected = torch.zeros(3, 3, dtype=torch.bool)
        expected[:, index] = present[:, index]
        expected = torch.where(expected.any(1, keepdim=True), expected, present)
        assert torch.equal(alone, expected)
    assert not (patterns & ~present).any()


def test_single_passes_and_entry_dropout_train_every_pass(image_table_data):
    """Catches a loss that reads only the first routed pass (targets not repeated) or entry
    dropout that never reaches the encoders."""
    X, y = image_table_data
    clf = tiny_research_mars(single_passes=True, entry_dropout=0.5).fit(X, y)
    module = clf.net_.module_.train()
    attach_generator(module, torch.Generator().manual_seed(0))
    batch = {name: torch.as_tensor(X[name][:64]) for name in clf.modalities_}
    encoded = []
    original = module.encode
    module.encode = lambda inputs: encoded.append(inputs) or original(inputs)
    full, partial, _, passes = module(**batch)
    assert full.shape == (64, 10) and partial.shape == (3 * 64, 10)  # the random pass + 2 modalities alone
    present = torch.stack([~torch.isnan(encoded[0][name]).flatten(1).all(1) for name in clf.modalities_], 1)
    assert passes.shape == (4, 64, 2) and torch.equal(passes[0], present)  # the full pass, then the routed ones
    assert not (passes[1:] & ~present).any()
    observed = sum(int((~torch.isnan(batch[name])).sum()) for name in clf.modalities_)
    kept = sum(int((~torch.isnan(encoded[0][name])).sum()) for name in clf.modalities_)
    assert kept < 0.9 * observed  # U(0, 0.5) of the entries hidden: a quarter on average
    loss = clf.net_.get_loss((full, partial, {"distillation": torch.zeros(()), "load_balance": torch.zeros(())}),
                             torch.as_tensor(y[:64]), X=batch, training=True)
    target = torch.as_tensor(y[:64]).long()
    expected = F.cross_entropy(full, target) + F.cross_entropy(partial, target.repeat(3))
    torch.testing.assert_close(loss, expected)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_entry_dropout_that_empties_a_sample_trains():
    """Catches a crash when entry dropout hides the only entry a sample observes (the random
    sub-pattern then has nothing to keep)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    X = {"one": (rng.normal(size=(80, 1)) + y[:, None]).astype(np.float32),
         "two": (rng.normal(size=(80, 1)) + y[:, None]).astype(np.float32)}
    X["two"][::2] = np.nan  # half the samples observe one entry in all
    clf = tiny_research_mars(entry_dropout=0.9, single_passes=True, max_epochs=3).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_teachers_distil_the_full_and_routed_passes_of_tables(image_table_data, monkeypatch):
    """Catches MARS teachers that never reach the loss (the shipped model has them), teach the
    image, leave out the full pass or a routed one, or run when the weight is 0."""
    from dymo_sklearn import _mars
    from dymo_sklearn._teachers import TEACHER

    X, y = image_table_data
    seen = []
    original = _mars.distillation_loss

    def recording(logits, passes, batch, names, weights=None):
        seen.append((sorted(key for key in batch if key.startswith(TEACHER)), logits.shape, passes.shape))
        return original(logits, passes, batch, names, weights)

    monkeypatch.setattr(_mars, "distillation_loss", recording)
    tiny_research_mars(max_epochs=1, teacher_weight=0.0).fit(X, y)
    assert seen == []
    clf = tiny_mars(max_epochs=1).fit(X, y)  # the shipped model: teachers on by default
    assert seen and all(keys == [f"{TEACHER}table"] for keys, _, _ in seen)
    # everything observed, the random sub-pattern and each of the 2 modalities alone
    assert all(logits[:2] == passes[:2] and logits[0] == 4 and logits[2] == 10 for _, logits, passes in seen)
    assert np.isfinite(clf.net_.history[-1, "train_loss"])



def test_without_vector_modalities_mars_teachers_change_nothing():
    """Catches MARS teachers that alter training (e.g. consume random draws) where nothing is
    taught: on images alone a fit with teachers is the fit without them."""
    from dymo_sklearn.datasets import make_multiview_digits

    views, y = make_multiview_digits(2, n_samples=200, random_state=0)
    with_teachers = tiny_research_mars(max_epochs=2, teacher_weight=1.0).fit(views, y)
    without = tiny_research_mars(max_epochs=2, teacher_weight=0.0).fit(views, y)
    np.testing.assert_array_equal(with_teachers.predict_proba(views), without.predict_proba(views))
