"""scikit-learn integration: the estimator checks on 2-D input and dict-input twins."""

import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import logsumexp, softmax
from scipy.stats import norm
from sklearn.base import clone, is_classifier
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.model_selection import StratifiedKFold, GridSearchCV, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from dymo_sklearn import DyMoClassifier, MultimodalDict
from dymo_sklearn.datasets import apply_missing, make_multiview_digits
from dymo_sklearn.recovery import recover

from helpers import SAMPLE_ORDER_ROUNDING, SAMPLE_WEIGHT_EQUIVALENCE, tiny_classifier, tiny_research

# Every other check passes on the 2-D path.
EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": "float32 matrix products round differently with the batch size "
                                       "(differences ~2e-7 > the check's rtol 1e-7); batch independence is "
                                       "tested at atol 1e-5 in test_faithfulness.py.",
    "check_methods_sample_order_invariance": SAMPLE_ORDER_ROUNDING + "in test_faithfulness.py.",
    "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_EQUIVALENCE,
}


def _checked_estimator():
    # On CUDA, batch composition moves probabilities by float rounding, beyond the rtol=1e-7 of
    # check_methods_subset_invariance; our own tests check that on every device at atol=1e-5.
    return tiny_classifier(max_epochs=30, d_model=16, lr=1e-2, device="cpu")


@parametrize_with_checks([_checked_estimator()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_is_a_classifier_for_stratified_cv():
    assert is_classifier(DyMoClassifier())


def test_dict_and_2d_paths_agree_on_a_table():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    from_array = tiny_classifier().fit(X, y).predict_proba(X)
    from_dict = tiny_classifier().fit({"x": X}, y).predict_proba({"x": X})
    np.testing.assert_allclose(from_array, from_dict, atol=1e-6)


def test_dataframe_with_column_groups_uses_names():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 4)), columns=["a", "b", "c", "d"])
    y = (frame["a"] + frame["c"] > 0).astype(int)
    clf = tiny_classifier(column_groups={"left": ["a", "b"], "right": ["c", "d"]}).fit(frame, y)
    assert clf.modalities_ == ["left", "right"]
    before = clf.predict_proba(frame)
    frame.loc[:10, ["c", "d"]] = np.nan  # rows 0-10 lose the "right" modality
    after = clf.predict_proba(frame)
    np.testing.assert_array_equal(after[11:], before[11:])
    assert not np.allclose(after[:11], before[:11])


@pytest.mark.parametrize(
    "recoverer", [IterativeImputer(max_iter=2, n_nearest_features=8), KNNImputer(n_neighbors=3), SimpleImputer()],
    ids=["iterative", "knn", "simple"],
)
def test_usage_from_the_issue_with_each_imputer(image_table_data, recoverer):
    X, y = image_table_data
    clf = tiny_classifier(recoverer=recoverer).fit(X[:300], y[:300])
    assert isinstance(clf.recoverer_, type(recoverer)) and clf.recoverer_ is not recoverer
    proba = clf.predict_proba(X[300:])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X[300:]), clf.classes_[proba.argmax(1)])
    assert clf.score(X[300:], y[300:]) == np.mean(clf.predict(X[300:]) == y[300:])
    has_table = ~np.isnan(X["table"][300:]).all(1)
    only_table = {"table": X["table"][300:][has_table]}  # the image modality is absent for all
    assert set(clf.predict(only_table)) <= set(clf.classes_)


def test_clone_and_pickle_round_trip(image_table_data, tmp_path):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    unfitted = clone(clf)
    assert not hasattr(unfitted, "net_") and unfitted.get_params()["d_model"] == clf.d_model
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    joblib.dump(clf, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X), expected)


