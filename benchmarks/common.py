"""Shared helpers of the benchmark scripts: data, fitting, recoverer swaps, the oracle, timers."""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from dymo_sklearn.experimental import DyMoResearchClassifier
from dymo_sklearn.datasets import load_breast_cancer_views, make_multiview_digits
from dymo_sklearn.recovery import fit_recoverer, recover

FEATURE_SETS = ("features_mnist", "features_fashion")  # six tabular views each, feature_views.py
MODES = ("none", "all", "simultaneous", "iterative", "dymo")
REWARDS = ("log", "prob")


def recoverers(dataset, full):
    """Recoverers evaluated on a data set: name -> unfitted imputer."""
    out = {"simple": SimpleImputer(), "knn": KNNImputer(n_neighbors=5)}
    if dataset == "breast_cancer":
        out["iterative"] = IterativeImputer(max_iter=10, random_state=0)
    elif full:
        # 320 columns: bounded neighbourhood and few rounds keep it feasible on 2 cores.
        out["iterative"] = IterativeImputer(max_iter=3, n_nearest_features=20, random_state=0)
    return out


def subset(X, rows):
    return {name: np.asarray(array)[rows] for name, array in X.items()}


def load_split(dataset, seed, quick):
    """(X_train, y_train, X_test, y_test, missing rates, tabular?) for one seed."""
    if dataset == "polymnist_digits":
        n = 1000 if quick else 2000
        X, y = make_multiview_digits(5, n_samples=n, background=1.0, random_state=seed)
        rates = (0.0, 0.2, 0.4, 0.6, 0.8)
        tr, te = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=y)
        return subset(X, tr), y[tr], subset(X, te), y[te], rates
    if dataset == "polymnist_mnist":
        from dymo_sklearn.datasets import make_multiview_mnist

        n_train, n_test = (600, 300) if quick else (2000, 700)
        Xtr, ytr = make_multiview_mnist(5, n_train, background=1.0, image_size=14, split="train", random_state=seed)
        Xte, yte = make_multiview_mnist(5, n_test, background=1.0, image_size=14, split="test", random_state=seed)
        return dict(Xtr), ytr, dict(Xte), yte, (0.0, 0.2, 0.4, 0.6, 0.8)
    if dataset == "polymnist_fashion":
        from dymo_sklearn.datasets import make_multiview_fashion

        n_train, n_test = (600, 300) if quick else (10_000, 2_000)
        Xtr, ytr = make_multiview_fashion(5, n_train, background=1.0, image_size=14, split="train", random_state=seed)
        Xte, yte = make_multiview_fashion(5, n_test, background=1.0, image_size=14, split="test", random_state=seed)
        return dict(Xtr), ytr, dict(Xte), yte, (0.0, 0.2, 0.4, 0.6, 0.8)
    if dataset in FEATURE_SETS:
        from .feature_views import load_feature_views

        X, y = load_feature_views(dataset, seed)
        rates = (0.0, 0.5, 0.67, 0.83)  # 0, 3, 4 and 5 of the 6 views missing
        return _standardised_split(X, y, seed, rates)
    if dataset == "breast_cancer":
        X, y = load_breast_cancer_views()
        return _standardised_split(X, y, seed, (0.0, 1 / 3, 2 / 3))
    raise ValueError(dataset)


def _standardised_split(X, y, seed, rates):
    """A stratified 70/30 split of tables, each view standardised on the training part."""
    tr, te = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=y)
    Xtr, Xte = subset(X, tr), subset(X, te)
    for name in Xtr:  # standardise each view on the training part (the baselines do not)
        scaler = StandardScaler().fit(Xtr[name])
        Xtr[name] = scaler.transform(Xtr[name]).astype(np.float32)
        Xte[name] = scaler.transform(Xte[name]).astype(np.float32)
    return Xtr, y[tr], Xte, y[te], rates


