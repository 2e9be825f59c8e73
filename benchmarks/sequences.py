"""Sequence encoder vs flattening, on real accelerometer and gyroscope recordings.

UEA BasicMotions (``dymo_sklearn.datasets.load_basic_motions``; its files ship in the ``aeon``
wheel): 80 recordings, 4 classes, two modalities of shape (3, 100). Per seed a stratified 40/40
split; test samples miss one of the two modalities with probability η. Shipped
``DyMoClassifier`` (default recoverer) with ``encoders="sequence"`` for both modalities vs the
default flattening MLP, and KNNImputer + logistic regression on the flattened recordings.

    python -m benchmarks.sequences                 # benchmarks/results/sequences.md and benchmarks/results/sequences.json
    python -m benchmarks.sequences --quick         # smoke run into build/benchmarks/
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.impute import KNNImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, load_basic_motions

from .accuracy import flat
from .common import benchmark_main, subset

RATES = (0.0, 0.5)


def run_seed(seed, quick):
    X, y = load_basic_motions()
    train, test = train_test_split(np.arange(len(y)), test_size=0.5, stratify=y, random_state=seed)
    X_train, X_test = subset(X, train), subset(X, test)
    tests = {rate: apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(RATES)}
    extra = dict(max_epochs=3) if quick else {}
    models = {
        "DyMo, sequence encoders": DyMoClassifier(encoders={name: "sequence" for name in X}, random_state=seed,
                                                  device="cpu", **extra),
        "DyMo, flattened (default)": DyMoClassifier(random_state=seed, device="cpu", **extra),
    }
    rows = []
    for label, model in models.items():
        start = time.perf_counter()
        model.fit(X_train, y[train])
        fit_s = time.perf_counter() - start
        for rate, X_missing in tests.items():
            for mode in ("none", "dymo"):
                model.set_params(selection=mode)
                rows.append(dict(seed=seed, model=label, method=mode, rate=rate, fit_s=fit_s,
                                 accuracy=float(np.mean(model.predict(X_missing) == y[test]))))
    peer = make_pipeline(KNNImputer(), StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    peer.fit(flat(X_train), y[train])
    for rate, X_missing in tests.items():
        rows.append(dict(seed=seed, model="KNNImputer + LogReg (flattened)", method="-", rate=rate, fit_s=np.nan,
                         accuracy=float(np.mean(peer.predict(flat(X_missing)) == y[test]))))
    print(f"seed {seed} done", flush=True)
    return rows


def report(records, command):
    frame = pd.DataFrame(records)
    grouped = frame.groupby(["model", "method", "rate"])["accuracy"]
    table = pd.DataFrame({"mean": grouped.mean() * 100, "sd": grouped.std() * 100}).reset_index()
    seeds = sorted(frame.seed.unique().tolist())
    lines = ["# Sequence encoder vs flattening (BasicMotions)", "",
             f"Produced by `{command}`: {len(seeds)} stratified 40/40 splits (seeds {seeds}) of the 80 UEA "
             "BasicMotions recordings; accelerometer and gyroscope are the two modalities, each (3, 100); a "
             "test sample misses one of them with probability η. Accuracy in % (mean and standard deviation "
             "over splits). Shipped `DyMoClassifier`, default recoverer.", "",
             "| model | selection | " + " | ".join(f"η = {rate}" for rate in RATES) + " |",
             "|---|---|" + "---|" * len(RATES)]
    for (model, method), rows in table.groupby(["model", "method"], sort=False):
        cells = [f"{row['mean']:.1f} ± {row['sd']:.1f}" for _, row in rows.sort_values("rate").iterrows()]
        lines.append(f"| {model} | {method} | " + " | ".join(cells) + " |")
    fits = frame.dropna(subset=["fit_s"]).groupby("model").fit_s.mean()
    lines += ["", "Fit time (s, mean over splits, 1 torch thread): "
              + ", ".join(f"{model} {seconds:.1f}" for model, seconds in fits.items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    benchmark_main("sequences", run_seed, report, argv, seeds=range(10))


if __name__ == "__main__":
    main()
