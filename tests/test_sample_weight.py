"""fit(sample_weight=...) and class_weight: each weighs what it claims to, with a visible effect."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.metrics import recall_score

from dymo_sklearn import DyMoClassifier, MARSClassifier
from dymo_sklearn._prototypes import fit_subset_statistics
from dymo_sklearn._classifier import PrototypeTracker
from dymo_sklearn._training import SAMPLE_WEIGHT

from helpers import tiny_classifier, tiny_mars

ESTIMATORS = {"dymo": lambda **p: tiny_classifier(**{"max_epochs": 25, "lr": 3e-3, **p}),
              "mars": lambda **p: tiny_mars(**{"max_epochs": 25, "lr": 3e-3, **p})}


def _two_views(n_samples=800, weights=None, class_sep=1.0, seed=0):
    X, y = make_classification(n_samples=n_samples, n_features=8, n_informative=6, n_redundant=0, n_classes=2,
                               weights=weights, class_sep=class_sep, flip_y=0.0, random_state=seed)
    X = X.astype(np.float32)
    return {"a": X[:, :4], "b": X[:, 4:]}, y


def _rows(X, rows):
    return {name: array[rows] for name, array in X.items()}


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_zero_weight_removes_the_influence_of_corrupted_labels(kind):
    """Relabel 60 % of class 0 as class 1: unweighted, class 0 is mostly lost; with weight 0 on
    the relabelled samples the model learns class 0 as if they were absent."""
    X, y = _two_views(seed=1)
    train, test = np.arange(600), np.arange(600, 800)
    y_train = y[train].copy()
    rng = np.random.default_rng(0)
    corrupted = (y_train == 0) & (rng.random(len(y_train)) < 0.6)
    y_train[corrupted] = 1
    weights = np.where(corrupted, 0.0, 1.0)
    plain = ESTIMATORS[kind]().fit(_rows(X, train), y_train)
    weighted = ESTIMATORS[kind]().fit(_rows(X, train), y_train, sample_weight=weights)
    recall_plain = recall_score(y[test], plain.predict(_rows(X, test)), pos_label=0)
    recall_weighted = recall_score(y[test], weighted.predict(_rows(X, test)), pos_label=0)
    assert recall_weighted > recall_plain + 0.2, (recall_plain, recall_weighted)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_only_relative_weights_matter(kind):
    X, y = _two_views(n_samples=300)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    one = ESTIMATORS[kind](max_epochs=3).fit(X, y, sample_weight=weights).predict_proba(X)
    scaled = ESTIMATORS[kind](max_epochs=3).fit(X, y, sample_weight=7.0 * weights).predict_proba(X)
    np.testing.assert_allclose(scaled, one, atol=1e-5)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_unit_weights_train_the_unweighted_model(kind):
    X, y = _two_views(n_samples=300)
    plain = ESTIMATORS[kind](max_epochs=3).fit(X, y).predict_proba(X)
    ones = ESTIMATORS[kind](max_epochs=3).fit(X, y, sample_weight=np.ones(len(y))).predict_proba(X)
    np.testing.assert_allclose(ones, plain, atol=1e-5)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_balanced_class_weight_raises_minority_recall(kind):
    X, y = _two_views(n_samples=1000, weights=[0.92], class_sep=0.5, seed=3)
    train, test = np.arange(700), np.arange(700, 1000)
    plain = ESTIMATORS[kind]().fit(_rows(X, train), y[train])
    balanced = ESTIMATORS[kind](class_weight="balanced").fit(_rows(X, train), y[train])
    minority_plain = recall_score(y[test], plain.predict(_rows(X, test)), pos_label=1)
    minority_balanced = recall_score(y[test], balanced.predict(_rows(X, test)), pos_label=1)
    assert minority_balanced > minority_plain + 0.1, (minority_plain, minority_balanced)


def test_class_weight_dict_is_keyed_by_label_and_multiplies_sample_weight():
    X, y = _two_views(n_samples=300)
    labels = np.where(y == 1, "yes", "no")
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    by_class = tiny_classifier(class_weight={"yes": 3.0}).fit(X, labels, sample_weight=sample_weight)
    by_sample = tiny_classifier().fit(X, labels, sample_weight=sample_weight * np.where(y == 1, 3.0, 1.0))
    np.testing.assert_array_equal(by_class.predict_proba(X), by_sample.predict_proba(X))
    np.testing.assert_array_equal(by_class.subset_prototypes_, by_sample.subset_prototypes_)


@pytest.mark.parametrize("sample_weight, class_weight, message", [
    (-np.ones(300), None, "Negative values"),
    (np.ones(299), None, "300"),
    (np.zeros(300), None, "non-zero"),
    (np.full(300, np.nan), None, "NaN"),
    (None, {"maybe": 2.0}, r"labels \['maybe'\]"),
    (None, {"yes": 0.0, "no": 0.0}, "zero for every sample"),
    (None, {"yes": -1.0, "no": 5.0}, "class_weight must be non-negative"),
], ids=["negative", "length", "all zero", "nan", "unknown label", "zero class weights", "negative class weight"])
def test_bad_weights_are_refused_by_name(sample_weight, class_weight, message):
    X, y = _two_views(n_samples=300)
    labels = np.where(y == 1, "yes", "no")
    with pytest.raises(ValueError, match=message):
        tiny_classifier(class_weight=class_weight).fit(X, labels, sample_weight=sample_weight)


@pytest.mark.parametrize("sample_weight", [np.full(300, "1.0"), ["2"] * 300, np.full(300, None)],
                         ids=["numpy strings", "list of strings", "objects"])
def test_weights_written_as_strings_are_refused(sample_weight):
    """Catches weights parsed from strings silently, as the labels and features never are."""
    X, y = _two_views(n_samples=300)
    with pytest.raises(TypeError, match="sample_weight must hold numbers"):
        tiny_classifier().fit(X, y, sample_weight=sample_weight)


def test_subset_statistics_weigh_each_sample():
    """Weight 0 equals leaving the sample out; weight 2 equals taking it twice (no SGD here). Not
    next to MIN_CELL_SAMPLES: there a cell counts its samples, and duplicates count twice."""
    X, y = _two_views(n_samples=120)
    X["b"][:30] = np.nan  # several subsets, some rows present in fewer of them
    clf = tiny_classifier().fit(X, y)
    network = clf.net_.module_.eval()
    codes = clf.subset_codes_
    with torch.no_grad():
        tokens, present = network.encode({name: torch.as_tensor(a) for name, a in X.items()})
    labels = torch.as_tensor(y)

    def statistics(rows, weights=None):
        rows = torch.as_tensor(rows)
        batch = (tokens[rows], present[rows], labels[rows], None if weights is None else torch.as_tensor(weights))
        return fit_subset_statistics(network, lambda: iter([batch]), 2, codes, "cosine")

    rng = np.random.default_rng(0)
    weights = rng.integers(0, 3, len(y)).astype(np.float64)  # 0, 1 or 2
    weighted = statistics(np.arange(len(y)), weights)
    repeated = statistics(np.repeat(np.arange(len(y)), weights.astype(int)))
    np.testing.assert_allclose(weighted.subset_prototypes, repeated.subset_prototypes, atol=1e-6)
    np.testing.assert_allclose(weighted.sigma, repeated.sigma, atol=1e-6)


def test_prototype_tracker_takes_weighted_class_means():
    class Net:
        class module_:
            prototypes = torch.zeros(2, 2)
            aux_active = False
        history = []

    tracker = PrototypeTracker(n_classes=2, distance="sqeuclidean", warmup=5).initialize()
    tracker.on_epoch_begin(Net)
    z = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]]])  # one pass, three samples
    batch = ({SAMPLE_WEIGHT: torch.tensor([3.0, 1.0, 0.5])}, torch.tensor([0, 0, 1]))
    tracker.on_batch_end(Net, batch=batch, training=True, y_pred=(torch.zeros(1, 3, 2), z))
    tracker.on_epoch_end(Net)
    np.testing.assert_allclose(Net.module_.prototypes.numpy(), [[1.5, 0.0], [0.0, 2.0]])


def test_class_weight_survives_save_and_load(tmp_path):
    X, y = _two_views(n_samples=200)
    clf = tiny_classifier(class_weight={0: 1.0, 1: 4.0}).fit(X, y)
    clf.save(tmp_path / "model")
    loaded = DyMoClassifier.load(tmp_path / "model")
    assert loaded.get_params()["class_weight"] == {0: 1.0, 1: 4.0}
    assert all(type(label) is int for label in loaded.class_weight)


def test_weights_route_through_a_pipeline():
    from sklearn.pipeline import make_pipeline

    from dymo_sklearn import ModalityTransformer

    X, y = _two_views(n_samples=300)
    corrupted = np.zeros(len(y), bool)
    corrupted[:150] = True
    weights = np.where(corrupted, 0.0, 1.0)
    pipeline = make_pipeline(ModalityTransformer({}, remainder="passthrough"), MARSClassifier(**{
        "d_model": 16, "n_heads": 2, "n_layers": 1, "n_experts": 2, "expert_hidden": 8, "max_epochs": 2,
        "random_state": 0, "device": "cpu"}))
    direct = pipeline[-1].__class__(**pipeline[-1].get_params()).fit(X, y, sample_weight=weights).predict_proba(X)
    unweighted = pipeline[-1].__class__(**pipeline[-1].get_params()).fit(X, y).predict_proba(X)
    routed = pipeline.fit(X, y, marsclassifier__sample_weight=weights).predict_proba(X)
    np.testing.assert_array_equal(routed, direct)
    assert np.abs(routed - unweighted).max() > 1e-3  # the weights were used, not dropped on the way
