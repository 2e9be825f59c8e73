"""The information limit at the highest missing rate: banks of pattern specialists next to DyMo.

At a given missing pattern, a recovered modality carries no information the observed ones lack,
so a classifier trained on exactly the observed modalities is the reference DyMo should reach.
For every data set and seed of the dilemma benchmark, on the same test set at its highest η
(``benchmarks.dilemma``: same split, same ``apply_missing`` seed), this fits one specialist per
missing pattern of up to five kinds: a logistic regression, an RBF support vector machine and the
same network as ``DyMoClassifier()`` as shipped, trained on exactly the pattern's modalities, and
the two tuned kinds of ``benchmarks.late_fusion`` (an RBF SVC with C and gamma chosen by a 3-fold
inner CV, then Platt-scaled, and a HistGradientBoosting with its learning rate and leaves chosen
the same way). It reports each bank, two per-pattern choices of the best kind and shipped DyMo's
accuracy on the same samples, read from ``benchmarks/results/dilemma.json`` (and
``dilemma_fashion.json``, ``dilemma_features.json``):

* *validation-chosen*: the kind with the best accuracy on a held-out fifth of the training data
  (each kind refitted on the other four fifths to choose), a bank a user could build;
* *test-chosen*: the kind with the best accuracy on the test samples themselves, an optimistic
  bound (with a few hundred test samples per pattern, the maximum of several noisy accuracies).

A second table sets beside the banks the accuracy a goal of one point above the best simple
alternative asks of DyMo (its own none/all, KNNImputer + LogReg, IterativeImputer + LogReg, HGB),
from the same dilemma records: where that goal lies above the banks, no per-pattern model reached it.

    python -m benchmarks.specialists      # benchmarks/results/specialists.md and benchmarks/results/specialists.json
    python -m benchmarks.specialists --datasets polymnist_fashion --seeds 0 --threads 1 --name specialists_fashion
    python -m benchmarks.specialists --quick
    python -m benchmarks.specialists --kinds "SVC (tuned, Platt)" "HGB (tuned)" --name specialists_tuned
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing

from .accuracy import baselines, flat
from .common import benchmark_main, load_split, params_label
from .dilemma import DATASETS, SHIPPED, one_row_each
from .late_fusion import best_at as best_late_fusion_at
from .late_fusion import fit_modality

KINDS = ("LogReg", "SVC (RBF)", "network", "SVC (tuned, Platt)", "HGB (tuned)")
TUNED = {"SVC (tuned, Platt)": "SVC", "HGB (tuned)": "HGB"}  # kinds of benchmarks.late_fusion
# DyMo's own none/all and the dilemma's simple pipelines (breast cancer runs every one).
GOAL_RIVALS = ("none", "all", *baselines("breast_cancer", False, 0))


def specialist(kind, seed, quick, network_params):
    if kind == "LogReg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    if kind == "SVC (RBF)":
        return make_pipeline(StandardScaler(), SVC())
    if kind in TUNED:
        return TunedModel(TUNED[kind], seed)
    return DyMoClassifier(random_state=seed, device="cpu", selection="none",
                          **{**network_params, **({"max_epochs": 3} if quick else {})})


class TunedModel:
    """One of ``benchmarks.late_fusion``'s tuned models on the concatenated modalities."""

    def __init__(self, kind, seed):
        self.kind, self.seed = kind, seed

    def fit(self, X, y):
        self.model_, self.chosen_ = fit_modality(self.kind, X, y, self.seed)
        return self

    def predict(self, X):
        return self.model_.predict(X)


def observed_patterns(X):
    names = list(X)
    return names, np.stack([~np.isnan(np.asarray(X[n]).reshape(len(X[n]), -1)).all(1) for n in names], 1)


def fit_predict(kind, seed, quick, network_params, X_fit, y_fit, X_predict):
    """Fit one specialist on the modalities of ``X_fit``; returns it and its predictions of ``X_predict``."""
    model = specialist(kind, seed, quick, network_params)
    if kind == "network":
        return model, model.fit(X_fit, y_fit).predict(X_predict)
    return model, model.fit(flat(X_fit), y_fit).predict(flat(X_predict))


