"""Accuracy under test-time missingness: selection modes, rewards, distances, recoverers,
baselines a user would pick instead, and the label-aware oracle ceiling."""

from __future__ import annotations

import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dymo_sklearn.datasets import apply_missing

from .common import (MODES, REWARDS, load_split, make_model, oracle_correct, recoverers,
                     with_recoverer)


def flat(X):
    return np.concatenate([np.asarray(a).reshape(len(a), -1) for a in X.values()], axis=1)


def baselines(dataset, full, seed):
    out = {
        "HGB (native NaN)": HistGradientBoostingClassifier(random_state=seed),
        "KNNImputer + LogReg": make_pipeline(KNNImputer(), StandardScaler(), LogisticRegression(max_iter=1000)),
    }
    if dataset == "breast_cancer" or full:
        iterative = (IterativeImputer(max_iter=10, random_state=seed) if dataset == "breast_cancer"
                     else IterativeImputer(max_iter=3, n_nearest_features=20, random_state=seed))
        out["IterativeImputer + LogReg"] = make_pipeline(iterative, StandardScaler(),
                                                         LogisticRegression(max_iter=1000))
    return out


def model_configs(dataset, quick):
    """(label, distance, temperature, evaluate-every-recoverer?) of the networks trained per seed."""
    configs = [("cosine, t=0.1", "cosine", 0.1, True)]
    if dataset == "breast_cancer" or (dataset == "polymnist_digits" and not quick):
        configs.append(("sqeuclidean, t=0.1", "sqeuclidean", 0.1, True))
    if not quick and dataset == "polymnist_digits":
        configs += [("cosine, t=0.05", "cosine", 0.05, False), ("cosine, t=0.2", "cosine", 0.2, False)]
    return configs


THRESHOLDS = {"log": (0.0, 0.05, 0.1, 0.2), "prob": (0.0, 0.02, 0.05)}


def run_dataset(dataset, seeds, quick, log):
    """Raw records: one dict per (seed, config, recoverer, rate, method), fit info, and an empty list
    (the held-out threshold rows of earlier records; that option is deleted)."""
    records, fit_info, autos = [], [], []
    for seed in seeds:
        r, f, a = run_seed(dataset, seed, quick, log)
        records += r
        fit_info += f
        autos += a
    return records, fit_info, autos


def run_seed(dataset, seed, quick, log, reduced_side_configs=False, skip_baselines=()):
    """One seed of one data set: (records, fit info, [])."""
    full = not quick
    records = []
    fit_info = []
    autos = []
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    tests = {rate: apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    for config, distance, temperature, every_recoverer in model_configs(dataset, quick):
        if reduced_side_configs and seed != 0 and not config.startswith("cosine, t=0.1"):
            continue  # side configs (other distance / temperature) on seed 0 only
        start = time.perf_counter()
        model = make_model(dataset, distance=distance, temperature=temperature, seed=seed, quick=quick)
        model.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        epochs = [row["dur"] for row in model.net_.history]
        fit_info.append(dict(dataset=dataset, seed=seed, config=config, fit_s=fit_seconds,
                             epoch_s=float(np.mean(epochs)), n_epochs=len(epochs),
                             train_loss=float(model.net_.history[-1, "train_loss"])))
        log(f"[{dataset}] seed {seed} {config}: fit {fit_seconds:.1f}s ({len(epochs)} epochs)")
        names = recoverers(dataset, full) if every_recoverer else {"knn": recoverers(dataset, full)["knn"]}
        for rec_name, recoverer in names.items():
            clf = with_recoverer(model, recoverer, X_train)
            main = config.startswith("cosine, t=0.1")
            for rate, X_missing in tests.items():
                def add(method, correct, **kw):
                    records.append(dict(dataset=dataset, seed=seed, config=config, recoverer=rec_name,
                                        rate=float(rate), method=method, accuracy=float(np.mean(correct)), **kw))
                start = time.perf_counter()
                for mode in MODES:
                    for reward in (REWARDS if mode not in ("none", "all") else ("log",)):
                        clf.set_params(selection=mode, reward=reward, acceptance_threshold=0.0)
                        label = mode if mode in ("none", "all") else f"{mode}/{reward}"
                        add(label, clf.predict(X_missing) == y_test)
                if main or dataset == "breast_cancer":
                    for reward, values in THRESHOLDS.items():
                        for threshold in values[1:]:
                            clf.set_params(selection="dymo", reward=reward, acceptance_threshold=threshold)
                            add(f"dymo/{reward} thr={threshold}", clf.predict(X_missing) == y_test)
                    correct, n_subsets = oracle_correct(clf, X_missing, y_test, X_train)
                    add("oracle", correct, n_subsets=n_subsets)
                log(f"    {rec_name} rate={rate:.2f}: {time.perf_counter() - start:.1f}s")
    # What a user would pick instead, on the same splits and the same missing test sets.
    Ftrain = flat(X_train)
    for name, baseline in baselines(dataset, full, seed).items():
        if (dataset, name) in skip_baselines:
            continue
        start = time.perf_counter()
        baseline.fit(Ftrain, y_train)
        for rate, X_missing in tests.items():
            records.append(dict(dataset=dataset, seed=seed, config="baseline", recoverer="-", rate=float(rate),
                                method=name, accuracy=float(np.mean(baseline.predict(flat(X_missing)) == y_test))))
        log(f"[{dataset}] seed {seed} baseline {name}: {time.perf_counter() - start:.1f}s")
    return records, fit_info, autos


_STARTED = None


def init_worker(threads, started):
    """Initializer of the worker processes of ``run_all --jobs``."""
    global _STARTED
    import torch

    torch.set_num_threads(threads)
    _STARTED = started


def _worker_log(message):
    import os

    print(f"[{time.perf_counter() - _STARTED:7.1f}s pid {os.getpid()}] {message}", flush=True)


def run_task(dataset, seed, quick, reduced_side_configs, skip_baselines):
    """One (data set, seed) in a worker process."""
    return run_seed(dataset, seed, quick, _worker_log, reduced_side_configs, skip_baselines)
