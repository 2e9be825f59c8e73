"""Per-modality teachers (research option ``teacher_weight``): honest out-of-fold targets, the
product of a pass's teachers as its target, only vector modalities taught."""

import warnings

import numpy as np
import pytest
import torch

from dymo_sklearn import _base, _classifier
from dymo_sklearn._teachers import TEACHER, cross_fitted_teachers, distillation_loss
from dymo_sklearn.datasets import make_multiview_digits

from helpers import tiny_classifier, tiny_mars, tiny_research


def test_teacher_probabilities_are_out_of_fold():
    """Catches teachers fitted on the rows they teach: on labels that noise features cannot
    predict, an in-sample SVC (C = 10) memorises them, and its Platt scaling (fitted out of fold)
    turns that into all right or all wrong; out of fold the teacher stays near chance."""
    rng = np.random.default_rng(0)
    n = 120
    values = rng.normal(size=(n, 30)).astype(np.float32)
    y = rng.permutation(np.repeat([0, 1], n // 2))
    teachers = cross_fitted_teachers({"a": values}, ["a"], y, 2, seed=0)
    accuracy = np.mean(teachers[f"{TEACHER}a"].argmax(1) == y)
    assert abs(accuracy - 0.5) < 0.2, accuracy


def test_teachers_cover_observed_rows_only():
    """Catches a teacher that scores rows where its modality is missing (they must stay 0) or
    returns something other than per-row log-probabilities."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 30)
    values = (rng.normal(size=(90, 4)) + 2 * y[:, None]).astype(np.float32)
    values[::7] = np.nan
    values[1, 0] = np.nan  # partly observed: still taught
    out = cross_fitted_teachers({"a": values}, ["a"], y, 3, seed=0)[f"{TEACHER}a"]
    missing = np.zeros(90, bool)
    missing[::7] = True
    assert out.shape == (90, 3) and out.dtype == np.float32
    assert (out[missing] == 0).all()
    np.testing.assert_allclose(np.exp(out[~missing]).sum(1), 1, atol=1e-4)
    assert np.mean(out[~missing].argmax(1) == y[~missing]) > 0.9


def test_too_few_rows_of_a_class_trains_without_teachers():
    """Catches a crash (or a silent fold error) when a class is too small to cross-fit."""
    y = np.array([0] * 20 + [1] * 3)
    values = np.random.default_rng(2).normal(size=(23, 3))
    with pytest.warns(UserWarning, match="3 labeled rows"):
        assert cross_fitted_teachers({"a": values}, ["a"], y, 2, seed=0) == {}


def test_distillation_targets_are_the_product_of_the_passes_teachers():
    """Catches a target that is not the product of the fused modalities' teachers, or passes
    through an untaught modality that are taught anyway."""
    generator = torch.Generator().manual_seed(0)
    teacher = torch.log_softmax(torch.randn(4, 2, 3, generator=generator), dim=-1)  # (B, M=2 taught, K)
    X = {f"{TEACHER}a": teacher[:, 0], f"{TEACHER}b": teacher[:, 1]}
    names = ["a", "b", "image"]
    passes = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 1]], dtype=torch.bool)[:, None].expand(4, 4, 3)
    product = torch.einsum("abm,bmk->abk", passes[..., :2].float(), teacher)
    logits = product.clone()
    logits[3] = torch.randn(4, 3, generator=generator) * 5  # the pass with the untaught image
    assert distillation_loss(logits, passes, X, names).item() == pytest.approx(0, abs=1e-5)
    logits[2, 0] += torch.tensor([3.0, 0.0, -3.0])
    assert distillation_loss(logits, passes, X, names).item() > 0.01


def _record_taught(monkeypatch):
    """The teacher entries of every batch that reaches the distillation term, as the fit runs."""
    seen = []
    original = _classifier.distillation_loss

    def recording(logits, passes, batch, names, weights=None):
        seen.append(sorted(key for key in batch if key.startswith(TEACHER)))
        return original(logits, passes, batch, names, weights)

    monkeypatch.setattr(_classifier, "distillation_loss", recording)
    return seen


def test_only_vector_modalities_are_taught(image_table_data, monkeypatch):
    """Catches an image modality taught by a vector SVC, teachers computed when the weight is 0,
    or a fit that never reaches the distillation term."""
    X, y = image_table_data
    seen = _record_taught(monkeypatch)
    tiny_research(max_epochs=1, teacher_weight=0.0).fit(X, y)
    assert seen == []
    model = tiny_research(max_epochs=1, teacher_weight=1.0).fit(X, y)
    assert seen and all(keys == [f"{TEACHER}table"] for keys in seen)
    assert np.isfinite(model.net_.history[-1, "train_loss"])


def test_the_shipped_model_is_taught_and_the_research_defaults_match_it(image_table_data, monkeypatch):
    """Catches a DyMoClassifier that lost the benchmarked training (teachers on its tables, every
    modality fused alone), or research defaults that drifted from what it does."""
    X, y = image_table_data
    seen = _record_taught(monkeypatch)
    shipped = tiny_classifier(max_epochs=2).fit(X, y)
    assert seen and all(keys == [f"{TEACHER}table"] for keys in seen)
    assert shipped.net_.module_.single_passes
    research = tiny_research(max_epochs=2).fit(X, y)
    np.testing.assert_array_equal(shipped.predict_proba(X), research.predict_proba(X))


def test_unlabeled_rows_get_no_teacher(image_table_data, monkeypatch):
    """Catches teachers fitted or indexed on every row when some are unlabeled (-1): the targets
    must line up with the labeled rows the network trains on."""
    X, y = image_table_data
    y = y.copy()
    y[::4] = -1
    lengths, tables = [], []
    original = _base.cross_fitted_teachers

    def recording(arrays, taught, y_encoded, n_classes, seed, weights=None):
        out = original(arrays, taught, y_encoded, n_classes, seed, weights)
        lengths.append((len(y_encoded), *(len(v) for v in out.values())))
        tables.append(np.asarray(arrays["table"]))
        return out

    monkeypatch.setattr(_base, "cross_fitted_teachers", recording)
    tiny_research(max_epochs=1, teacher_weight=1.0).fit(X, y)
    n_labeled = int((y != -1).sum())
    assert lengths == [(n_labeled, n_labeled)]
    # the rows the teachers learn from are the labeled ones, in the labels' order
    np.testing.assert_array_equal(tables[0], np.asarray(X["table"])[y != -1])


def test_without_vector_modalities_teachers_change_nothing():
    """Catches teachers that alter training (e.g. consume random draws) where nothing is taught:
    on images alone the candidate trains exactly as without them."""
    views, y = make_multiview_digits(2, n_samples=200, random_state=0)
    with_teachers = tiny_research(max_epochs=2, teacher_weight=1.0).fit(views, y)
    without = tiny_research(max_epochs=2, teacher_weight=0.0).fit(views, y)
    np.testing.assert_array_equal(with_teachers.predict_proba(views), without.predict_proba(views))


def test_teachers_of_large_tables_learn_from_a_bounded_sample(monkeypatch):
    """Catches teachers fitted on every training row of a large table (an RBF SVC's cost grows
    with the square of its rows) or a crash when a rare class misses a fold's sample."""
    from dymo_sklearn import _teachers

    sizes = []
    original = _teachers.teacher_model

    def recording(seed):
        model = original(seed)
        fit = model.fit
        model.fit = lambda X, y, **params: sizes.append(len(X)) or fit(X, y, **params)
        return model

    monkeypatch.setattr(_teachers, "teacher_model", recording)
    monkeypatch.setattr(_teachers, "MAX_TEACHER_ROWS", 60)
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], [140, 140, 6])
    values = (rng.normal(size=(len(y), 3)) + 2 * y[:, None]).astype(np.float32)
    out = cross_fitted_teachers({"a": values}, ["a"], y, 3, seed=0)[f"{TEACHER}a"]
    assert len(sizes) == 5 and max(sizes) <= 68  # 60 in proportion (rounded up), the rare class topped up to 5
    np.testing.assert_allclose(np.exp(out).sum(1), 1, atol=1e-4)
    assert np.mean(out.argmax(1) == y) > 0.9