def scalar_params(model):
    """The settings of a network specialist that a JSON record can keep (not the recoverer)."""
    return {key: value for key, value in model.get_params().items()
            if isinstance(value, (bool, int, float, str, type(None)))}


def outdated_settings(records):
    """Settings the network specialists were fitted with that differ from what the same
    specialist gets now (the defaults moved after the run); {} when they match or were not
    recorded. What a run set on purpose (``--network-params``, the seed, a smoke run's epochs)
    is named elsewhere."""
    outdated = {}
    for r in records:
        if r["kind"] == "network" and not r["quick"]:
            today = scalar_params(specialist("network", r["seed"], False, r["network_params"] or {}))
            outdated.update({key: value for key, value in r.get("network_settings", {}).items()
                             if key in today and today[key] != value})
    return outdated


def run_seed(dataset, seed, quick, network_params=None, kinds=None):
    network_params = network_params or {}
    kinds = kinds or KINDS[:3]
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    top = len(rates) - 1
    X_missing = apply_missing(X_test, rates[top], random_state=1000 * seed + top)  # as benchmarks.dilemma
    names, observed = observed_patterns(X_missing)
    # The held-out fifth that chooses a kind per pattern (the test set never does).
    fit_part, valid_part = train_test_split(np.arange(len(y_train)), test_size=0.2, random_state=seed,
                                            stratify=y_train)
    rows = []
    for pattern in np.unique(observed, axis=0):
        chosen = [n for n, keep in zip(names, pattern) if keep]
        samples = (observed == pattern).all(1)
        train = {n: np.asarray(X_train[n]) for n in chosen}
        for kind in kinds:
            start = time.perf_counter()
            model, predicted = fit_predict(kind, seed, quick, network_params, train, y_train,
                                           {n: np.asarray(X_missing[n])[samples] for n in chosen})
            fit_s = time.perf_counter() - start
            _, valid_predicted = fit_predict(kind, seed, quick, network_params,
                                             {n: a[fit_part] for n, a in train.items()}, y_train[fit_part],
                                             {n: a[valid_part] for n, a in train.items()})
            rows.append(dict(dataset=dataset, seed=seed, quick=quick, rate=float(rates[top]), pattern="+".join(chosen),
                             kind=kind, n_samples=int(samples.sum()), correct=int((predicted == y_test[samples]).sum()),
                             n_valid=len(valid_part), valid_correct=int((valid_predicted == y_train[valid_part]).sum()),
                             fit_s=fit_s, network_params=network_params,
                             **({"network_settings": scalar_params(model)} if kind == "network" else {})))
            print(rows[-1], flush=True)
    return rows


def validation_chosen(rows):
    """Test samples a bank gets right when each pattern takes the kind best on held-out training
    data (ties to the simpler kind, in the order of KINDS); None for records without it."""
    if any("valid_correct" not in r for r in rows):
        return None
    correct = 0
    for pattern in dict.fromkeys(r["pattern"] for r in rows):
        mine = sorted((r for r in rows if r["pattern"] == pattern), key=lambda r: KINDS.index(r["kind"]))
        correct += max(mine, key=lambda r: r["valid_correct"])["correct"]
    return correct


def dilemma_figures(paths=tuple(Path("benchmarks/results") / name for name in
                               ("dilemma.json", "dilemma_fashion.json", "dilemma_features.json"))):
    """(dataset, seed, rate) -> {method: accuracy} of the shipped model with the default recoverer
    (``none``, ``all``, ``dymo``, ...) and of the simple pipelines (``peer`` rows), from the dilemma runs."""
    records = [r for path in paths if path.is_file() for r in json.loads(path.read_text())["records"]]
    if records:
        one_row_each(records)  # the dilemma page's own check: repeated figures must agree
    figures = {}
    for r in records:
        if (r["model"] == SHIPPED and r["recoverer"] == "knn") or r["model"] == "peer":
            figures.setdefault((r["dataset"], r["seed"], round(r["rate"], 6)), {})[r["method"]] = r["accuracy"]
    return figures


def dilemma_dymo(figures):
    """(dataset, seed, rate) -> shipped dymo accuracy with the default recoverer."""
    return {key: methods["dymo"] for key, methods in figures.items() if "dymo" in methods}