def test_same_seed_same_model(image_table_data):
    """Bit-identical on the CPU (CUDA kernels may reorder float sums; see docs)."""
    X, y = image_table_data
    first = tiny_classifier(random_state=3, device="cpu").fit(X, y).predict_proba(X)
    second = tiny_classifier(random_state=3, device="cpu").fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = tiny_classifier(random_state=4, device="cpu").fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_subset_invariance_on_dict_input(image_table_data):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    full = clf.predict_proba(X)
    rows = np.arange(0, 400, 3)
    np.testing.assert_allclose(clf.predict_proba(X[rows]), full[rows], atol=1e-5)


def test_pipeline_with_dict_input(image_table_data):
    X, y = image_table_data
    scale = FunctionTransformer(lambda data: MultimodalDict(**{k: v * 1.0 for k, v in data.items()}))
    pipeline = make_pipeline(scale, tiny_classifier()).fit(X, y)
    np.testing.assert_array_equal(pipeline.predict_proba(X), tiny_classifier().fit(X, y).predict_proba(X))


def test_cross_val_score_and_predict_proba(image_table_data):
    X, y = image_table_data
    scores = cross_val_score(tiny_classifier(), X, y, cv=3)
    # the folds scikit-learn cuts for a classifier (stratified), fitted and scored by hand
    by_hand = [tiny_classifier().fit(X[train], y[train]).score(X[test], y[test])
               for train, test in StratifiedKFold(3).split(np.zeros(len(y)), y)]
    np.testing.assert_array_equal(scores, by_hand)
    proba = cross_val_predict(tiny_classifier(), X, y, cv=3, method="predict_proba")
    assert proba.shape == (400, 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_grid_search_in_parallel(image_table_data):
    X, y = image_table_data
    search = GridSearchCV(
        tiny_classifier(max_epochs=2),
        {"temperature": [0.05, 0.1], "recoverer__strategy": ["mean", "median"]},
        cv=2, n_jobs=2,
    ).fit(X[:200], y[:200])
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.recoverer_.strategy in ("mean", "median")


def test_selection_modes_after_fit(image_table_data):
    X, y = image_table_data
    clf = tiny_research().fit(X, y)
    for mode in ("dymo", "iterative", "simultaneous", "all", "none"):
        assert clf.set_params(selection=mode).predict(X).shape == (400,)
    report = clf.set_params(selection="dymo").explain(X[:50])
    assert {"observed", "candidates", "selected", "reward_image", "step_table", "prediction"} <= set(report)
    missing_image = np.isnan(X["image"][:50]).reshape(50, -1).all(1)
    assert all(("image" in c) == m for c, m in zip(report["candidates"], missing_image))
    assert report.loc[~missing_image & ~np.isnan(X["table"][:50]).any(1), "reward_image"].isna().all()
    assert all(set(s) <= set(c) for s, c in zip(report["selected"], report["candidates"]))


# ----------------------------------------------------------------------------------------------
# What each selection mode does, on a small 3-view model: every test sample misses two views
# (two candidates) and every 4th one also misses a row of pixels of the view it has (three).


@pytest.fixture(scope="module")
def three_views():
    """A fitted 3-view model (KNN recovery, so recovered views carry class information and some
    are accepted, some not) and 200 incomplete test samples."""
    X, y = make_multiview_digits(3, n_samples=900, background=1.0, random_state=1)
    clf = tiny_research(recoverer=KNNImputer(n_neighbors=5), max_epochs=10, d_model=32, device="cpu")
    clf.fit(X[:700], y[:700])
    X_missing = apply_missing(X[700:], 0.67, random_state=3)
    for array in X_missing.values():
        rows = np.arange(0, 200, 4)
        rows = rows[~np.isnan(array[rows]).reshape(len(rows), -1).all(1)]
        array[rows, 0, 0, :] = np.nan
    return clf, X_missing


def _with(clf, **params):
    """A copy of the fitted model with other predict-time parameters."""
    return copy.deepcopy(clf).set_params(**params)


def _garbage_recoverer(clf, X):
    """A fitted imputer that writes 123 into every missing entry."""
    flat = np.concatenate([X[name].reshape(len(X[name]), -1) for name in clf.modalities_], axis=1)
    return SimpleImputer(strategy="constant", fill_value=123.0, keep_empty_features=True).fit(flat)


class _Reference:
    """An independent implementation of the selection rules, sample by sample in float64.

    It encodes both versions of every modality itself, fuses every state it needs afresh with the
    network's fusion transformer (checked by other tests), and computes confidences, ICS, rewards
    and acceptance from the fitted prototypes and statistics, with cosine distance. Samples where some reward or the gap
    between the two best rewards is within ``tol`` of a decision are flagged ambiguous: float32
    rounding may decide them either way."""

    def __init__(self, clf, X, tol=1e-4):
        assert clf.distance == "cosine"
        self.clf, self.tol = clf, tol
        self.network = network = clf.net_.module_.eval()
        recovered = recover(clf.recoverer_, {name: X[name] for name in clf.modalities_})
        observed_tokens, recovered_tokens, present, candidates = [], [], [], []
        with torch.inference_mode():
            for index, name in enumerate(clf.modalities_):
                values = torch.as_tensor(X[name], dtype=torch.float32)
                observed = ~torch.isnan(values)
                observed_tokens.append(network.encode_modality(index, torch.nan_to_num(values), observed))
                filled = torch.as_tensor(recovered[name], dtype=torch.float32)
                tokens = network.encode_modality(index, filled, torch.ones_like(observed))
                if network.recovered_embedding is not None:  # recovery-aware training marks recovered tokens
                    tokens = tokens + network.recovered_embedding[index]
                recovered_tokens.append(tokens)
                present.append(observed.flatten(1).any(1))
                candidates.append(~observed.flatten(1).all(1))
        self.tokens_observed = torch.cat(observed_tokens, dim=1)
        self.tokens_recovered = torch.cat(recovered_tokens, dim=1)
        self.present = torch.stack(present, dim=1).numpy()
        self.candidates = torch.stack(candidates, dim=1).numpy()
        self.n, self.m = self.candidates.shape

    @staticmethod
    def _unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def logits(self, taken):
        """Logits of every sample fused with its observed modalities plus the ``taken`` ones."""
        with torch.inference_mode():
            return self.network.heads(self._hidden(taken))[0].numpy()

    def _hidden(self, taken):
        """Fused [CLS] of each sample's observed modalities plus its ``taken`` recovered ones."""
        taken = torch.as_tensor(taken)
        with torch.inference_mode():
            use_recovered = taken[:, self.network.fusion.token_modality][..., None]
            tokens = torch.where(use_recovered, self.tokens_recovered, self.tokens_observed)
            return self.network.fuse(tokens, torch.as_tensor(self.present) | taken)

    def scores(self, taken):
        """log S = log max_k p(k|z) and log g = log ICS of the predicted class, per sample."""
        clf = self.clf
        with torch.inference_mode():
            z = self._unit(self.network.heads(self._hidden(taken))[1].double().numpy())
        d = np.maximum(1.0 - z @ self._unit(clf.prototypes_.astype(np.float64)).T, 0.0)  # cosine, (n, K)
        log_p = -d / clf.temperature - logsumexp(-d / clf.temperature, axis=1, keepdims=True)
        k = log_p.argmax(1)
        codes = ((self.present | taken) * (1 << np.arange(self.m))).sum(1)
        row = np.array([np.flatnonzero(clf.subset_codes_ == c)[0] if c in clf.subset_codes_ else len(clf.subset_codes_)
                        for c in codes])
        d_own = np.maximum(1.0 - (z * self._unit(clf.subset_prototypes_[row, k].astype(np.float64))).sum(1), 0.0)
        log_g = np.minimum(np.log(2.0) + norm.logcdf(-d_own / clf.ics_sigma_[row, k]), 0.0)
        return log_p.max(1), log_g

    @staticmethod
    def reward(current, candidate, form, calibrated):
        (log_s, log_g), (log_s_u, log_g_u) = current, candidate
        if form == "log":
            return log_s_u - log_s + (np.minimum(0.0, log_g_u - log_g) if calibrated else 0.0)
        gain = np.ones_like(log_s)
        if calibrated:
            drops = log_g_u < log_g
            gain[drops] = np.clip(log_g[drops] / log_g_u[drops], 0.0, 1.0)
        return np.exp(log_s_u) * gain - np.exp(log_s)

    def select(self, *, calibrated, simultaneous=False, form="log"):
        """(order (n, M): 1-based acceptance step, 0 if not accepted; accepted-reward (n, M);
        ambiguous (n,))."""
        n, m = self.n, self.m
        selected = np.zeros((n, m), bool)
        order = np.zeros((n, m), int)
        accepted_reward = np.full((n, m), np.nan)
        ambiguous = np.zeros(n, bool)
        active = self.candidates.copy()
        current = self.scores(selected)
        step = 0
        while active.any():
            step += 1
            rewards = np.full((n, m), -np.inf)
            for modality in range(m):
                trial = selected.copy()
                trial[:, modality] = True
                values = self.reward(current, self.scores(trial), form, calibrated)
                rewards[active[:, modality], modality] = values[active[:, modality]]
            ambiguous |= (active & (np.abs(rewards) < self.tol)).any(1)
            if simultaneous:
                accept = active & (rewards > 0)
                selected |= accept
                order[accept] = 1
                accepted_reward[accept] = rewards[accept]
                break
            several = active.sum(1) > 1
            top_two = -np.sort(-rewards[several], axis=1)[:, :2]
            ambiguous[several] |= (top_two[:, 0] > 0) & (top_two[:, 0] - top_two[:, 1] < self.tol)
            best = rewards.argmax(1)
            accept = np.flatnonzero(active.any(1) & (rewards.max(1) > 0))
            active &= rewards > 0
            active[accept, best[accept]] = False
            selected[accept, best[accept]] = True
            order[accept, best[accept]] = step
            accepted_reward[accept, best[accept]] = rewards[accept, best[accept]]
            current = self.scores(selected)
        return order, accepted_reward, ambiguous


def _steps(clf, report):
    return report[[f"step_{name}" for name in clf.modalities_]].to_numpy()


def _rewards(clf, report):
    return report[[f"reward_{name}" for name in clf.modalities_]].to_numpy()


def _candidate_mask(clf, report):
    return np.array([[name in row for name in clf.modalities_] for row in report["candidates"]])


def test_none_ignores_every_recovery(three_views):
    """`none` is the network on the observed entries alone: it matches the network's plain
    forward pass on the raw input (a path with no recovery at all), selects nothing, evaluates
    nothing, and a recoverer that writes garbage changes nothing."""
    clf, X = three_views
    none = _with(clf, selection="none")
    proba = none.predict_proba(X)
    with torch.no_grad():
        logits = none.net_.module_.eval()(**{k: torch.as_tensor(X[k]) for k in none.modalities_})[0][0]
    np.testing.assert_allclose(proba, softmax(logits.double().numpy(), axis=1), rtol=0, atol=1e-5)
    report = none.explain(X)
    assert (report["selected"].map(len) == 0).all()
    assert (_steps(none, report) == 0).all() and np.isnan(_rewards(none, report)).all()
    assert (report["prediction"] == report["prediction_observed_only"]).all()
    none.recoverer_ = _garbage_recoverer(none, X)
    np.testing.assert_array_equal(none.predict_proba(X), proba)


def test_all_fuses_every_recovery(three_views):
    """`all` fuses every sample's observed modalities with all its recovered candidates (marked
    as recovered); it selects every candidate; and it does use the recoveries (garbage ones
    change it)."""
    clf, X = three_views
    everything = _with(clf, selection="all")
    proba = everything.predict_proba(X)
    reference = _Reference(clf, X)
    expected = softmax(reference.logits(reference.candidates).astype(np.float64), axis=1)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-5)

    report = everything.explain(X)
    assert [set(s) for s in report["selected"]] == [set(c) for c in report["candidates"]]
    assert (report["candidates"].map(len) >= 2).all()
    assert ((_steps(everything, report) > 0) == _candidate_mask(clf, report)).all()
    everything.recoverer_ = _garbage_recoverer(everything, X)
    assert np.abs(everything.predict_proba(X) - proba).max() > 0.1


