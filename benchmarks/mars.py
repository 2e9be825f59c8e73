"""MARS: its ablations, its routers' agreement, and DyMo and the simple pipelines on the same splits.

For each data set and seed: MARS at the benchmark's network settings with each ablation (no
residual router, no noise, no load balancing) and a sweep of ``noise_scale``; ``MARSClassifier()``
and ``DyMoClassifier()`` exactly as shipped; KNNImputer + LogisticRegression. Held-out agreement
of the feature router with the residual router (``routing_agreement`` on the complete test
tuples) is reported for every MARS variant that has both routers.

Run: ``python -m benchmarks.mars`` (``--quick``: 1 seed, few epochs, into build/benchmarks/).
One torch thread unless ``--threads``. Writes benchmarks/results/mars.md and benchmarks/results/mars.json.
``--shipped-only`` fits only ``MARSClassifier()`` as shipped and the pipeline, and reads shipped
DyMo's figures on the same splits and masks from the dilemma record (``dilemma_features.json`` for
the feature tables), for merging into a full run with ``--report-from``::

    python -m benchmarks.mars --datasets features_mnist features_fashion --shipped-only --name mars_features

``--candidates`` adds, beside ``--shipped-only``'s fits, MARS with the paper's training
(``single_passes=False, teacher_weight=0.0``: one random sub-pattern per sample and batch, no
teachers), the shipped model with ``entry_dropout=0.2`` (DyMo's value) and without the
per-modality teachers (``teacher_weight=0.0``, the default until teachers won this benchmark);
names pick some of them. The records were made with the defaults of their day (``mars_passes``:
single passes as the candidate; ``mars_teachers``: teachers as the candidate), relabelled so that
"as shipped" names the shipped model::

    python -m benchmarks.mars --datasets features_mnist features_fashion --shipped-only --candidates --name mars_passes
    python -m benchmarks.mars --datasets breast_cancer features_mnist features_fashion --shipped-only --candidates no_teachers --name mars_teachers
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from sklearn.impute import KNNImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dymo_sklearn import DyMoClassifier, MARSClassifier
from dymo_sklearn.experimental import MARSResearchClassifier
from dymo_sklearn.datasets import apply_missing

from .accuracy import flat
from .common import benchmark_main, load_split
from .late_fusion import dilemma_record

DATASETS = ("polymnist_digits", "breast_cancer")
NETWORK = dict(d_model=32, n_heads=4, n_layers=2, lr=3e-3, early_stopping=False, device="cpu")
EPOCHS = {"polymnist_digits": 20, "breast_cancer": 40}
SHIPPED_NOISE = MARSResearchClassifier().noise_scale
SHIPPED = "MARSClassifier() as shipped (single passes + teachers)"
NOISE_SWEEP = (2.0, 10.0)


def mars_variants(epochs):
    """Name -> parameters of the MARS fits at the benchmark's network settings."""
    base = dict(max_epochs=epochs, **NETWORK)
    variants = {
        "MARS": base,
        "MARS, no residual router": {**base, "residual_router": False},
        "MARS, no noise": {**base, "noise": False},
        "MARS, no load balance": {**base, "load_balance_weight": 0.0},
    }
    for scale in NOISE_SWEEP:
        variants[f"MARS, noise_scale={scale:g}"] = {**base, "noise_scale": scale}
    variants[SHIPPED] = dict(device="cpu")
    variants["MARSClassifier(patience=5)"] = dict(device="cpu", patience=5)
    return variants


def dilemma_dymo_rows(dataset, seed):
    """Shipped DyMo (default recoverer) per η, with its fit time, from the committed dilemma record."""
    path = dilemma_record(dataset)
    name = path.name
    run = json.loads(path.read_text())
    fit_s = [f["fit_s"] for f in run["fits"]
             if (f["dataset"], f["seed"], f["model"], f["recoverer"]) == (dataset, seed, "shipped", "knn")]
    rows = [dict(dataset=dataset, seed=seed, method="DyMoClassifier() as shipped", rate=r["rate"],
                 accuracy=r["accuracy"], fit_s=fit_s[0], predict_s=None)
            for r in run["records"] if (r["dataset"], r["seed"], r["model"], r["recoverer"], r["method"])
            == (dataset, seed, "shipped", "knn", "dymo")]
    if not rows or len(fit_s) != 1:
        raise ValueError(f"{name} has no single shipped run of {dataset}, seed {seed}")
    return rows


CANDIDATES = {"MARS, paper's training": dict(single_passes=False, teacher_weight=0.0),
              "MARS, + entry dropout 0.2": dict(entry_dropout=0.2),
              "MARS, single passes without teachers (the earlier default)": dict(teacher_weight=0.0)}
# --candidates NAME ...: these names pick some of them (none named: every one).
CANDIDATE_NAMES = dict(zip(("paper", "entry_dropout", "no_teachers"), CANDIDATES))


