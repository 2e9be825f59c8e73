"""Unlabeled rows: what DyMo gains when its recoverer learns from more rows than it has labels for (issue 36).

Per data set and seed, a few labeled training rows, a pool of unlabeled ones (complete, like the
labeled rows) and test rows missing a fraction η of their modalities (``apply_missing``):

- ``DyMo, labeled only`` and ``DyMo + unlabeled`` (the pool labelled -1 in ``fit``): the shipped
  ``DyMoClassifier()``, selections ``dymo``, ``all`` and ``none``;
- labeled-only peers: ``KNNImputer + LogReg`` and late fusion of per-view LogReg (mean);
- peers using the same pool: ``KNNImputer`` fitted on labeled + unlabeled rows then LogReg on
  the labeled ones, and late fusion of per-view ``SelfTrainingClassifier(LogReg)`` (mean).

    python -m benchmarks.unlabeled --datasets polymnist_mnist features_fashion --labeled 500 --seeds 0 1 2
    python -m benchmarks.unlabeled --datasets polymnist_fashion --labeled 500 2000 --unlabeled 20000
    python -m benchmarks.unlabeled --pool-cost 50000   # time and memory with a 50,000-row pool
    python -m benchmarks.unlabeled --selection-diagnostic  # why DyMo fuses fewer recoveries than help
    python -m benchmarks.unlabeled --selection-diagnostic polymnist_fashion --unlabeled 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.impute import KNNImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import SelfTrainingClassifier

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.experimental import DyMoResearchClassifier

from .accuracy import flat
from .late_fusion import fuse

RESULTS = Path(__file__).parent / "results"
N_UNLABELED = 4000


def load(dataset, seed, n_labeled, n_unlabeled=N_UNLABELED):
    """(X_labeled, y_labeled, X_unlabeled, X_test, y_test, rates)."""
    if dataset in ("polymnist_mnist", "polymnist_fashion"):
        from dymo_sklearn.datasets import make_multiview_fashion, make_multiview_mnist

        # MNIST's tuples recombine the 4,000 digits of its train split, so 4,000 unlabeled tuples
        # already hold every digit the labeled ones do not; Fashion-MNIST draws from 60,000 images
        make = make_multiview_mnist if dataset == "polymnist_mnist" else make_multiview_fashion
        X, y = make(5, n_labeled + n_unlabeled, background=1.0, image_size=14, split="train", random_state=seed)
        X_test, y_test = make(5, 700, background=1.0, image_size=14, split="test", random_state=seed)
        rates = (0.6, 0.8)
    elif dataset == "features_fashion":
        from .feature_views import load_feature_views

        X, y = load_feature_views(dataset, seed, n_images=n_labeled + n_unlabeled + 600)
        X_test, y_test = {k: v[-600:] for k, v in X.items()}, y[-600:]
        X, y = {k: v[:-600] for k, v in X.items()}, y[:-600]
        # standardise each view on the training rows, labeled and unlabeled (no labels needed)
        for name in X:
            scaler = StandardScaler().fit(X[name])
            X[name], X_test[name] = scaler.transform(X[name]), scaler.transform(X_test[name])
        rates = (0.67, 0.83)
    else:
        raise ValueError(dataset)
    X = {k: np.asarray(v, dtype=np.float32) for k, v in X.items()}
    X_test = {k: np.asarray(v, dtype=np.float32) for k, v in X_test.items()}
    labeled = {k: v[:n_labeled] for k, v in X.items()}
    unlabeled = {k: v[n_labeled:] for k, v in X.items()}
    return labeled, y[:n_labeled], unlabeled, X_test, y_test, rates


def run(dataset, seed, n_labeled, n_unlabeled=N_UNLABELED):
    X_lab, y_lab, X_unl, X_test, y_test, rates = load(dataset, seed, n_labeled, n_unlabeled)
    tests = {rate: apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    classes = np.unique(y_lab)
    X_all = {k: np.concatenate([X_lab[k], X_unl[k]]) for k in X_lab}
    y_all = np.concatenate([y_lab, np.full(len(next(iter(X_unl.values()))), -1)])
    records, seconds = [], {}

    def add(method, predict):
        for rate, X in tests.items():
            records.append(dict(dataset=dataset, seed=seed, labeled=n_labeled, unlabeled=n_unlabeled,
                                rate=float(rate), method=method,
                                accuracy=float(np.mean(predict(X) == y_test))))

    for label, (X_fit, y_fit) in {"DyMo, labeled only": (X_lab, y_lab), "DyMo + unlabeled": (X_all, y_all)}.items():
        start = time.perf_counter()
        model = DyMoClassifier(random_state=seed, device="cpu").fit(X_fit, y_fit)
        seconds[label] = time.perf_counter() - start
        for selection in ("dymo", "all", "none"):
            model.set_params(selection=selection)
            add(f"{label} ({selection})", model.predict)
    logreg = lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))  # noqa: E731
    knn_lab = make_pipeline(KNNImputer(), StandardScaler(), LogisticRegression(max_iter=2000)).fit(flat(X_lab), y_lab)
    add("KNNImputer + LogReg, labeled only", lambda X: knn_lab.predict(flat(X)))
    imputer = KNNImputer().fit(flat(X_all))
    head = logreg().fit(imputer.transform(flat(X_lab)), y_lab)
    add("KNNImputer on all rows + LogReg", lambda X: head.predict(imputer.transform(flat(X))))
    per_view = {k: logreg().fit(v.reshape(len(v), -1), y_lab) for k, v in X_lab.items()}
    add("late fusion LogReg, labeled only", lambda X: fuse(per_view, X, classes)["mean"])
    start = time.perf_counter()
    self_trained = {k: SelfTrainingClassifier(logreg(), threshold=0.9, max_iter=5).fit(v.reshape(len(v), -1), y_all)
                    for k, v in X_all.items()}
    seconds["self-training"] = time.perf_counter() - start
    add("late fusion self-trained LogReg", lambda X: fuse(self_trained, X, classes)["mean"])
    print(dataset, seed, n_labeled, n_unlabeled, {k: round(v) for k, v in seconds.items()}, flush=True)
    return records, [dict(dataset=dataset, seed=seed, labeled=n_labeled, unlabeled=n_unlabeled,
                          **{f"{k} s": v for k, v in seconds.items()})]


def _frame(rows):
    """``rows`` as a frame with the pool's size, N_UNLABELED in the runs that predate its parameter."""
    frame = pd.DataFrame(rows)
    frame["unlabeled"] = frame.get("unlabeled", pd.Series(index=frame.index, dtype=float)).fillna(N_UNLABELED)
    return frame


