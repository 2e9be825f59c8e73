"""Can a prediction-time combination of DyMo's fused states beat selection?

Issue 11 asks DyMo to beat discarding (``none``) by a point at the highest missing rate. With
selection that fuses one final state per sample it does not (docs/dilemma.md). This benchmark
fits ``DyMoClassifier()`` as shipped (default recoverer, the dilemma run's splits and missing
test sets) and scores label-free rules that combine the class probabilities of states the
selection already fuses: the observed-only state, the observed state plus one recovered
candidate, every candidate at once and DyMo's final state. No rule sees a label.

    python -m benchmarks.state_combinations          # docs/state_combinations.md and .json
    python -m benchmarks.state_combinations --quick  # smoke run into build/benchmarks/
"""

from __future__ import annotations

import numpy as np
import torch

from dymo_sklearn._devices import to_device
from dymo_sklearn._selection import CandidateFusion
from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.recovery import recover

from .common import benchmark_main, load_split, percent_frame, rule_table
from .dilemma import DATASETS, shipped


def state_probabilities(model, X):
    """Class probabilities of the states DyMo fuses for ``X``: ``none`` (B, K), ``all`` (B, K),
    ``dymo`` (B, K, the final state) and ``single`` (B, M, K: the observed state with one
    recovered candidate added; NaN where that modality is not a candidate)."""
    arrays = model._validated(X)
    network = model.net_.module_.eval()
    device = next(network.parameters()).device
    with torch.no_grad():
        fusion = CandidateFusion(network, *network.encode_versions(
            to_device(arrays, device), to_device(recover(model.recoverer_, arrays), device)))
        candidates = fusion.candidates
        rows = torch.arange(len(candidates), device=device)

        def probabilities(taken):
            return torch.softmax(network.heads(fusion.fuse(rows, taken))[0].double(), dim=1).cpu().numpy()

        single = []
        for modality in range(candidates.shape[1]):
            taken = torch.zeros_like(candidates)
            taken[:, modality] = candidates[:, modality]
            single.append(np.where(candidates[:, modality, None].cpu().numpy(), probabilities(taken), np.nan))
        states = {"none": probabilities(torch.zeros_like(candidates)), "all": probabilities(candidates),
                  "single": np.stack(single, axis=1)}
    states["dymo"] = model.set_params(selection="dymo").predict_proba(X)
    return states


def _mean_with_singles(states, log=False):
    """Mean of the observed state and every single-candidate state (geometric with ``log``)."""
    stack = np.concatenate([states["none"][:, None], states["single"]], axis=1)
    return np.nanmean(np.log(stack) if log else stack, axis=1)


def _mean_single_addition(states):
    """Mean of the single-candidate states; the observed state where there is no candidate."""
    tried = ~np.isnan(states["single"][..., 0])
    total = np.nansum(states["single"], axis=1)
    return np.where(tried.any(axis=1)[:, None], total / np.maximum(tried.sum(axis=1), 1)[:, None], states["none"])


RULES = {
    "none (observed only)": lambda s: s["none"],
    "all (every candidate)": lambda s: s["all"],
    "dymo (selection, shipped)": lambda s: s["dymo"],
    "mean of none and each single addition": _mean_with_singles,
    "geometric mean of none and each single addition": lambda s: _mean_with_singles(s, log=True),
    "none and the mean single addition, half each": lambda s: (s["none"] + _mean_single_addition(s)) / 2,
    "mean of none and dymo": lambda s: (s["none"] + s["dymo"]) / 2,
    "mean of none and all": lambda s: (s["none"] + s["all"]) / 2,
    "mean of none, dymo and all": lambda s: (s["none"] + s["dymo"] + s["all"]) / 3,
}


def run_seed(dataset, seed, quick):
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    tests = {float(rate): apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    model = shipped(None, seed, quick).fit(X_train, y_train)
    rows = []
    for rate, X_missing in tests.items():
        states = state_probabilities(model, X_missing)
        for selection in ("none", "all"):  # the states are the ones the estimator predicts from
            expected = model.set_params(selection=selection).predict(X_missing)
            if not np.array_equal(model.classes_[states[selection].argmax(axis=1)], expected):
                raise AssertionError(f"{dataset} seed {seed} η={rate}: the {selection!r} state differs from predict")
        for rule, combine in RULES.items():
            predicted = model.classes_[combine(states).argmax(axis=1)]
            rows.append({"dataset": dataset, "seed": seed, "quick": quick, "rate": rate, "rule": rule,
                         "accuracy": float(np.mean(predicted == y_test))})
    print(f"[{dataset}] seed {seed} done", flush=True)
    return rows


def report(records, command):
    frame, seeds = percent_frame(records)
    lines = ["# Combining DyMo's fused states at prediction time", "",
             f"Produced by `{command}` ({torch.get_num_threads()} torch thread(s)): `DyMoClassifier()` as shipped "
             f"(default recoverer) on the dilemma run's splits and missing test sets, seeds {seeds}. Each rule "
             "turns class probabilities of states the selection fuses into one prediction, without labels. "
             "Accuracy in %, mean ± sd over seeds; the last column is the rule minus `dymo` at the highest η."]
    for dataset, part in frame.groupby("dataset", sort=False):
        lines += ["", f"## {dataset}", "", *rule_table(part, RULES, "dymo (selection, shipped)")]
    return "\n".join(lines) + "\n"


def main(argv=None):
    benchmark_main("state_combinations", run_seed, report, argv, datasets=DATASETS)


if __name__ == "__main__":
    main()