def run_seed(dataset, seed, quick, shipped_only=False, candidates=None):
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    tests = {rate: apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    epochs = 3 if quick else EPOCHS.get(dataset, 40)
    rows = []

    def record(method, model, fit_s, agreement=None, prepare=lambda X: X):
        for rate, X_missing in tests.items():
            start = time.perf_counter()
            predicted = model.predict(prepare(X_missing))
            rows.append(dict(dataset=dataset, seed=seed, method=method, rate=rate,
                             accuracy=float(np.mean(predicted == y_test)), fit_s=fit_s,
                             predict_s=time.perf_counter() - start, **(agreement or {})))
        print(rows[-1], flush=True)

    variants = mars_variants(epochs)
    if shipped_only:
        variants = {method: params for method, params in variants.items() if method == SHIPPED}
    if candidates is not None:  # research options at the shipped settings otherwise
        chosen = [CANDIDATE_NAMES[name] for name in candidates] or list(CANDIDATES)
        variants.update({method: dict(device="cpu", **CANDIDATES[method]) for method in chosen})
    for method, params in variants.items():
        if quick and ("MARSClassifier(" in method or method in CANDIDATES):
            params = {**params, "max_epochs": epochs}
        # The variants set research options; the shipped rows are MARSClassifier itself.
        estimator = MARSClassifier if "MARSClassifier(" in method else MARSResearchClassifier
        model = estimator(random_state=seed, **params)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        agreement = model.routing_agreement(X_test, random_state=seed) if getattr(model, "residual_router", True) else None
        record(method, model, fit_s, agreement)
    if shipped_only and not quick:
        rows += dilemma_dymo_rows(dataset, seed)
    else:
        dymo = DyMoClassifier(random_state=seed, device="cpu", **(dict(max_epochs=epochs) if quick else {}))
        start = time.perf_counter()
        dymo.fit(X_train, y_train)
        record("DyMoClassifier() as shipped", dymo, time.perf_counter() - start)
    start = time.perf_counter()
    model = knn_pipeline().fit(flat(X_train), y_train)
    record("KNNImputer + LogisticRegression", model, time.perf_counter() - start, prepare=flat)
    return rows


def knn_pipeline():
    return make_pipeline(KNNImputer(), StandardScaler(), LogisticRegression(max_iter=1000))


def _cell(values):
    values = 100 * np.asarray(values)
    return f"{values.mean():.1f} ± {values.std():.1f}"


def report(records, command):
    counted = ", ".join(f"{dataset} {len({r['seed'] for r in records if r['dataset'] == dataset})}"
                        for dataset in dict.fromkeys(r["dataset"] for r in records))
    lines = ["# MARS: ablations, router agreement, and DyMo", "",
             f"`{command}` — seeds per data set: {counted}; {torch.get_num_threads()} torch thread(s). "
             "Accuracy in %, mean ± std over seeds; "
             "the same splits and missing test sets for every method (each test sample misses round(η·M) "
             "random modalities). MARS rows above the shipped one use d_model 32, lr 3e-3 and a fixed number "
             f"of epochs ({', '.join(f'{d}: {e}' for d, e in EPOCHS.items())}), shipped noise_scale "
             f"{SHIPPED_NOISE:g} unless named. Rows of runs made before MARS trained with single passes "
             "(the ablations of `mars.json`) use the paper's training, one random sub-pattern per sample. "
             "*top-1 / top-k agreement*: held-out `routing_agreement` "
             "(complete test tuples, random sub-patterns), in %. Hand-written reading: "
             "[mars_method.md](mars_method.md).", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        rates = sorted({r["rate"] for r in rows})
        lines += [f"## {dataset}", "",
                  "| method | " + " | ".join(f"η={rate:.2f}" for rate in rates)
                  + " | top-1 agreement | top-k agreement | fit (s) |",
                  "|---|" + "---|" * (len(rates) + 3)]
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["method"] == method]
            cells = [_cell([r["accuracy"] for r in mine if r["rate"] == rate]) for rate in rates]
            first = [r for r in mine if r["rate"] == rates[0]]
            agreement = (["–", "–"] if "top1" not in first[0] else
                         [_cell([r["top1"] for r in first]), _cell([r["top_k"] for r in first])])
            fit_s = np.mean([r["fit_s"] for r in first])
            lines.append(f"| {method} | " + " | ".join(cells + agreement) + f" | {fit_s:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    options = {"--shipped-only": {"action": "store_true",
                                  "help": "only MARSClassifier() as shipped and the pipeline; DyMo from the dilemma record"},
               "--candidates": {"nargs": "*", "default": None, "choices": list(CANDIDATE_NAMES),
                                "help": "add research candidates at the shipped settings: the paper's training, "
                                        "entry dropout, no teachers (none named: all three)"}}
    benchmark_main("mars", run_seed, report, argv, datasets=DATASETS, options=options)


if __name__ == "__main__":
    main()