def test_with_the_papers_training_all_equals_none_on_the_filled_input(fitted_multiview):
    """Without recovery-aware training a recovered token is an observed token of the filled values."""
    clf, X, _ = fitted_multiview
    X = apply_missing(X, 0.5, random_state=0)
    proba = _with(clf, selection="all").predict_proba(X)
    filled = MultimodalDict(**recover(clf.recoverer_, dict(X)))
    np.testing.assert_allclose(proba, _with(clf, selection="none").predict_proba(filled), rtol=0, atol=1e-5)


@pytest.mark.parametrize("selection, reward_form", [("iterative", "log"), ("dymo", "log"), ("dymo", "prob")])
def test_iterative_modes_accept_one_candidate_at_a_time_in_reward_order(three_views, selection, reward_form):
    """`iterative` (uncalibrated) and `dymo` (calibrated) follow Algorithm 1: per step the
    best-rewarded candidate is accepted if its reward is positive, candidates with a reward <= 0
    are dropped for good. Checked against an independent implementation, sample by sample."""
    clf, X = three_views
    model = _with(clf, selection=selection, reward=reward_form)
    report = model.explain(X)
    steps, rewards = _steps(model, report), _rewards(model, report)
    candidates = _candidate_mask(model, report)
    # one candidate per step, steps 1, 2, ... without gaps, only candidates, subsets of them
    for row, selected in zip(steps, report["selected"]):
        assert sorted(row[row > 0]) == list(range(1, len(selected) + 1))
        assert [model.modalities_[i] for i in np.argsort(np.where(row > 0, row, 99))[: len(selected)]] == selected
    assert (steps[~candidates] == 0).all() and np.isnan(rewards[~candidates]).all()
    assert np.isfinite(rewards[candidates]).all()  # every candidate is evaluated at step 1
    # accepted candidates had a positive reward; every other candidate ended with one <= 0
    assert (rewards[steps > 0] > 0).all() and (rewards[candidates & (steps == 0)] <= 0).all()

    reference = _Reference(model, X)
    expected_order, expected_reward, ambiguous = reference.select(calibrated=selection == "dymo", form=reward_form)
    clear = ~ambiguous
    assert clear.mean() > 0.9 and (expected_order[clear] > 0).sum() > 100  # many decisions checked
    assert ((expected_order > 0).sum(1) >= 2).sum() >= 5  # some samples accept two candidates
    np.testing.assert_array_equal(steps[clear], expected_order[clear])
    accepted = steps > 0
    np.testing.assert_allclose(rewards[accepted & clear[:, None]], expected_reward[accepted & clear[:, None]],
                               rtol=1e-3, atol=1e-5)
    # the prediction is the fused final state
    final = reference.logits(accepted)
    np.testing.assert_array_equal(report["prediction"], model.classes_[final.argmax(1)])
    np.testing.assert_allclose(model.predict_proba(X), softmax(final.astype(np.float64), axis=1), atol=1e-5)


