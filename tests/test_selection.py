"""Reward, ICS and selection behaviour on hand-built and planted problems."""

import copy
import math

import numpy as np
import pytest
import torch
from helpers import tiny_research
from scipy.special import logsumexp, softmax
from scipy.stats import norm
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import KNNImputer, SimpleImputer

from dymo_sklearn import MultimodalDict
from dymo_sklearn._prototypes import SubsetStatistics, log_ics
from dymo_sklearn._selection import Assessment, assess, reward
from dymo_sklearn.datasets import apply_missing, make_multiview_digits
from dymo_sklearn.recovery import recover


class _Identity:
    """Stands in for the network: the [CLS] output is the projected representation."""

    @staticmethod
    def heads(hidden):
        return None, hidden


def _toy_statistics():
    prototypes = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # subset code 1 (modality 0 only) and 3 (both); row 2 is the pooled fallback
    return SubsetStatistics(
        codes=np.array([1, 3]),
        subset_prototypes=np.stack([prototypes, prototypes * 2, prototypes]).astype(np.float32),
        sigma=np.array([[0.5, 0.5], [1.0, 2.0], [0.7, 0.7]], dtype=np.float32),
        prototypes=prototypes,
    ).to_torch("cpu")


def test_assessment_matches_hand_computation_sqeuclidean():
    """Check 3: p(k|z), the subset lookup and ICS = 2(1 - Phi(d / sigma)) by hand."""
    statistics = _toy_statistics()
    z = torch.tensor([[0.8, 0.3], [0.2, 1.5], [0.2, 1.5]])
    present = torch.tensor([[True, False], [True, True], [False, True]])  # codes 1, 3, 2 (unfitted)
    got = assess(_Identity, z, present, statistics, "sqeuclidean", temperature=0.5)

    zn = z.numpy().astype(np.float64)
    c = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = ((zn[:, None] - c[None]) ** 2).sum(-1)
    p = softmax(-d / 0.5, axis=1)
    np.testing.assert_allclose(got.log_confidence.exp().numpy(), p.max(1), rtol=1e-5)
    k = p.argmax(1)
    centres = np.array([c[k[0]], 2 * c[k[1]], c[k[2]]])  # subset 3 has prototypes * 2; code 2 -> pooled
    sigmas = np.array([0.5, [1.0, 2.0][k[1]], 0.7])
    d_own = ((zn - centres) ** 2).sum(-1)
    ics = 2 * (1 - norm.cdf(d_own / sigmas))
    np.testing.assert_allclose(got.log_ics.exp().numpy(), ics, rtol=1e-5)


def test_cosine_distance_and_rewards_by_hand():
    """Check 3: both reward forms with calibration, computed by hand for one candidate."""
    statistics = _toy_statistics()
    z = torch.tensor([[1.0, 1.0]])
    z_u = torch.tensor([[1.0, 0.2]])
    current = assess(_Identity, z, torch.tensor([[True, False]]), statistics, "cosine", 0.1)
    candidate = assess(_Identity, z_u, torch.tensor([[True, True]]), statistics, "cosine", 0.1)

    def state(vector, sigma):
        cos = vector @ np.array([[1.0, 0.0], [0.0, 1.0]]).T / np.linalg.norm(vector)
        p = softmax(-(1 - cos) / 0.1)
        k = p.argmax()
        return p.max(), 2 * (1 - norm.cdf((1 - cos[k]) / sigma[k]))

    S, g = state(np.array([1.0, 1.0]), [0.5, 0.5])
    S_u, g_u = state(np.array([1.0, 0.2]), [1.0, 2.0])
    expected_log = math.log(S_u) - math.log(S) + min(0.0, math.log(g_u) - math.log(g))
    G = math.log(g) / math.log(g_u) if g_u < g else 1.0
    expected_prob = S_u * G - S
    got_log = reward(current, candidate, form="log", calibrated=True, distance="cosine").item()
    got_prob = reward(current, candidate, form="prob", calibrated=True, distance="cosine").item()
    assert got_log == pytest.approx(expected_log, rel=1e-4, abs=1e-6)
    assert got_prob == pytest.approx(expected_prob, rel=1e-4, abs=1e-6)


def test_ics_tail_does_not_underflow():
    """Far from the prototype (d / sigma = 40) log ICS stays finite, unlike float32 1 - Phi."""
    statistics = _toy_statistics()
    z = torch.tensor([[41.0, 0.0]])
    value = log_ics(z, torch.tensor([0]), torch.tensor([2]), statistics, "sqeuclidean").item()
    assert math.isfinite(value)
    assert value == pytest.approx(math.log(2) + norm.logcdf(-1600 / 0.7), rel=1e-3)
    assert 2 * (1 - norm.cdf(torch.tensor(1600 / 0.7, dtype=torch.float32).item())) == 0.0


@pytest.mark.parametrize("form", ["log", "prob"])
@pytest.mark.parametrize("distance", ["cosine", "sqeuclidean"])
def test_calibration_never_raises_a_reward(form, distance):
    """Check 4, over many random confidence / ICS pairs including extreme ones."""
    generator = torch.Generator().manual_seed(0)
    n = 20000

    def random_assessment():
        log_confidence = -torch.rand(n, generator=generator) * 3
        log_ics_values = -torch.rand(n, generator=generator) ** 3 * 60
        log_ics_values[:100] = 0.0
        return Assessment(log_confidence, log_ics_values)

    current, candidate = random_assessment(), random_assessment()
    calibrated = reward(current, candidate, form=form, calibrated=True, distance=distance)
    plain = reward(current, candidate, form=form, calibrated=False, distance=distance)
    assert torch.isfinite(calibrated).all()
    assert (calibrated <= plain + 1e-7).all()
    less_typical = candidate.log_ics < current.log_ics - 1e-3
    assert (calibrated[less_typical] < plain[less_typical]).float().mean() > 0.9


def test_literal_equation_7_would_raise_the_reward():
    """The trap the package avoids: alpha < 1 on a log-probability raises the paper's R*.

    Without calibration (alpha = 1) the literal R* = -log p + log p_u is the package's "log"
    reward; with a less typical candidate (its ICS drops) the literal alpha = 0.5 would raise it,
    the package's calibration lowers it, by exactly the drop in log ICS."""
    log_p, log_p_u = math.log(0.6), math.log(0.7)
    literal = -log_p + 1.0 * log_p_u  # 0.1542; with alpha = 0.5 it would be 0.3325, higher
    current = Assessment(torch.tensor([log_p]), torch.tensor([-1.0]))
    candidate = Assessment(torch.tensor([log_p_u]), torch.tensor([-3.0]))
    plain = reward(current, candidate, form="log", calibrated=False, distance="cosine").item()
    ours = reward(current, candidate, form="log", calibrated=True, distance="cosine").item()
    assert plain == pytest.approx(literal, rel=1e-6)
    assert ours == pytest.approx(literal - 2.0, rel=1e-6)  # log ICS drops from -1 to -3
    assert ours < plain  # lowered, where the literal alpha < 1 would have raised it


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


