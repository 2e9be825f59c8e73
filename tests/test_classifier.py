"""The checks a faithful DyMo implementation passes (DESIGN.md section 4)."""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from dymo_sklearn._selection import CandidateFusion
from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.recovery import fit_recoverer, recover


def test_masked_modality_content_cannot_reach_the_output(fitted_multiview):
    """Check 1: changing what an absent modality's tokens hold leaves h, logits and z bit-equal."""
    clf, X, _ = fitted_multiview
    network = clf.net_.module_.eval()
    batch = {name: torch.as_tensor(X[name][:32], device=clf.net_.device) for name in clf.modalities_}
    with torch.no_grad():
        tokens, present = network.encode(batch)
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


class _PassRecorder:
    """Counting wrappers, on this network instance and on ``CandidateFusion.fuse``, that log every
    encoder call (modality, observed mask), every transformer pass (rows) and every state the
    selection loop fuses (rows, taken candidates, fused output). The package is not changed."""

    def __init__(self, network, monkeypatch):
        self.network = network
        self.events = []  # ("encode", modality, observed mask) / ("fuse", n_rows), in call order
        self.states = []  # (rows, taken, hidden) of each CandidateFusion.fuse call, in call order
        encode, fuse = network.encode_modality, network.fuse
        original_state_fuse = CandidateFusion.fuse

        def counting_encode(index, values, observed):
            self.events.append(("encode", index, observed.cpu().clone()))
            return encode(index, values, observed)

        def counting_fuse(tokens, present):
            self.events.append(("fuse", tokens.shape[0]))
            return fuse(tokens, present)

        def recording_state_fuse(fusion, rows, taken):
            hidden = original_state_fuse(fusion, rows, taken)
            self.states.append((rows.cpu().clone(), taken.cpu().clone(), hidden.clone()))
            return hidden

        network.encode_modality, network.fuse = counting_encode, counting_fuse
        monkeypatch.setattr(CandidateFusion, "fuse", recording_state_fuse)

    def reset(self):
        self.events.clear()
        self.states.clear()
        self.network.pass_counts.clear()

    def restore(self):
        del self.network.encode_modality, self.network.fuse  # back to the class's methods


def _with_partially_observed_modalities(X, n, random_state):
    """Two of three modalities missing per sample, and every 4th sample also misses the first
    row of pixels of the modality it observes (partially observed: encoded in both versions)."""
    X_missing = apply_missing(X[:n], 0.67, random_state=random_state)
    for array in X_missing.values():
        rows = np.arange(0, n, 4)
        rows = rows[~np.isnan(array[rows]).reshape(len(rows), -1).all(1)]
        array[rows, 0, 0, :] = np.nan
    return X_missing


@pytest.mark.parametrize("n, random_state", [(100, 3), (61, 4)])
def test_forward_pass_accounting(fitted_multiview, monkeypatch, n, random_state):
    """Check 6: encoders once per sample, modality and input version; per selection step at most
    (#remaining candidates + 1) fusion passes; the accepted candidate's pass is reused, not
    recomputed, and is what the prediction comes from."""
    clf, X, _ = fitted_multiview
    X_missing = _with_partially_observed_modalities(X, n, random_state)
    network = clf.net_.module_
    assert n <= clf.predict_batch_size  # one batch: every call below belongs to it

    # Expected encoder rows, from the masks alone: the observed version for every sample with an
    # observed entry, the recovered version (all entries observed) for every sample missing one,
    # except in `none`, which uses nothing recovered and so encodes no recovered version.
    observed = {name: ~np.isnan(X_missing[name]).reshape(n, -1) for name in clf.modalities_}
    n_observing = {name: int(mask.any(1).sum()) for name, mask in observed.items()}
    n_incomplete = {name: int((~mask).any(1).sum()) for name, mask in observed.items()}
    n_partial = {name: int((mask.any(1) & ~mask.all(1)).sum()) for name, mask in observed.items()}
    # Some samples are partially observed, so they are encoded in both versions and the count
    # below is n + n_partial, not n (which a one-version-per-sample bug would also give).
    assert all(n_partial.values())
    width = {name: mask.shape[1] for name, mask in observed.items()}

    recorder = _PassRecorder(network, monkeypatch)
    try:
        for selection in ("none", "all", "simultaneous", "iterative", "dymo"):
            recorder.reset()
            run = clf._run(X_missing, selection)
            events = recorder.events
            candidates = run["candidates"]
            np.testing.assert_array_equal(candidates, ~np.stack([m.all(1) for m in observed.values()], 1))

            # Encoders: all calls come before the first fusion (never re-run inside the loop) ...
            first_fusion = next(i for i, event in enumerate(events) if event[0] == "fuse")
            assert all(event[0] == "fuse" for event in events[first_fusion:]), selection
            for index, name in enumerate(clf.modalities_):
                masks = [event[2].reshape(len(event[2]), -1) for event in events if event[:2] == ("encode", index)]
                rows = sum(len(mask) for mask in masks)
                # ... once per sample and input version, and with the right masks: the observed
                # entries of the observed version plus every entry of the recovered version.
                recovered_rows = 0 if selection == "none" else n_incomplete[name]
                assert rows == n_observing[name] + recovered_rows, (selection, name)
                assert network.pass_counts[f"encoder_{index}"] == rows
                observed_entries = sum(int(mask.sum()) for mask in masks)
                assert observed_entries == int(observed[name].sum()) + recovered_rows * width[name], (selection, name)

            # Every transformer pass is a state fused by the selection loop (no hidden extra pass).
            fusion_rows = [event[1] for event in events if event[0] == "fuse"]
            assert fusion_rows == [len(rows) for rows, _, _ in recorder.states]
            assert network.pass_counts["fusion"] == sum(fusion_rows)
            _check_selection_passes(network, run, recorder.states, selection, n)
    finally:
        recorder.restore()