def test_calibration_changes_which_candidates_are_accepted(three_views):
    """The test data make the calibrated and uncalibrated rules disagree somewhere, so the checks
    above (and a mode using the other reward) would notice a swapped reward."""
    clf, X = three_views
    reference = _Reference(clf, X)
    plain, _, ambiguous_plain = reference.select(calibrated=False)
    calibrated, _, ambiguous_calibrated = reference.select(calibrated=True)
    clear = ~(ambiguous_plain | ambiguous_calibrated)
    assert ((plain != calibrated).any(1) & clear).sum() >= 5
    iterative = _steps(clf, _with(clf, selection="iterative").explain(X))
    dymo = _steps(clf, _with(clf, selection="dymo").explain(X))
    assert not np.array_equal(iterative, dymo)


def test_simultaneous_accepts_every_positive_candidate_at_once(three_views):
    """`simultaneous` evaluates every candidate once against the observed-only state and accepts
    all those with a positive reward, in one step; the prediction fuses exactly those."""
    clf, X = three_views
    model = _with(clf, selection="simultaneous")
    report = model.explain(X)
    steps, rewards = _steps(model, report), _rewards(model, report)
    candidates = _candidate_mask(model, report)
    assert np.isfinite(rewards[candidates]).all() and np.isnan(rewards[~candidates]).all()
    np.testing.assert_array_equal(steps > 0, candidates & (rewards > 0))
    assert set(np.unique(steps)) == {0, 1} and ((steps > 0).sum(1) >= 2).sum() >= 5
    final = _Reference(model, X).logits(steps > 0)
    np.testing.assert_allclose(model.predict_proba(X), softmax(final.astype(np.float64), axis=1), atol=1e-5)


