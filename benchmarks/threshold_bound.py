"""How much could acceptance thresholds per number of observed modalities gain? A label-aware bound.

Issue 11 lists, as a direction, acceptance thresholds fitted per number of observed modalities
on cross-fitted folds. Whatever folds fit them, no such thresholds can do better on a test set
than the ones chosen *with that test set's labels*. This benchmark fits ``DyMoClassifier()`` as
shipped (default recoverer, the dilemma run's splits and missing test sets), predicts with
``selection="dymo"`` at every threshold of a grid (and with ``selection="none"``, the threshold
that accepts nothing), and reports, per missing rate:

- ``none`` and ``dymo`` as shipped (threshold 0);
- the best single threshold, chosen with the test labels;
- the best threshold for each number of observed modalities, chosen with the test labels;
- per sample, ``none`` or ``dymo``, whichever is right.

The fourth is an upper bound on the direction: if it is not a point above ``none``, thresholds
fitted without test labels cannot be either. The last bounds any gate, however it is learned,
that chooses per sample between discarding and DyMo's selection.

    python -m benchmarks.threshold_bound          # docs/threshold_bound.md and .json
    python -m benchmarks.threshold_bound --quick  # smoke run into build/benchmarks/
    python -m benchmarks.threshold_bound --device cuda --datasets polymnist_fashion --seeds 0 \
        --name threshold_bound_fashion             # on a GPU (Debian's dataset-fashion-mnist)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from dymo_sklearn.datasets import apply_missing

from .common import benchmark_main, load_split
from .dilemma import DATASETS, shipped

# Rewards lie in (-1, 1); the grid is finest where the shipped threshold (0) sits.
THRESHOLDS = np.round(np.concatenate([[-0.9, -0.6], np.arange(-0.3, 0.3001, 0.02), [0.6, 0.9]]), 2)
NONE = np.inf  # the threshold that accepts no candidate: discarding
RULES = ("none (discard)", "dymo (shipped, threshold 0)", "best single threshold (test labels)",
         "best threshold per number observed (test labels)", "none or dymo, whichever is right (test labels)")


def n_observed(X):
    """Number of observed modalities of each sample of a dict of NaN-masked arrays."""
    return sum(~np.isnan(np.asarray(values, dtype=float).reshape(len(values), -1)).all(axis=1)
               for values in X.values())


def correct_by_threshold(model, X, y):
    """Boolean (n_thresholds + 1, n_samples): is each sample right at each threshold of
    :data:`THRESHOLDS`, the last row being ``selection="none"``."""
    rows = [model.set_params(selection="dymo", acceptance_threshold=float(t)).predict(X) == y for t in THRESHOLDS]
    rows.append(model.set_params(selection="none", acceptance_threshold=0.0).predict(X) == y)
    model.set_params(selection="dymo", acceptance_threshold=0.0)
    return np.array(rows)


def _best(hits):
    """Index of the largest count in ``hits``; ties go to the last rows (discarding, then the
    highest threshold), the choice that changes the least."""
    return len(hits) - 1 - int(np.argmax(hits[::-1]))


def bound_rows(tables):
    """Accuracy of each rule of :data:`RULES` per missing rate, from :func:`correct_by_threshold`'s
    table at each rate, and the threshold the last rule picked per rate (``inf``: accept nothing).

    Every test set of one rate has the same number of observed modalities per sample, so a
    threshold per number observed is a threshold per rate; the single threshold is one for all."""
    grid = np.append(THRESHOLDS, NONE)
    shipped_row = int(np.flatnonzero(THRESHOLDS == 0.0)[0])
    single = _best(sum(correct.sum(axis=1) for correct in tables.values()))
    result = {}
    for rate, correct in tables.items():
        per_count = _best(correct.sum(axis=1))
        result[rate] = ({RULES[0]: correct[-1].mean(), RULES[1]: correct[shipped_row].mean(),
                         RULES[2]: correct[single].mean(), RULES[3]: correct[per_count].mean(),
                         RULES[4]: (correct[-1] | correct[shipped_row]).mean()},
                        float(grid[per_count]))
    return result


def run_seed(dataset, seed, quick, device="cpu"):
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    model = shipped(None, seed, quick).set_params(device=device).fit(X_train, y_train)
    tables, observed = {}, {}
    for i, rate in enumerate(rates):
        X_missing = apply_missing(X_test, rate, random_state=1000 * seed + i)  # the dilemma run's test sets
        tables[float(rate)] = correct_by_threshold(model, X_missing, y_test)
        observed[float(rate)] = np.unique(n_observed(X_missing)).tolist()
    rows = [{"dataset": dataset, "seed": seed, "quick": quick, "device": device, "rate": rate, "observed": observed[rate],
             "rule": rule, "accuracy": float(value), "threshold": chosen if rule == RULES[3] else None}
            for rate, (accuracy, chosen) in bound_rows(tables).items() for rule, value in accuracy.items()]
    print(f"[{dataset}] seed {seed} done", flush=True)
    return rows


def _chosen(part, rates):
    """'η 0.20: 0, 0.02, inf; …': the thresholds the per-η rule picked, seed by seed."""
    return "; ".join(f"η {rate:.2f}: " + ", ".join(f"{t:g}" for t in part[part.rate == rate].sort_values("seed").threshold)
                     for rate in rates)


def report(records, command):
    frame = pd.DataFrame(records)
    frame["accuracy"] *= 100
    seeds = sorted(frame.seed.unique().tolist())
    lines = ["# Acceptance thresholds per number of observed modalities: a label-aware bound", "",
             f"Produced by `{command}` ({torch.get_num_threads()} torch thread(s), device "
             f"{', '.join(sorted(frame.get('device', pd.Series(['cpu'])).fillna('cpu').unique()))}): "
             "`DyMoClassifier()` as shipped "
             f"(default recoverer) on the dilemma run's splits and missing test sets, seeds {seeds}. Every sample "
             "of a test set misses the same number of modalities, so a threshold per number of observed "
             "modalities is a threshold per η. The third and fourth rows choose thresholds *with the test "
             f"labels* from the grid {THRESHOLDS.min():g}, …, {THRESHOLDS.max():g} ({len(THRESHOLDS)} values, "
             "step 0.02 around 0) or accept nothing: one threshold for every η, or one per η. No threshold "
             "fitted without these labels can beat them on these test sets. "
             + ("The last row takes, per sample, whichever of `none` and `dymo` is right: no gate choosing "
                "between the two can beat it. " if RULES[4] in set(frame.rule) else
                "These records predate the row that bounds a per-sample gate between `none` and `dymo`. ")
             + "Accuracy in %, mean ± sd over seeds; the last column is the rule minus `none` at the highest η."]
    for dataset, part in frame.groupby("dataset", sort=False):
        rates = sorted(part.rate.unique())
        top = part[part.rate == rates[-1]].groupby("rule").accuracy.mean()
        lines += ["", f"## {dataset}", "",
                  "| rule | " + " | ".join(f"η = {rate:.2f}" for rate in rates) + " | − none |",
                  "|---|" + "---|" * (len(rates) + 1)]
        for rule in (rule for rule in RULES if rule in top.index):  # older records lack the last rule
            cells = [part[(part.rule == rule) & (part.rate == rate)].accuracy for rate in rates]
            lines.append(f"| {rule} | " + " | ".join(f"{c.mean():.1f} ± {c.std(ddof=0):.1f}" for c in cells)
                         + f" | {top[rule] - top[RULES[0]]:+.1f} |")
        lines += ["", "Thresholds the fourth row picked, seed by seed (inf: accept nothing): "
                  + _chosen(part[part.rule == RULES[3]], rates) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    benchmark_main("threshold_bound", run_seed, report, argv, datasets=DATASETS,
                   options={"--device": dict(default="cpu", choices=["cpu", "cuda"])})


if __name__ == "__main__":
    main()
