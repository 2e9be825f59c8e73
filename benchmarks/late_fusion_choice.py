"""Late fusion as a user must choose it (issue 33): by validation, not by the test set.

``late_fusion.json``'s *best late fusion* is, per data set and η, the best of every kind and
fusion rule on the test samples: a user has to pick one beforehand. Here each seed's training
rows are split 80 / 20 (stratified); each kind (LogReg, SVC, HGB, with the hyper-parameters
``late_fusion.py`` tuned for that seed) is fitted per modality on the 80 %, and the held-out 20 %,
with modalities hidden at each η as the test samples are, chooses the kind and fusion rule. The
page gives the chosen rule's test accuracy from ``late_fusion.json`` (models fitted on every
training row), beside the test-chosen best and DyMo. The hyper-parameters were tuned on all
training rows, the held-out ones included, which favours nothing in the choice among kinds but
makes each kind's validation score a little optimistic. The network kind is left out (a
DyMoClassifier per modality; on the table sets classical kinds are the best late fusion).

    python -m benchmarks.late_fusion_choice --datasets features_mnist features_fashion breast_cancer
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import train_test_split

from dymo_sklearn.datasets import apply_missing

from .common import load_split, subset, write_report
from .late_fusion import EARLIER_DEFAULT, RESULTS, _dymo_rows, candidates, fuse

KINDS = ("LogReg", "SVC", "HGB")


def tuned(kind, n_features, params, seed):
    """``late_fusion.py``'s model of one modality with its recorded hyper-parameters."""
    estimator, _ = candidates(kind, n_features, seed)
    params = {key: int(value) if key == "max_leaf_nodes" else value for key, value in params.items()}
    model = clone(estimator).set_params(**params)
    return CalibratedClassifierCV(model, method="sigmoid", cv=5, ensemble=False) if kind == "SVC" else model


def choose(dataset, seed, fits):
    """Per η, the validation accuracy of every kind and fusion rule."""
    X, y, _, _, rates = load_split(dataset, seed, False)
    fit_rows, held_out = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=y)
    X_fit, X_held = subset(X, fit_rows), subset(X, held_out)
    classes = np.unique(y)
    rows = []
    for kind in KINDS:
        chosen = next(f["chosen"] for f in fits if (f["dataset"], f["seed"], f["kind"]) == (dataset, seed, kind))
        models = {}
        for name, values in X_fit.items():
            flat = np.asarray(values).reshape(len(fit_rows), -1)
            models[name] = tuned(kind, flat.shape[1], chosen[name], seed).fit(flat, y[fit_rows])
        for i, rate in enumerate(rates):
            masked = apply_missing(X_held, rate, random_state=10_000 + 1000 * seed + i)
            predicted = fuse(models, {k: np.asarray(v) for k, v in masked.items()}, classes)
            for fusion, labels in predicted.items():
                rows.append(dict(dataset=dataset, seed=seed, rate=float(rate), method=f"{kind} ({fusion})",
                                 validation=float(np.mean(labels == y[held_out]))))
    print(f"[{dataset}] seed {seed} done", flush=True)
    return rows


def report(run, command):
    test = pd.DataFrame(json.loads((RESULTS / "late_fusion.json").read_text())["records"])
    rows = pd.DataFrame(run["rows"])
    lines = ["# Late fusion chosen by validation, against the test-chosen best and DyMo", "",
             f"`{command}`", "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             "Accuracy (%), mean over the seeds; *validation-chosen*: per seed and η, the kind and fusion rule "
             "with the best held-out accuracy (ties: the first of LogReg, SVC, HGB, mean before product), scored "
             "on the test samples; *test-chosen*: the best mean over the seeds of every classical kind and rule "
             "on the test samples (the network kind excluded, as here). DyMo: as shipped before single passes and "
             "teachers became its defaults (`earlier_default.json`) and the candidate that became them (single "
             "passes + teachers, `teachers_runs.json`).", ""]
    for dataset, part in rows.groupby("dataset", sort=False):
        seeds = sorted(int(s) for s in part.seed.unique())
        rates = sorted(part.rate.unique())
        mine = test[(test.dataset == dataset) & test.seed.isin(seeds)
                    & test.method.str.split(" ").str[0].isin(KINDS)]
        shipped = _dymo_rows(dataset, EARLIER_DEFAULT)
        candidate = _dymo_rows(dataset, RESULTS / "teachers_runs.json")
        lines += [f"## {dataset} (seeds {', '.join(map(str, seeds))})", "",
                  "| | " + " | ".join(f"η = {r:.2f}" for r in rates) + " |", "|---|" + "---|" * len(rates)]
        chosen_cells, best_cells, picks = [], [], []
        for rate in rates:
            at = part[np.isclose(part.rate, rate)]
            scores = []
            for seed in seeds:
                options = at[at.seed == seed]
                pick = options.loc[options.validation.idxmax(), "method"]
                picks.append(pick)
                scores.append(mine[(mine.seed == seed) & np.isclose(mine.rate, rate) & (mine.method == pick)]
                              .accuracy.iloc[0])
            chosen_cells.append(f"{100 * np.mean(scores):.1f}")
            means = mine[np.isclose(mine.rate, rate)].groupby("method").accuracy.mean()
            best_cells.append(f"{100 * means.max():.1f} {means.idxmax()}")
        lines.append("| late fusion, validation-chosen | " + " | ".join(chosen_cells) + " |")
        lines.append("| late fusion, test-chosen | " + " | ".join(best_cells) + " |")
        for label, frame in (("DyMo, earlier default", shipped), ("DyMo, candidate", candidate)):
            frame = frame[(frame.method == "dymo") & frame.seed.isin(seeds)]
            if frame.seed.nunique() != len(seeds):
                continue
            means = frame.groupby("rate").accuracy.mean()
            lines.append(f"| {label} | " + " | ".join(
                f"{100 * means[min(means.index, key=lambda r: abs(r - rate))]:.1f}" for rate in rates) + " |")
        counts = pd.Series(picks).value_counts()
        lines += ["", "Chosen: " + ", ".join(f"{method} {count}×" for method, count in counts.items()) + ".", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["features_mnist", "features_fashion", "breast_cancer"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    fits = json.loads((RESULTS / "late_fusion.json").read_text())["fits"]
    rows = [row for dataset in args.datasets for seed in args.seeds for row in choose(dataset, seed, fits)]
    write_report("late_fusion_choice", False, {"rows": rows}, report, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