def make_model(dataset, *, distance, temperature, seed, quick, **extra):
    epochs = {"polymnist_digits": (15, 20), "polymnist_mnist": (10, 20), "breast_cancer": (20, 40)}[dataset]
    params = dict(
        recoverer=SimpleImputer(), distance=distance, temperature=temperature, d_model=32, n_heads=4,
        n_layers=2, projection_dim=32, lr=3e-3, batch_size=128, max_epochs=epochs[0] if quick else epochs[1],
        early_stopping=False, aux_warmup=5, acceptance_threshold=0.0, device="cpu", random_state=seed,
        # The paper's training: the network does not depend on the recoverer, which with_recoverer needs.
        recovery_aware=False,
    )
    params.update(extra)
    return DyMoResearchClassifier(**params)


def with_recoverer(model, recoverer, X_train):
    """Shallow copy of a fitted model whose recoverer is refitted; the network is shared.

    With complete training data the network does not depend on the recoverer (it is only
    fitted, never used, in ``fit``), so swapping ``recoverer_`` equals refitting the model.
    """
    other = copy.copy(model)
    other.recoverer = recoverer
    other.recoverer_ = CachedRecovery(fit_recoverer(recoverer, {name: np.asarray(a) for name, a in X_train.items()}))
    return other


class CachedRecovery:
    """A fitted imputer whose ``transform`` is memoised on the exact input bytes.

    Recovery is deterministic, and every selection mode of one test set recovers the same
    matrix; caching it keeps the benchmark from re-running KNN imputation a dozen times.
    """

    def __init__(self, fitted):
        self.fitted = fitted
        self.cache = {}

    def transform(self, X):
        key = (X.shape, hashlib.sha1(np.ascontiguousarray(X).tobytes()).hexdigest())
        if key not in self.cache:
            self.cache[key] = self.fitted.transform(X)
        return self.cache[key]

    def fit(self, X, y=None):  # pragma: no cover - never refitted
        return self


def candidates_of(X):
    """(n, M) bool: modality has at least one missing entry (a recovery candidate)."""
    return np.stack([np.isnan(np.asarray(a)).reshape(len(a), -1).any(axis=1) for a in X.values()], axis=1)


def oracle_correct(model, X_missing, y, X_train):
    """Per sample: does *some* subset of its recovered candidates, fused with what it observed,
    classify it correctly?  (Label-aware ceiling of any selection rule over these candidates.)

    For every subset S of modalities, the recovered values are written into the modalities of S
    only, the others keep their NaN, and the model predicts with ``selection="none"`` (recovered
    entries in S now count as observed; nothing else is filled).
    """
    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in X_missing.items()}
    recovered = recover(model.recoverer_, arrays)
    names = list(arrays)
    candidates = candidates_of(arrays)
    none_model = with_recoverer(model, SimpleImputer(), X_train).set_params(selection="none")
    correct = np.zeros(len(y), dtype=bool)
    used = np.flatnonzero(candidates.any(axis=0))
    n_subsets = 0
    for code in range(2 ** len(used)):
        chosen = {names[m] for bit, m in enumerate(used) if code >> bit & 1}
        filled = {name: (recovered[name] if name in chosen else arrays[name]) for name in names}
        correct |= none_model.predict(filled) == y
        n_subsets += 1
    return correct, n_subsets


