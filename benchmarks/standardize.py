"""In-network standardisation: the shipped DyMoClassifier with ``standardize`` on and off.

On every benchmark set (images as they come, breast-cancer views standardised beforehand) and on
the breast-cancer views as they come (``breast_cancer_raw``: feature scales from 0.001 to 2,500),
per seed and missing rate: accuracy of ``dymo`` and of ``none`` (discarding) for both settings.
Everything else is at its default, with the default recoverer.

    python -m benchmarks.standardize                 # benchmarks/results/standardize.md and benchmarks/results/standardize.json
    python -m benchmarks.standardize --quick         # smoke run into build/benchmarks/
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, load_breast_cancer_views

from .common import benchmark_main, load_split, subset

DATASETS = ("breast_cancer_raw", "breast_cancer", "polymnist_digits", "polymnist_mnist")


def _split(dataset, seed, quick):
    if dataset != "breast_cancer_raw":
        return load_split(dataset, seed, quick)
    X, y = load_breast_cancer_views()
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=y)
    return subset(X, train), y[train], subset(X, test), y[test], (0.0, 1 / 3, 2 / 3)


def run_seed(dataset, seed, quick):
    X_train, y_train, X_test, y_test, rates = _split(dataset, seed, quick)
    tests = {float(rate): apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    rows = []
    for standardize in (False, True):
        start = time.perf_counter()
        model = DyMoClassifier(standardize=standardize, random_state=seed, device="cpu",
                               **(dict(max_epochs=3) if quick else {})).fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        for rate, X_missing in tests.items():
            for mode in ("none", "dymo"):
                model.set_params(selection=mode)
                rows.append(dict(dataset=dataset, seed=seed, standardize=standardize, rate=rate, method=mode,
                                 accuracy=float(np.mean(model.predict(X_missing) == y_test)), fit_s=fit_s))
    print(f"[{dataset}] seed {seed} done", flush=True)
    return rows


def report(records, command):
    frame = pd.DataFrame(records)
    table = (frame.groupby(["dataset", "rate", "method", "standardize"])["accuracy"].mean() * 100).unstack()
    table.columns = [f"standardize={value}" for value in table.columns]
    table["difference"] = table["standardize=True"] - table["standardize=False"]
    spread = (frame.pivot_table(index=["dataset", "rate", "method", "seed"], columns="standardize",
                                values="accuracy").diff(axis=1)[True] * 100).groupby(level=[0, 1, 2]).std()
    table["sd of difference"] = spread
    lines = ["# In-network standardisation", "", f"Produced by `{command}`: shipped `DyMoClassifier` "
             "(default recoverer), `standardize=False` vs `True`, mean accuracy (%) over seeds "
             f"{sorted(frame.seed.unique().tolist())}; `breast_cancer` views are standardised before "
             "fitting (as in every other benchmark), `breast_cancer_raw` ones are not.", "",
             "| data set | η | method | standardize=False | standardize=True | difference | sd of difference |",
             "|---|---|---|---|---|---|---|"]
    for (dataset, rate, method), row in table.iterrows():
        lines.append(f"| {dataset} | {rate:.2f} | {method} | {row['standardize=False']:.1f} | "
                     f"{row['standardize=True']:.1f} | {row['difference']:+.1f} | {row['sd of difference']:.1f} |")
    raw = frame[(frame.dataset == "breast_cancer_raw") & frame.standardize].groupby(["rate", "method"]).accuracy.mean()
    scaled = frame[(frame.dataset == "breast_cancer") & frame.standardize].groupby(["rate", "method"]).accuracy.mean()
    if len(raw) and len(scaled):
        gap = ((raw - scaled) * 100).abs()
        lines += ["", f"Raw vs standardised breast-cancer views, `standardize=True`: largest gap "
                      f"{gap.max():.1f} points over every η and method."]
    fits = frame.groupby(["dataset", "standardize"]).fit_s.mean().unstack()
    lines += ["", "Fit time (s, mean over seeds, 1 torch thread):", "", "| data set | False | True |", "|---|---|---|"]
    lines += [f"| {dataset} | {row[False]:.1f} | {row[True]:.1f} |" for dataset, row in fits.iterrows()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    benchmark_main("standardize", run_seed, report, argv, datasets=DATASETS)


if __name__ == "__main__":
    main()