def goal_table(per_dataset, figures):
    """The page's second table: what a goal of one point above the best simple alternative asks
    of DyMo at the highest η (its own none/all and the three pipelines), beside the specialist
    banks. ``per_dataset`` maps a data set to (rate, seeds, validation-chosen, test-chosen)."""
    lines, left_out = [], []
    for dataset, (rate, seeds, by_validation, best) in per_dataset.items():
        found = [figures.get((dataset, seed, round(rate, 6)), {}) for seed in seeds]
        if not all(all(rival in methods for rival in GOAL_RIVALS) for methods in found):
            left_out.append(dataset)
            continue
        means = {rival: np.mean([methods[rival] for methods in found]) for rival in GOAL_RIVALS}
        rival = max(means, key=means.get)  # a tie: the first in GOAL_RIVALS
        # Rounded before they are subtracted, so that the printed figures add up.
        rival_figure = round(100 * means[rival], 2)
        asked, test_bank = rival_figure + 1, round(100 * np.mean(best), 2)
        bank = round(100 * np.mean(by_validation), 2) if by_validation else None
        lines.append(f"| {dataset} | {rate:.2f} | {rival} {rival_figure:.2f} | {asked:.2f} | "
                     + (f"{bank:.2f}" if bank is not None else "–") + f" | {test_bank:.2f} | "
                     + (f"{asked - bank:+.2f}" if bank is not None else "–") + f" | {asked - test_bank:+.2f} |")
    if not lines:
        return []
    return ["", "What the goal of one point above the best simple alternative asks at this η, against the "
            "specialists: *best rival* is the best mean over the seeds of DyMo's own `none` and `all` and "
            "the three pipelines of the data set's dilemma record ([dilemma.md](dilemma.md), "
            "[dilemma_fashion.md](dilemma_fashion.md) or [dilemma_features.md](dilemma_features.md)) ("
            + ", ".join(GOAL_RIVALS[2:]) + "); *asked* is one point more; two decimals, so that they add up. "
            "A positive *asked − bank* means the goal lies above what a bank of per-pattern specialists "
            "reaches on the same samples.", "",
            "| data set | η | best rival | asked | validation-chosen | test-chosen | asked − validation-chosen "
            "| asked − test-chosen |", "|---|---|---|---|---|---|---|---|", *lines,
            *([f"\nLeft out: {', '.join(left_out)} (the dilemma records lack a rival for some of its seeds)."]
              if left_out else [])]


def trained_as(network_params, path=Path("benchmarks/results/training_length.json")):
    """The same mapping for DyMo trained with ``network_params``, from the training-length run."""
    if not path.is_file():
        return {}
    return {(r["dataset"], r["seed"], round(r["rate"], 6)): r["accuracy"] for r in json.loads(path.read_text())
            if r["model"] == params_label(network_params) and r["method"] == "dymo"}