def test_teacher_fusion_multiplies_the_observed_vector_modalities_teachers(image_table_data, tmp_path):
    """Catches a fusion that adds the teacher of a missing table, touches samples without one,
    uses teachers fitted out of fold, or is lost when the model is saved and loaded."""
    from scipy.special import log_softmax

    from dymo_sklearn import load

    X, y = image_table_data
    model = tiny_research(max_epochs=2, teacher_fusion=True).fit(X, y)
    assert sorted(model.teachers_) == ["table"]  # the image gets no teacher
    raw = log_softmax(tiny_research(max_epochs=2).fit(X, y).decision_function(X), axis=1)
    table = np.asarray(X["table"])
    observed = ~np.isnan(table).all(axis=1)
    expected = raw.copy()
    expected[observed] += np.log(np.clip(model.teachers_["table"].predict_proba(table[observed]), 1e-6, None))
    np.testing.assert_allclose(model.decision_function(X), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.predict(X), model.classes_[expected.argmax(1)])
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "teachers.skops").is_file()
    np.testing.assert_allclose(load(tmp_path / "model").predict_proba(X), model.predict_proba(X), atol=1e-6)
    refit = model.set_params(teacher_fusion=False).fit(X, y)
    assert refit.teachers_ == {}  # a refit without fusion keeps no stale teachers


