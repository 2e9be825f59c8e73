"""The information limit at the highest missing rate: banks of pattern specialists next to DyMo.

At a given missing pattern, a recovered modality carries no information the observed ones lack,
so a classifier trained on exactly the observed modalities is the reference DyMo should reach.
For every data set and seed of the dilemma benchmark, on the same test set at its highest η
(``benchmarks.dilemma``: same split, same ``apply_missing`` seed), this fits one specialist per
missing pattern of three kinds: a logistic regression, an RBF support vector machine and the
same network as ``DyMoClassifier()`` as shipped, trained on exactly the pattern's modalities. It
reports each bank, the per-pattern best of the three (chosen on the test set: optimistic) and
shipped DyMo's accuracy on the same samples, read from ``docs/dilemma.json`` (and
``docs/dilemma_fashion.json``).

    python -m benchmarks.specialists      # docs/specialists.md and docs/specialists.json
    python -m benchmarks.specialists --datasets polymnist_fashion --seeds 0 --threads 1 --name specialists_fashion
    python -m benchmarks.specialists --quick
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing

from .accuracy import flat
from .common import benchmark_main, load_split, params_label
from .dilemma import DATASETS, SHIPPED

KINDS = ("LogReg", "SVC (RBF)", "network")


def specialist(kind, seed, quick, network_params):
    if kind == "LogReg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    if kind == "SVC (RBF)":
        return make_pipeline(StandardScaler(), SVC())
    return DyMoClassifier(random_state=seed, device="cpu", selection="none",
                          **{**network_params, **({"max_epochs": 3} if quick else {})})


def observed_patterns(X):
    names = list(X)
    return names, np.stack([~np.isnan(np.asarray(X[n]).reshape(len(X[n]), -1)).all(1) for n in names], 1)


def run_seed(dataset, seed, quick, network_params=None):
    network_params = network_params or {}
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    top = len(rates) - 1
    X_missing = apply_missing(X_test, rates[top], random_state=1000 * seed + top)  # as benchmarks.dilemma
    names, observed = observed_patterns(X_missing)
    rows = []
    for pattern in np.unique(observed, axis=0):
        chosen = [n for n, keep in zip(names, pattern) if keep]
        samples = (observed == pattern).all(1)
        for kind in KINDS:
            model = specialist(kind, seed, quick, network_params)
            start = time.perf_counter()
            if kind == "network":
                model.fit({n: X_train[n] for n in chosen}, y_train)
                predicted = model.predict({n: np.asarray(X_missing[n])[samples] for n in chosen})
            else:
                model.fit(flat({n: X_train[n] for n in chosen}), y_train)
                predicted = model.predict(flat({n: np.asarray(X_missing[n])[samples] for n in chosen}))
            rows.append(dict(dataset=dataset, seed=seed, quick=quick, rate=float(rates[top]), pattern="+".join(chosen),
                             kind=kind, n_samples=int(samples.sum()), correct=int((predicted == y_test[samples]).sum()),
                             fit_s=time.perf_counter() - start, network_params=network_params))
            print(rows[-1], flush=True)
    return rows


def dilemma_dymo(paths=(Path("docs/dilemma.json"), Path("docs/dilemma_fashion.json"))):
    """(dataset, seed, rate) -> shipped dymo accuracy with the default recoverer, from the dilemma runs."""
    records = [r for path in paths if path.is_file() for r in json.loads(path.read_text())["records"]]
    return {(r["dataset"], r["seed"], round(r["rate"], 6)): r["accuracy"] for r in records
            if r["model"] == SHIPPED and r["recoverer"] == "knn" and r["method"] == "dymo"}


def trained_as(network_params, path=Path("docs/training_length.json")):
    """The same mapping for DyMo trained with ``network_params``, from the training-length run."""
    if not path.is_file():
        return {}
    return {(r["dataset"], r["seed"], round(r["rate"], 6)): r["accuracy"] for r in json.loads(path.read_text())
            if r["model"] == params_label(network_params) and r["method"] == "dymo"}


def report(records, command):
    network_params = records[0].get("network_params") or {}
    if any(r["quick"] for r in records):  # a smoke run has other splits
        dymo = {}
    else:
        dymo = trained_as(network_params) if network_params else dilemma_dymo()
    trained = f" with `{params_label(network_params)}`" if network_params else ""
    source = ("docs/training_length.json, trained the same way" if network_params else
              "docs/dilemma.json (docs/dilemma_fashion.json for Fashion-MNIST)")
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    title = "# Pattern specialists at the highest missing rate"
    title += "" if set(datasets) == set(DATASETS) else f": {', '.join(datasets)}"
    title += f" (trained with {params_label(network_params)})" if network_params else ""
    lines = [title, "",
             f"`{command}` — {torch.get_num_threads()} torch thread(s). Each test sample at the dilemma benchmark's highest η is "
             "classified by specialists trained on exactly its observed modalities (same split and missing test "
             f"set as [dilemma.md](dilemma.md)). *network*: `DyMoClassifier()` as shipped{trained}, fitted on "
             "those modalities only. *best per pattern*: for each pattern the best of the three on the test samples "
             f"(optimistic: chosen on the test set). *DyMo*: shipped{trained}, default recoverer, from {source}. "
             "Accuracy in %, mean ± sd over seeds.", "",
             "| data set | η | LogReg | SVC (RBF) | network | best per pattern | DyMo | DyMo − best |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in datasets:
        mine = [r for r in records if r["dataset"] == dataset]
        seeds = sorted({r["seed"] for r in mine})
        per_kind = {kind: [] for kind in KINDS}
        best, dymo_values = [], []
        for seed in seeds:
            rows = [r for r in mine if r["seed"] == seed]
            total = sum(r["n_samples"] for r in rows if r["kind"] == KINDS[0])
            for kind in KINDS:
                per_kind[kind].append(sum(r["correct"] for r in rows if r["kind"] == kind) / total)
            patterns = {r["pattern"] for r in rows}
            best.append(sum(max(r["correct"] for r in rows if r["pattern"] == p) for p in patterns) / total)
            key = (dataset, seed, round(rows[0]["rate"], 6))
            if key in dymo:
                dymo_values.append(dymo[key])

        def cell(values):
            return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}" if values else "–"

        gap = (f"{100 * (np.mean(dymo_values) - np.mean(best)):+.1f}" if len(dymo_values) == len(seeds) else "–")
        lines.append(f"| {dataset} | {mine[0]['rate']:.2f} | " + " | ".join(cell(per_kind[k]) for k in KINDS)
                     + f" | {cell(best)} | {cell(dymo_values if len(dymo_values) == len(seeds) else [])} | {gap} |")
    fit = {kind: np.mean([r["fit_s"] for r in records if r["kind"] == kind]) for kind in KINDS}
    lines += ["", "Mean fit time of one specialist (s): " + ", ".join(f"{k} {v:.1f}" for k, v in fit.items()) + ".", ""]
    return "\n".join(lines)


def main(argv=None):
    options = {"--network-params": {"type": json.loads, "default": None,
                                    "help": 'JSON of DyMoClassifier parameters for the network specialists, e.g. '
                                            '\'{"max_epochs": 100, "patience": 10}\' (DyMo is then read from '
                                            'docs/training_length.json)'}}
    benchmark_main("specialists", run_seed, report, argv, datasets=DATASETS, options=options)


if __name__ == "__main__":
    main()