def test_simultaneous_uses_the_uncalibrated_reward(three_views):
    """The paper's S row (DESIGN.md section 4): every candidate with a positive *uncalibrated*
    reward, accepted at once. S, I and I+C select differently on this set."""
    clf, X = three_views
    model = _with(clf, selection="simultaneous")
    steps = _steps(model, model.explain(X))
    expected, _, ambiguous = _Reference(model, X).select(calibrated=False, simultaneous=True)
    np.testing.assert_array_equal(steps[~ambiguous], expected[~ambiguous])
    calibrated, _, _ = _Reference(model, X).select(calibrated=True, simultaneous=True)
    assert ((expected > 0) != (calibrated > 0))[~ambiguous].any()  # the reward's calibration matters
    chosen = {mode: _steps(clf, _with(clf, selection=mode).explain(X)) for mode in ("iterative", "dymo")}
    assert not np.array_equal(steps, chosen["iterative"]) and not np.array_equal(steps, chosen["dymo"])


def test_fit_errors_are_named(image_table_data):
    X, y = image_table_data
    with pytest.raises(ValueError, match="y has 3 labels but X has 400"):
        tiny_classifier().fit(X, y[:3])
    with pytest.raises(ValueError, match="at least 2 classes"):
        tiny_classifier().fit(X, np.zeros(400))
    with pytest.raises(ValueError, match="encoders names unknown modalities \\['nope'\\]"):
        tiny_classifier(encoders={"nope": "image"}).fit(X, y)
    empty = MultimodalDict(image=X["image"].copy(), table=X["table"].copy())
    empty["image"][[4, 9]] = np.nan
    empty["table"][[4, 9]] = np.nan
    with pytest.raises(ValueError, match="no observed entry in any modality.*rows 4, 9"):
        tiny_classifier().fit(empty, y)
    fitted = tiny_classifier().fit(X, y)
    with pytest.raises(ValueError, match="rows 4, 9"):
        fitted.predict(empty)
    with pytest.raises(TypeError, match="fitted on a dict"):
        fitted.predict(np.ones((3, 80)))


def test_verbose_shows_training_and_prediction_progress(image_table_data, capsys, monkeypatch):
    X, y = image_table_data
    clf = tiny_classifier(verbose=1, predict_batch_size=100).fit(X, y)
    training = capsys.readouterr()
    assert "train_loss" in training.out
    clf.predict(X)
    assert capsys.readouterr().err == ""  # no progress bar in a log file
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    clf.predict(X)
    assert "DyMoClassifier predict" in capsys.readouterr().err
    clf.set_params(verbose=0).predict(X)
    assert capsys.readouterr().err == ""