def test_an_emptied_pass_is_not_distilled_towards_a_uniform_target():
    """Catches a pass with no modality (entry dropout hid everything) counted as covered: its
    target would be the uniform distribution."""
    teacher = torch.log_softmax(torch.tensor([[4.0, 0.0], [0.0, 4.0]]), dim=-1)
    X = {f"{TEACHER}a": teacher}
    passes = torch.tensor([[[True], [False]]])  # sample 1 fused nothing
    logits = teacher[None].clone()
    logits[0, 1] = torch.tensor([0.0, 9.0])  # far from uniform
    assert distillation_loss(logits, passes, X, ["a"]).item() == pytest.approx(0, abs=1e-5)


def test_teachers_learn_only_from_rows_of_positive_weight():
    """Catches a zero-weight class counted as present (the SVC then fails inside scikit-learn),
    or the weights dropped from the teachers' fits."""
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1, 2], 40)
    values = (rng.normal(size=(120, 3)) + 2 * y[:, None]).astype(np.float32)
    weights = np.where(y == 2, 0.0, 1.0).astype(np.float32)
    with pytest.warns(UserWarning, match="positive weight"):
        assert cross_fitted_teachers({"a": values}, ["a"], y, 3, seed=0, weights=weights) == {}
    noisy = y.copy()
    noisy[:20] = 1  # half of class 0 relabelled 1, with weight 0: the teacher must not learn it
    weights = np.where(np.arange(120) < 20, 0.0, 1.0).astype(np.float32)
    out = cross_fitted_teachers({"a": values}, ["a"], noisy, 3, seed=0, weights=weights)[f"{TEACHER}a"]
    assert (out[:20] == 0).all()  # rows of zero weight are not taught
    assert np.mean(out[20:40].argmax(1) == 0) > 0.9


def test_a_modality_too_rare_for_a_teacher_is_named():
    """Catches a modality left untaught without a word."""
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 30)
    rare = rng.normal(size=(60, 2))
    rare[(y == 1) & (np.arange(60) > 32)] = np.nan  # class 1 observed in 3 rows
    with pytest.warns(UserWarning, match="'rare'"):
        out = cross_fitted_teachers({"rare": rare, "b": rng.normal(size=(60, 2))}, ["rare", "b"], y, 2, seed=0)
    assert list(out) == [f"{TEACHER}b"]


@pytest.mark.parametrize("make", [tiny_classifier, tiny_mars], ids=["DyMo", "MARS"])
def test_teacher_warnings_point_at_the_callers_fit(make):
    """Catches a warning attributed to a line inside the package (or above the caller): each
    estimator reaches the teachers through its own depth of calls."""
    rng = np.random.default_rng(6)
    y = np.repeat([0, 1, 2], [30, 30, 3])
    X = {"a": (rng.normal(size=(63, 3)) + y[:, None]).astype(np.float32)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make(max_epochs=1).fit(X, y)
    found = [w.filename for w in caught if "per-modality teachers need" in str(w.message)]
    assert found == [__file__], found