def report(records, command):
    network_params = records[0].get("network_params") or {}
    quick = any(r["quick"] for r in records)  # a smoke run has other splits
    figures = {} if quick or network_params else dilemma_figures()  # a run trained otherwise has no peers
    dymo = {} if quick else trained_as(network_params) if network_params else dilemma_dymo(figures)
    trained = f" with `{params_label(network_params)}`" if network_params else ""
    outdated = outdated_settings(records)
    fitted_as = (f" (fitted with `{params_label(outdated)}`, the default when they ran)" if outdated else "")
    source = ("benchmarks/results/training_length.json, trained the same way" if network_params else
              "benchmarks/results/dilemma.json (dilemma_fashion.json for Fashion-MNIST, dilemma_features.json for "
              "the feature tables)")
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    kinds = [kind for kind in KINDS if any(r["kind"] == kind for r in records)]
    title = "# Pattern specialists at the highest missing rate"
    title += "" if set(datasets) == set(DATASETS) else f": {', '.join(datasets)}"
    title += f" (trained with {params_label(network_params)})" if network_params else ""
    lines = [title, "",
             f"`{command}` — {torch.get_num_threads()} torch thread(s). Each test sample at the dilemma benchmark's highest η is "
             "classified by specialists trained on exactly its observed modalities (same split and missing test "
             f"set as [dilemma.md](dilemma.md)). *network*: `DyMoClassifier()` as shipped{trained}{fitted_as}, fitted "
             "on those modalities only. *validation-chosen*: for each pattern the kind with the best accuracy on a "
             "held-out fifth of the training data (each kind refitted on the rest to choose): a bank a user could "
             "build. *test-chosen*: for each pattern the best kind on the test samples (optimistic: chosen "
             f"on the test set). *DyMo*: shipped{trained}, default recoverer, from {source}. "
             "Accuracy in %, mean ± sd over seeds.", "",
             "| data set | η | " + " | ".join(kinds) + " | validation-chosen | test-chosen | DyMo "
             "| DyMo − validation-chosen | DyMo − test-chosen |",
             "|---|---|" + "---|" * (len(kinds) + 5)]
    per_dataset = {}
    for dataset in datasets:
        mine = [r for r in records if r["dataset"] == dataset]
        seeds = sorted({r["seed"] for r in mine})
        per_kind = {kind: [] for kind in kinds}
        best, by_validation, dymo_values = [], [], []
        for seed in seeds:
            rows = [r for r in mine if r["seed"] == seed]
            total = sum(r["n_samples"] for r in rows if r["kind"] == rows[0]["kind"])
            for kind in kinds:
                if any(r["kind"] == kind for r in rows):
                    per_kind[kind].append(sum(r["correct"] for r in rows if r["kind"] == kind) / total)
            patterns = {r["pattern"] for r in rows}
            best.append(sum(max(r["correct"] for r in rows if r["pattern"] == p) for p in patterns) / total)
            chosen_correct = validation_chosen(rows)
            if chosen_correct is not None:
                by_validation.append(chosen_correct / total)
            key = (dataset, seed, round(rows[0]["rate"], 6))
            if key in dymo:
                dymo_values.append(dymo[key])

        def cell(values):
            return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}" if values else "–"

        def gap(reference):
            return f"{100 * (np.mean(dymo_values) - np.mean(reference)):+.1f}" if dymo_values and reference else "–"

        # A figure only where every seed has one.
        by_validation, dymo_values = ([] if len(values) < len(seeds) else values
                                      for values in (by_validation, dymo_values))
        per_kind = {kind: [] if len(values) < len(seeds) else values for kind, values in per_kind.items()}
        lines.append(f"| {dataset} | {mine[0]['rate']:.2f} | " + " | ".join(cell(per_kind[k]) for k in kinds)
                     + f" | {cell(by_validation)} | {cell(best)} | {cell(dymo_values)} | {gap(by_validation)} "
                     f"| {gap(best)} |")
        per_dataset[dataset] = (mine[0]["rate"], seeds, by_validation, best)
    lines += goal_table(per_dataset, figures)
    late = [(dataset, rate, best_late_fusion_at(dataset, rate, seeds))
            for dataset, (rate, seeds, _, _) in per_dataset.items()]
    if any(found for *_, found in late):
        lines += ["", "Best late fusion at the same η and seeds (`late_fusion.json`, the same splits and masks):", ""]
        lines += [f"- {dataset}, η = {rate:.2f}: {found[0]} {100 * found[1]:.1f}" for dataset, rate, found in late
                  if found]
    fit = {kind: np.mean([r["fit_s"] for r in records if r["kind"] == kind]) for kind in kinds}
    lines += ["", "Mean fit time of one specialist on the whole training part (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in fit.items()) + ".", ""]
    return "\n".join(lines)


def main(argv=None):
    options = {"--network-params": {"type": json.loads, "default": None,
                                    "help": 'JSON of DyMoClassifier parameters for the network specialists, e.g. '
                                            '\'{"max_epochs": 100, "patience": 10}\' (DyMo is then read from '
                                            'benchmarks/results/training_length.json)'},
               "--kinds": {"nargs": "+", "choices": KINDS, "default": None,
                           "help": f"the kinds to fit (default: {', '.join(KINDS[:3])}); runs of other kinds "
                                   "on the same seeds merge with --report-from"}}
    benchmark_main("specialists", run_seed, report, argv, datasets=DATASETS, options=options)


if __name__ == "__main__":
    main()