class PeakRSS:
    """Peak resident memory (bytes) above the level at entry, sampled every ``interval`` s."""

    def __init__(self, interval=0.002):
        self.interval = interval

    @staticmethod
    def rss():
        with open(f"/proc/{os.getpid()}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self.rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        self.delta = self.peak - self.start


def best_time(function, repeats=3):
    """Minimum wall time over ``repeats`` calls (after the first, a warm-up) and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def percent_frame(records):
    """The records of a rule benchmark as a DataFrame with accuracy in %, and their seeds, sorted."""
    import pandas as pd

    frame = pd.DataFrame(records)
    frame["accuracy"] *= 100
    return frame, sorted(frame.seed.unique().tolist())


def rule_table(part, rules, reference):
    """Markdown rows of one data set's page: each rule's accuracy (mean ± sd over seeds) per
    missing rate, then its difference to ``reference`` at the highest rate; rules without
    records are left out. ``part`` holds columns rule, rate and accuracy (in %)."""
    rates = sorted(part.rate.unique())
    top = part[part.rate == rates[-1]].groupby("rule").accuracy.mean()
    lines = ["| rule | " + " | ".join(f"η = {rate:.2f}" for rate in rates) + f" | − {reference.split(' ')[0]} |",
             "|---|" + "---|" * (len(rates) + 1)]
    for rule in (rule for rule in rules if rule in top.index):
        cells = [part[(part.rule == rule) & (part.rate == rate)].accuracy for rate in rates]
        lines.append(f"| {rule} | " + " | ".join(f"{c.mean():.1f} ± {c.std(ddof=0):.1f}" for c in cells)
                     + f" | {top[rule] - top[reference]:+.1f} |")
    return lines


def write_run_files(folder, stem, records_json, render, merged):
    """``<stem>.json`` (the records, as JSON text) and ``<stem>.md`` (``render()``) in ``folder``;
    returns the page. A new run's records are written first, kept even if its page fails;
    ``merged`` records (``--report-from``) only once their page renders, so that a refused merge
    overwrites nothing."""
    if not merged:
        (folder / f"{stem}.json").write_text(records_json)
    page = render()
    if merged:
        (folder / f"{stem}.json").write_text(records_json)
    (folder / f"{stem}.md").write_text(page)
    return page


def write_report(name, quick, records, report, argv, stem=None, merged=False):
    """Write ``<stem>.json`` (the records) and ``<stem>.md`` (``report(records, command)``) into
    :func:`output_folder` with :func:`write_run_files`, and print the page; ``argv`` gives the
    command line it names and ``stem`` defaults to ``name`` (``<name>_quick`` for a smoke run)."""
    import json
    import shlex
    import sys

    command = f"python -m benchmarks.{name} " + shlex.join(argv if argv is not None else sys.argv[1:])
    folder = output_folder(quick)
    stem = stem or (f"{name}_quick" if quick else name)
    print(write_run_files(folder, stem, json.dumps(records, indent=1), lambda: report(records, command.strip()),
                          merged))


def output_folder(quick):
    """benchmarks/results/ for a full run; the ignored build/benchmarks/ for a smoke run, which is not a record."""
    folder = Path("build/benchmarks" if quick else "benchmarks/results")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def params_label(params):
    """``{"max_epochs": 100, "patience": 10}`` -> ``"max_epochs=100, patience=10"``."""
    return ", ".join(f"{key}={value}" for key, value in params.items())


def benchmark_main(name, run_seed, report, argv=None, *, datasets=None, seeds=(0, 1, 2), options=None):
    """The command line of the per-seed benchmarks: ``--quick`` (seed 0, small settings, into
    build/benchmarks/; a full run writes into benchmarks/results/), ``--seeds``, ``--threads``, ``--name`` and, with ``datasets``, ``--datasets``. Runs
    ``run_seed(dataset, seed, quick)`` (or ``run_seed(seed, quick)``) and writes the report.
    ``options`` maps further flags to ``add_argument`` keywords; their values reach ``run_seed``
    as keyword arguments. ``--report-from A.json B.json`` runs nothing: it renders the report of
    the records of earlier runs together (more seeds added to a run, say)."""
    import json

    import torch

    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}")
    parser.add_argument("--quick", action="store_true", help="smoke run: seed 0, small settings, into build/")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help=f"default: {' '.join(map(str, seeds))} (0 when --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--name", default=None, help=f"output name (default: {name}, or {name}_quick)")
    if datasets:
        parser.add_argument("--datasets", nargs="+", default=list(datasets))
    for flag, settings in (options or {}).items():
        parser.add_argument(flag, **settings)
    parser.add_argument("--report-from", nargs="+", default=None, metavar="JSON",
                        help="render the report of these runs' records together instead of running")
    args = parser.parse_args(argv)
    extra = {dest: getattr(args, dest) for dest in (flag.lstrip("-").replace("-", "_") for flag in options or {})}
    torch.set_num_threads(args.threads)
    if args.report_from:
        records = [row for path in args.report_from for row in json.loads(Path(path).read_text())]
        write_report(name, args.quick, records, report, argv, stem=args.name, merged=True)
        return
    chosen = args.seeds if args.seeds is not None else ([0] if args.quick else list(seeds))
    if datasets:
        records = [row for dataset in args.datasets for seed in chosen
                   for row in run_seed(dataset, seed, args.quick, **extra)]
    else:
        records = [row for seed in chosen for row in run_seed(seed, args.quick, **extra)]
    write_report(name, args.quick, records, report, argv, stem=args.name)