def report(run_, command):
    frame = _frame(run_["records"])
    lines = ["# Unlabeled rows: DyMo's recoverer learning from a pool without labels", "",
             f"`python -m benchmarks.unlabeled {' '.join(command)}`", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             "Accuracy (%), mean ± sd over seeds.", ""]
    for (dataset, labeled, unlabeled), part in frame.groupby(["dataset", "labeled", "unlabeled"]):
        rates = sorted(part.rate.unique())
        seeds = ", ".join(map(str, sorted(part.seed.unique())))
        lines += [f"## {dataset}, {labeled} labeled rows, {int(unlabeled):,} unlabeled (seeds {seeds})",
                  "", "| method | " + " | ".join(f"η = {r:.2f}" for r in rates) + " |",
                  "|---|" + "---|" * len(rates)]
        for method, rows in part.groupby("method", sort=False):
            cells = []
            for rate in rates:
                values = 100 * rows[rows.rate == rate].accuracy
                cells.append(f"{values.mean():.1f} ± {values.std(ddof=0):.1f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    fits = _frame(run_["fits"]).groupby(["dataset", "labeled", "unlabeled"]).mean(numeric_only=True).drop(columns="seed")
    lines += ["## Fit time (s, one thread)", "", "| data set | labeled | unlabeled | " + " | ".join(fits.columns) + " |",
              "|---|---|---|" + "---|" * len(fits.columns)]
    for (dataset, labeled, unlabeled), row in fits.iterrows():
        lines.append(f"| {dataset} | {labeled} | {int(unlabeled):,} | " + " | ".join(f"{v:.0f}" for v in row) + " |")
    return "\n".join(lines) + "\n"


def pool_cost(n_pool, n_labeled=500, n_test=2000):
    """Fit and predict time, peak memory, of DyMo with ``n_pool`` unlabeled Fashion-MNIST tuples."""
    import resource

    from dymo_sklearn.datasets import make_multiview_fashion

    X, y = make_multiview_fashion(5, n_labeled + n_pool, background=1.0, image_size=14, split="train", random_state=0)
    X_test, y_test = make_multiview_fashion(5, n_test, background=1.0, image_size=14, split="test", random_state=0)
    X_test = apply_missing(X_test, 0.8, random_state=0)
    y = y.copy()
    y[n_labeled:] = -1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    model = DyMoClassifier(random_state=0, device="cpu").fit(X, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    predict_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data_mb = sum(v.nbytes for v in X.values()) / 2**20
    return dict(n_pool=n_pool, n_labeled=n_labeled, n_test=n_test, fit_s=fit_s, predict_s=predict_s,
                accuracy=accuracy, pool_mb=data_mb, rss_before_fit_mb=rss, peak_rss_mb=peak)


def selection_diagnostic(seeds=(0, 1), dataset="features_fashion", n_labeled=500, n_unlabeled=N_UNLABELED):
    """DyMo + unlabeled at the highest η: the share of candidates accepted, reward quantiles, and
    accuracy for other acceptance thresholds against ``all`` and ``none``; the paper's
    ablations on the same fitted model, ``iterative`` (Algorithm 1 without the ICS calibration)
    and ``simultaneous``, which tell whether the calibration or the confidence gain rejects
    the recoveries that ``all`` profits from; and, per test sample, the corrections (``none``
    wrong, ``all`` right) and harms (``none`` right, ``all`` wrong) of fusing every recovery, with
    the share of each that DyMo's selection takes."""
    out = {}
    for seed in seeds:
        X_lab, y_lab, X_unl, X_test, y_test, rates = load(dataset, seed, n_labeled, n_unlabeled)
        X_all = {k: np.concatenate([X_lab[k], X_unl[k]]) for k in X_lab}
        y_all = np.concatenate([y_lab, np.full(len(next(iter(X_unl.values()))), -1)])
        model = DyMoResearchClassifier(random_state=seed, device="cpu").fit(X_all, y_all)  # DyMoClassifier's defaults
        X_missing = apply_missing(X_test, rates[-1], random_state=1000 * seed + len(rates) - 1)
        explained = model.explain(X_missing)
        rewards = np.concatenate([explained[c].dropna().to_numpy() for c in explained if c.startswith("reward_")])
        result = {"accepted_fraction": float(explained["selected"].map(len).sum()
                                             / explained["candidates"].map(len).sum()),
                  "reward_quantiles_10_25_50_75_90": np.quantile(rewards, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist()}
        for threshold in (0.0, -0.02, -0.05, -0.1, -0.2, -1.0):
            model.set_params(acceptance_threshold=threshold)
            result[f"dymo, threshold {threshold}"] = float(np.mean(model.predict(X_missing) == y_test))
        model.set_params(acceptance_threshold=0.0)
        right = {"dymo": explained["prediction"].to_numpy() == y_test,
                 "none": explained["prediction_observed_only"].to_numpy() == y_test}
        for selection in ("iterative", "simultaneous", "all"):
            model.set_params(selection=selection)
            right[selection] = model.predict(X_missing) == y_test
            result[selection] = float(np.mean(right[selection]))
        result["none"] = float(np.mean(right["none"]))
        corrections = ~right["none"] & right["all"]
        harms = right["none"] & ~right["all"]
        result["corrections of all (share of test rows)"] = float(corrections.mean())
        result["corrections dymo keeps (share of them)"] = float(right["dymo"][corrections].mean())
        result["harms of all (share of test rows)"] = float(harms.mean())
        result["harms dymo avoids (share of them)"] = float(right["dymo"][harms].mean())
        out[f"{dataset}, seed {seed}"] = result
        print(seed, result, flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["polymnist_mnist", "features_fashion"])
    parser.add_argument("--labeled", nargs="+", type=int, default=[500])
    parser.add_argument("--unlabeled", type=int, default=N_UNLABELED, help="rows in the unlabeled pool")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--name", default="unlabeled")
    parser.add_argument("--report-from", nargs="+", default=None)
    parser.add_argument("--pool-cost", type=int, default=None, help="measure time and memory with this pool")
    parser.add_argument("--selection-diagnostic", nargs="?", const="features_fashion", default=None,
                        metavar="DATASET", help="why DyMo fuses fewer recoveries than help, on DATASET")
    args = parser.parse_args(argv)
    if args.selection_diagnostic:
        dataset = args.selection_diagnostic
        found = selection_diagnostic(dataset=dataset, n_unlabeled=args.unlabeled)
        name = "unlabeled_selection" + ("" if dataset == "features_fashion" else f"_{dataset}")
        (RESULTS / f"{name}.json").write_text(json.dumps(found, indent=1))
        return
    if args.pool_cost:
        cost = pool_cost(args.pool_cost)
        (RESULTS / "unlabeled_pool_cost.json").write_text(json.dumps(cost, indent=1))
        print(cost)
        return
    command = list(argv if argv is not None else sys.argv[1:])
    if args.report_from:
        runs = [json.loads(Path(p).read_text()) for p in args.report_from]
        result = {key: [row for r in runs for row in r[key]] for key in ("records", "fits")}
    else:
        result = {"records": [], "fits": []}
        for dataset in args.datasets:
            for n_labeled in args.labeled:
                for seed in args.seeds:
                    records, fits = run(dataset, seed, n_labeled, args.unlabeled)
                    result["records"] += records
                    result["fits"] += fits
    result["command"] = command
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"{args.name}.md").write_text(report(result, command))
    print((RESULTS / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
