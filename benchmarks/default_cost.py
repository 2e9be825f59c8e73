"""Fit time of DyMoClassifier's defaults against the earlier ones, measured side by side.

Single passes and per-modality teachers became DyMoClassifier's defaults after the dilemma runs
measured them, but those runs were made at other times and under other loads than the earlier
default's, so their fit times do not compare (issue 33, goal 4: at most 1.5x the earlier fit).
Here both are fitted one after the other in the same process, on the same data, seed and
threads, with the default recoverer: ``DyMoClassifier()`` and the earlier defaults
(``DyMoResearchClassifier(single_passes=False, teacher_weight=0.0)``: 8 random subsets per batch,
no teachers). The fit time includes the recoverer's and the teachers' fits.

    python -m benchmarks.default_cost --seeds 0      # benchmarks/results/default_cost.md and .json
    python -m benchmarks.default_cost --quick        # smoke run into build/benchmarks/
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .common import benchmark_main, load_split
from .dilemma import shipped

EARLIER = dict(single_passes=False, teacher_weight=0.0)
MODELS = (("shipped", {}), ("earlier default", EARLIER))  # shipped first: a first fit's warm-up counts against it


def run_seed(dataset, seed, quick):
    X_train, y_train, X_test, y_test, _ = load_split(dataset, seed, quick)
    rows = []
    for label, params in MODELS:
        model = shipped(None, seed, quick, **params)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        rows.append(dict(dataset=dataset, seed=seed, quick=quick, model=label, fit_s=fit_s,
                         n_epochs=len(model.net_.history), accuracy=float(np.mean(model.predict(X_test) == y_test))))
        print(f"[{dataset}] seed {seed} {label}: fit {fit_s:.1f} s, {rows[-1]['n_epochs']} epochs", flush=True)
    return rows


def report(records, command):
    frame = pd.DataFrame(records)
    lines = ["# DyMoClassifier's defaults against the earlier ones: fit time side by side", "",
             f"Produced by `{command}`.", "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             "Fit time in s (mean over the seeds), epochs run (early stopping), and the ratio shipped / earlier of "
             "the fit and of the time per epoch. Accuracy: every modality observed, in %.", "",
             "| data set | seeds | earlier: fit (s) | epochs | shipped: fit (s) | epochs | fit ratio | per-epoch ratio "
             "| accuracy earlier / shipped |", "|---|---|---|---|---|---|---|---|---|"]
    for dataset, part in frame.groupby("dataset", sort=False):
        means = part.groupby("model")[["fit_s", "n_epochs", "accuracy"]].mean()
        earlier, now = means.loc["earlier default"], means.loc["shipped"]
        per_epoch = (now.fit_s / now.n_epochs) / (earlier.fit_s / earlier.n_epochs)
        seeds = ", ".join(str(seed) for seed in sorted(part.seed.unique()))
        lines.append(f"| {dataset} | {seeds} | {earlier.fit_s:.0f} | {earlier.n_epochs:.0f} | {now.fit_s:.0f} | "
                     f"{now.n_epochs:.0f} | {now.fit_s / earlier.fit_s:.2f} | {per_epoch:.2f} | "
                     f"{100 * earlier.accuracy:.1f} / {100 * now.accuracy:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    benchmark_main("default_cost", run_seed, report, argv,
                   datasets=("breast_cancer", "features_mnist", "features_fashion", "polymnist_digits"), seeds=(0,))


if __name__ == "__main__":
    main()