def _check_selection_passes(network, run, states, selection, n):
    """Per selection step: which states were fused, how many passes, and what the prediction reused.

    ``states`` is what the loop fused, in order: the starting state of every sample, then per
    step one pass per (sample, candidate still in play), then, for ``simultaneous`` only, one pass
    of the final state of the samples that accepted several candidates at once."""
    candidates = torch.as_tensor(run["candidates"])
    selected = torch.as_tensor(run["selected"])
    order = torch.as_tensor(run["order"])
    rows0, taken0, hidden0 = states[0]
    np.testing.assert_array_equal(rows0.numpy(), np.arange(n))
    # The starting state: observed modalities only; for `all`, every candidate at once.
    assert torch.equal(taken0, candidates if selection == "all" else torch.zeros_like(candidates))
    final_hidden = hidden0.clone()
    if selection in ("none", "all"):
        assert len(states) == 1 and network.pass_counts["fusion"] == n  # one pass per sample
        assert torch.equal(selected, taken0)
    else:
        trial_states = states[1:2] if selection == "simultaneous" else states[1:]
        assert len(trial_states) == run["evaluations"].max()
        evaluations = torch.zeros_like(candidates, dtype=torch.long)
        in_play = candidates.clone()  # candidates a sample may still try
        for step, (rows, taken, hidden) in enumerate(trial_states, start=1):
            before = selected & (order < step)  # accepted at earlier steps
            remaining = candidates & ~before
            # Each pass is the sample's current state plus exactly one candidate still in play.
            trial = taken & ~before[rows]
            assert (taken >= before[rows]).all() and (trial.sum(1) == 1).all(), (selection, step)
            modality = trial.int().argmax(1)
            tried = torch.zeros_like(candidates)
            tried[rows, modality] = True
            assert int(tried.sum()) == len(rows), (selection, step)  # none fused twice in a step
            assert (tried <= in_play).all(), (selection, step)  # a dropped candidate never returns
            accepted = selected & (order == step)
            assert (accepted <= tried).all()
            state_passes = torch.zeros(n, dtype=torch.long)
            if selection == "simultaneous":
                several = selected.sum(1) > 1
                assert len(states) == 2 + int(several.any())
                if several.any():
                    # one pass of the combined state, only for samples that accepted several
                    rows_s, taken_s, hidden_s = states[2]
                    assert torch.equal(rows_s, several.nonzero().flatten())
                    assert torch.equal(taken_s, selected[several])
                    final_hidden[rows_s] = hidden_s
                    state_passes[rows_s] = 1
                single = accepted.sum(1) == 1
            else:
                assert (accepted.sum(1) <= 1).all()  # one candidate at a time
                single = accepted.any(1)
            # The accepted candidate's own pass becomes the new state: it is reused, not redone.
            for sample in single.nonzero().flatten().tolist():
                final_hidden[sample] = hidden[(rows == sample) & accepted[sample, modality]][0]
            # The bound of check 6: per step, one pass per remaining candidate at most, + 1.
            passes = torch.bincount(rows, minlength=n) + state_passes
            assert (passes <= remaining.sum(1) + 1).all(), (selection, step)
            evaluations += tried
            in_play = tried & ~accepted & accepted.any(1, keepdim=True)  # nothing accepted: done
        np.testing.assert_array_equal(evaluations.numpy(), run["evaluations"])
        extra = int(selected[selected.sum(1) > 1].shape[0]) if selection == "simultaneous" else 0
        # one starting pass per sample + one per evaluated candidate (+ the simultaneous refusion)
        assert network.pass_counts["fusion"] == n + run["evaluations"].sum() + extra
    # The prediction is made from the final state's (reused) pass.
    with torch.no_grad():
        expected_logits = network.heads(final_hidden)[0].numpy()
    np.testing.assert_allclose(run["logits"], expected_logits, rtol=0, atol=1e-5)
