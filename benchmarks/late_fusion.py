"""Late fusion: one model per modality, the baseline a user already has (issue 33).

For each modality: a logistic regression, an RBF SVC and a HistGradientBoosting classifier,
each with its hyper-parameters chosen by a 3-fold inner cross-validation on the training data
(LogReg's C, SVC's C and gamma, HGB's learning rate and leaves), and ``DyMoClassifier()`` as
shipped trained on that modality alone. SVC's probabilities are Platt-scaled
(``CalibratedClassifierCV(method="sigmoid", ensemble=False)``, scikit-learn's replacement for
``SVC(probability=True)``). At prediction each sample's observed modalities (some entry
observed) give probabilities, fused by their mean or their product (the sum of
log-probabilities). The splits and test masks are those of ``benchmarks.dilemma``
(``load_split``, ``apply_missing`` with ``random_state=1000 * seed + i``), so the figures sit
beside DyMo's on the same samples.

    python -m benchmarks.late_fusion --datasets polymnist_digits breast_cancer --seeds 0 1 2
    python -m benchmarks.late_fusion --kinds network --name late_fusion_network   # the networks
    python -m benchmarks.late_fusion --quick          # a smoke run into build/benchmarks/
    python -m benchmarks.late_fusion --report-from benchmarks/results/late_fusion.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing

from .common import load_split

RESULTS = Path(__file__).parent / "results"
QUICK_OUT = Path("build/benchmarks")
DATASETS = ("polymnist_digits", "polymnist_mnist", "breast_cancer")
KINDS = ("LogReg", "SVC", "HGB", "network")
FUSIONS = ("mean", "product")


def candidates(kind, n_features, seed):
    """(estimator, grid) a careful user would tune for one modality of ``n_features`` features."""
    impute = SimpleImputer(keep_empty_features=True)  # partly observed rows; training is complete here
    if kind == "LogReg":
        return (make_pipeline(impute, StandardScaler(), LogisticRegression(max_iter=2000)),
                {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]})
    if kind == "SVC":
        # gamma around scikit-learn's "scale", 1 / n_features for standardised features
        return (make_pipeline(impute, StandardScaler(), SVC(random_state=seed)),
                {"svc__C": [1.0, 10.0, 100.0], "svc__gamma": [g / n_features for g in (0.3, 1.0, 3.0)]})
    if kind == "HGB":
        return (HistGradientBoostingClassifier(random_state=seed),
                {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]})
    raise ValueError(kind)


class ModalityNetwork:
    """``DyMoClassifier()`` as shipped, trained on one modality alone (its defaults, no search)."""

    def __init__(self, shape, seed):
        self.shape, self.seed = shape, seed

    def fit(self, X, y):
        self.model_ = DyMoClassifier(random_state=self.seed, device="cpu").fit({"m": X.reshape(-1, *self.shape)}, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba({"m": X.reshape(-1, *self.shape)})


def fit_modality(kind, X, y, seed):
    """The tuned model of one modality, refitted on all training rows with probabilities."""
    if kind == "network":
        return ModalityNetwork(X.shape[1:], seed).fit(X, y), {}
    X = X.reshape(len(X), -1)
    estimator, grid = candidates(kind, X.shape[1], seed)
    search = GridSearchCV(estimator, grid, cv=StratifiedKFold(3, shuffle=True, random_state=seed), n_jobs=1)
    search.fit(X, y)
    best = clone(estimator).set_params(**search.best_params_)
    if kind == "SVC":
        # Platt scaling fitted after the choice of C and gamma: what SVC(probability=True) did
        # before scikit-learn 1.9 deprecated it for this form.
        best = CalibratedClassifierCV(best, method="sigmoid", cv=5, ensemble=False)
    return best.fit(X, y), search.best_params_


def fuse(models, X, classes):
    """Mean and product fusion of the observed modalities' probabilities, (n, K) each."""
    n = len(next(iter(X.values())))
    log_sum = np.zeros((n, len(classes)))
    prob_sum = np.zeros((n, len(classes)))
    for name, model in models.items():
        flat = X[name].reshape(n, -1)
        observed = ~np.isnan(flat).all(axis=1)
        if not observed.any():
            continue
        proba = np.zeros((observed.sum(), len(classes)))
        proba[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(flat[observed])
        prob_sum[observed] += proba
        log_sum[observed] += np.log(np.clip(proba, 1e-12, None))
    return {"mean": classes[prob_sum.argmax(1)], "product": classes[log_sum.argmax(1)]}


def run_seed(dataset, seed, quick, kinds=KINDS):
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    tests = {float(rate): apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    classes = np.unique(y_train)
    records, fits = [], []
    for kind in kinds:
        start = time.perf_counter()
        models, chosen = {}, {}
        for name, values in X_train.items():
            models[name], chosen[name] = fit_modality(kind, np.asarray(values), y_train, seed)
        fits.append(dict(dataset=dataset, seed=seed, kind=kind, fit_s=time.perf_counter() - start,
                         chosen={name: {k: float(v) for k, v in p.items()} for name, p in chosen.items()}))
        for rate, X_missing in tests.items():
            for fusion, predicted in fuse(models, {k: np.asarray(v) for k, v in X_missing.items()}, classes).items():
                records.append(dict(dataset=dataset, seed=seed, rate=rate, method=f"{kind} ({fusion})",
                                    accuracy=float(np.mean(predicted == y_test))))
    print(f"[{dataset}] seed {seed} done", flush=True)
    return records, fits


def dilemma_record(dataset):
    """The committed dilemma record that holds ``dataset``'s runs."""
    return RESULTS / {"polymnist_fashion": "dilemma_fashion.json", "features_mnist": "dilemma_features.json",
                      "features_fashion": "dilemma_features.json"}.get(dataset, "dilemma.json")


# DyMoClassifier's shipped rows from before single passes and teachers became its defaults: the
# baseline of the experiments that measured them (teachers, late_fusion_choice, device_fit).
EARLIER_DEFAULT = RESULTS / "earlier_default.json"


def _dymo_rows(dataset, path=None):
    """Shipped DyMo (default recoverer) per η from the dilemma record (or ``path``, a run in its
    format), for the same seeds."""
    frame = pd.DataFrame(json.loads((path or dilemma_record(dataset)).read_text())["records"])
    frame = frame[(frame.dataset == dataset) & (frame.model == "shipped") & (frame.recoverer == "knn")]
    return frame[frame.method.isin(["dymo", "none"])]


def best_at(dataset, rate, seeds):
    """(method, mean accuracy) of the best late fusion at ``rate`` over ``seeds`` in the committed
    ``late_fusion.json``; None where that data set, rate or one of the seeds was not run."""
    path = RESULTS / "late_fusion.json"
    if not path.exists():
        return None
    frame = pd.DataFrame(json.loads(path.read_text())["records"])
    frame = frame[(frame.dataset == dataset) & np.isclose(frame.rate, rate, atol=1e-6) & frame.seed.isin(seeds)]
    if frame.empty or set(frame.seed) != set(seeds):
        return None
    means = frame.groupby("method").accuracy.mean()
    return means.idxmax(), float(means.max())


def report(run, command):
    records = pd.DataFrame(run["records"])
    merged = [f"merges `python -m benchmarks.late_fusion {' '.join(part)}`" for part in run.get("parts", [])]
    lines = ["# Late fusion of per-modality models beside DyMo", "",
             f"`python -m benchmarks.late_fusion {' '.join(command)}`", "", *merged, *([""] if merged else []),
             "Accuracy (%), mean ± sd over the seeds shown, on the test samples and masks of the dilemma "
             "benchmark. Each modality's LogReg, RBF SVC (Platt) and HGB is tuned by 3-fold inner CV on the "
             "training data, and `network` is `DyMoClassifier()` trained on that modality alone; the observed "
             "modalities' probabilities are averaged (mean) or multiplied (product). DyMo and its own `none` "
             "are the shipped model's rows of the dilemma record.", ""]
    for dataset, part in records.groupby("dataset", sort=False):
        seeds = sorted(part.seed.unique())
        rates = sorted(part.rate.unique())
        table = part.groupby(["method", "rate"]).accuracy.agg(["mean", "std"]).reset_index()
        dymo = _dymo_rows(dataset) if not run.get("quick") else _dymo_rows(dataset).iloc[:0]  # other splits
        dymo = dymo[dymo.seed.isin(seeds)].groupby(["method", "rate"]).accuracy.agg(["mean", "std"]).reset_index()
        lines += [f"## {dataset} (seeds {', '.join(map(str, seeds))})", "",
                  "| method | " + " | ".join(f"η = {r:.2f}" for r in rates) + " |",
                  "|---|" + "---|" * len(rates)]
        for label, rows in [*((f"late fusion, {m}", table[table.method == m]) for m in table.method.unique()),
                            ("DyMo (shipped)", dymo[dymo.method == "dymo"]),
                            ("DyMo's own none", dymo[dymo.method == "none"])]:
            cells = []
            for rate in rates:
                row = rows[np.isclose(rows.rate, rate)]
                cells.append(f"{100 * row['mean'].iloc[0]:.1f} ± {100 * np.nan_to_num(row['std'].iloc[0]):.1f}"
                             if len(row) else "—")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        best = table.loc[table.groupby("rate")["mean"].idxmax()]
        top = max(rates)
        best_top = best[np.isclose(best.rate, top)].iloc[0]
        dymo_top = dymo[(dymo.method == "dymo") & np.isclose(dymo.rate, top)]
        gap = (f"; DyMo {100 * dymo_top['mean'].iloc[0]:.1f}, gap {100 * (dymo_top['mean'].iloc[0] - best_top['mean']):+.1f}"
               if len(dymo_top) else "")
        lines += ["", f"At η = {top:.2f} the best late fusion is {best_top.method} with "
                  f"{100 * best_top['mean']:.1f}{gap}.", ""]
    times = pd.DataFrame(run["fits"]).groupby(["dataset", "kind"]).fit_s.mean().unstack()
    lines += ["## Fit time (s, every modality, inner CV included; one thread)", "",
              "| data set | " + " | ".join(times.columns) + " |", "|---|" + "---|" * len(times.columns)]
    lines += [f"| {dataset} | " + " | ".join(f"{value:.1f}" for value in row) + " |"
              for dataset, row in times.iterrows()]
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--name", default=None)
    parser.add_argument("--report-from", nargs="+", default=None, help="merge and re-render json records")
    args = parser.parse_args(argv)
    out = QUICK_OUT if args.quick else RESULTS
    name = args.name or ("late_fusion_quick" if args.quick else "late_fusion")
    if args.report_from:
        runs = [json.loads(Path(p).read_text()) for p in args.report_from]
        run = {key: [row for r in runs for row in r[key]] for key in ("records", "fits")}
        run["quick"] = any(r.get("quick") for r in runs)
        run["parts"] = [r.get("parts") or [r.get("command", [])] for r in runs]
        run["parts"] = [part for parts in run["parts"] for part in parts]  # the commands that fitted
        command = ["--report-from", *args.report_from]
    else:
        seeds = args.seeds[:1] if args.quick else args.seeds
        tasks = [(d, s, args.quick, tuple(args.kinds)) for d in args.datasets for s in seeds]
        results = Parallel(n_jobs=args.jobs)(delayed(run_seed)(*task) for task in tasks)
        run = {"records": [r for rec, _ in results for r in rec], "fits": [f for _, fit in results for f in fit]}
        command = list(argv if argv is not None else sys.argv[1:])
    out.mkdir(parents=True, exist_ok=True)
    run = {**run, "command": command, "quick": bool(args.quick or run.get("quick"))}
    (out / f"{name}.json").write_text(json.dumps(run, indent=1))
    (out / f"{name}.md").write_text(report(run, command))
    print((out / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
