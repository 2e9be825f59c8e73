"""MARS next to DyMo and the discard/impute baselines on the same splits (issue 7).
Writes docs/mars.md and docs/mars.json.

Run: ``python -m benchmarks.mars`` (``--quick``: 1 seed, fewer epochs). One torch thread.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from sklearn.impute import KNNImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.common import output_folder
from dymo_sklearn import DyMoClassifier, MARSClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits

RATES = (0.0, 0.4, 0.8)
NETWORK = dict(d_model=32, n_heads=4, n_layers=2, lr=3e-3, early_stopping=False, device="cpu")


def flat(X):
    return np.concatenate([X[name].reshape(len(X[name]), -1) for name in X], axis=1)


def methods(epochs):
    return {
        "MARS": lambda seed: MARSClassifier(max_epochs=epochs, random_state=seed, **NETWORK),
        "MARS, no residual router": lambda seed: MARSClassifier(max_epochs=epochs, residual_router=False,
                                                                 random_state=seed, **NETWORK),
        "MARS, no noise": lambda seed: MARSClassifier(max_epochs=epochs, noise=False, random_state=seed, **NETWORK),
        "MARS, no load balance": lambda seed: MARSClassifier(max_epochs=epochs, load_balance_weight=0.0,
                                                              random_state=seed, **NETWORK),
    }


def run(seeds, epochs):
    rows = []
    for seed in seeds:
        X, y = make_multiview_digits(5, background=1.0, random_state=seed)
        order = np.random.default_rng(seed).permutation(len(y))
        train, test = order[:1300], order[1300:]
        tests = {rate: apply_missing(X[test], rate, random_state=seed) for rate in RATES}

        def record(name, fit, predict):
            start = time.perf_counter()
            model = fit()
            fit_s = time.perf_counter() - start
            for rate, X_test in tests.items():
                start = time.perf_counter()
                accuracy = float(np.mean(predict(model, X_test) == y[test]))
                rows.append(dict(seed=seed, method=name, rate=rate, accuracy=accuracy, fit_s=fit_s,
                                 predict_s=time.perf_counter() - start))
                print(rows[-1], flush=True)

        for name, build in methods(epochs).items():
            record(name, lambda build=build: build(seed).fit(X[train], y[train]), lambda m, Xt: m.predict(Xt))
        dymo = DyMoClassifier(recoverer=KNNImputer(), max_epochs=epochs, aux_warmup=5, random_state=seed, **NETWORK)
        start = time.perf_counter()
        dymo.fit(X[train], y[train])
        fit_s = time.perf_counter() - start
        for selection in ("none", "all", "dymo"):
            dymo.set_params(selection=selection)
            for rate, X_test in tests.items():
                start = time.perf_counter()
                accuracy = float(np.mean(dymo.predict(X_test) == y[test]))
                rows.append(dict(seed=seed, method=f"DyMo {selection} (KNN, threshold 0)", rate=rate,
                                 accuracy=accuracy, fit_s=fit_s, predict_s=time.perf_counter() - start))
        record("KNNImputer + LogisticRegression",
               lambda: make_pipeline(KNNImputer(), StandardScaler(), LogisticRegression(max_iter=500)).fit(
                   flat(X[train]), y[train]),
               lambda m, Xt: m.predict(flat(Xt)))
    return rows


def table(rows):
    methods_seen = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["| method | " + " | ".join(f"η={r}" for r in RATES) + " | fit (s) | predict η=0.8 (s) |",
             "|---|" + "---|" * (len(RATES) + 2)]
    for method in methods_seen:
        cells = []
        for rate in RATES:
            values = 100 * np.array([r["accuracy"] for r in rows if r["method"] == method and r["rate"] == rate])
            cells.append(f"{values.mean():.1f} ± {values.std():.1f}")
        fit_s = np.mean([r["fit_s"] for r in rows if r["method"] == method])
        predict_s = np.mean([r["predict_s"] for r in rows if r["method"] == method and r["rate"] == 0.8])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {fit_s:.1f} | {predict_s:.2f} |")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds, epochs = ([0], 5) if args.quick else ([0, 1, 2], 20)
    start = time.perf_counter()
    rows = run(seeds, epochs)
    suffix = "_quick" if args.quick else ""
    (output_folder(args.quick) / f"mars{suffix}.json").write_text(json.dumps(rows, indent=1))
    lines = ["# MARS next to DyMo", "",
             f"`python -m benchmarks.mars{' --quick' if args.quick else ''}` — PolyMNIST-like digits, M = 5, "
             f"1,300 training tuples (complete), test tuples with round(η·5) modalities missing; {len(seeds)} "
             f"seed(s), {epochs} epochs, fixed (no early stopping), {(time.perf_counter() - start) / 60:.1f} min "
             f"on {os.cpu_count()} CPU cores, 1 torch thread. Accuracy in %, mean ± std over seeds; the same splits and missing "
             "test sets for every method.", "", *table(rows)]
    (output_folder(args.quick) / f"mars{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))



if __name__ == "__main__":
    main()
