"""Experiment (issue 33): distil training passes from classical models of each view.

Inside ``fit``, each modality gets a classical teacher (an RBF SVC, C = 10, Platt-scaled) whose
probabilities on the training rows are cross-fitted (5 folds), so no row is taught by a model
that saw its label. Every subset pass of training then adds ``teacher_weight`` times the KL
divergence from the product of the subset's teachers (the late fusion a user would run) to the
network's prediction for that subset; with ``--teach singles`` only the passes that fuse one
modality, each from its own teacher. ``--single-passes`` trains with
``DyMoResearchClassifier(single_passes=True)``.

The records of ``teachers.json`` were made by this script at commit 2a492f5, whose teacher saw
the raw (unstandardised) entries and which also had ``--teach singles``. The direction is now the
research option ``DyMoResearchClassifier(teacher_weight=...)`` (standardised entries into the
SVC; every pass whose modalities all have teachers; vector modalities only), which this script
runs; the dilemma runs of the candidate default use it too.

    python -m benchmarks.teachers --datasets features_mnist breast_cancer --seeds 0 1 2
    python -m benchmarks.teachers --report-from benchmarks/results/teachers.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.experimental import DyMoResearchClassifier

from .common import load_split

RESULTS = Path(__file__).parent / "results"


VARIANTS = {(False, "all"): "teachers, every pass", (True, "all"): "teachers, every pass + single passes",
            (True, "singles"): "teachers, one-modality passes + single passes"}


def report(run, command):
    """The page: each teacher variant beside the shipped model, the single passes alone and the
    best late fusion, on the same seeds, splits and masks; dymo and its own none."""
    import pandas as pd

    from .late_fusion import EARLIER_DEFAULT, _dymo_rows, best_at

    records = run["records"]
    frame = pd.DataFrame(records)
    frame["variant"] = [VARIANTS[(bool(r.get("single_passes", False)), r.get("teach", "all"))] for r in records]
    lines = ["# Per-view teachers: distilling training passes from classical models of each view",
             "", f"`{command}`", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             "Accuracy (%), mean over the seeds named; `earlier default` is DyMoClassifier as shipped before "
             "single passes and teachers became its defaults (`earlier_default.json`), "
             "`single passes` the candidate of `single_passes_runs.json` (same splits, masks and seeds; a "
             "teacher weight of 0 reproduces them exactly).", ""]
    for dataset, part in frame.groupby("dataset", sort=False):
        rates = sorted(part.rate.unique())
        seeds = sorted(int(seed) for seed in part.seed.unique())
        references = {"earlier default": _dymo_rows(dataset, EARLIER_DEFAULT),
                      "single passes": _dymo_rows(dataset, RESULTS / "single_passes_runs.json")}
        lines += [f"## {dataset} (seeds {', '.join(map(str, seeds))})", "", "| model | method | " + " | ".join(f"η = {r:.2f}" for r in rates) + " |",
                  "|---|---|" + "---|" * len(rates)]
        for method in ("dymo", "none"):
            for label, rows in [*((v, part[part.variant == v]) for v in VARIANTS.values()), *references.items()]:
                rows = rows[(rows.method == method) & rows.seed.isin(seeds)]
                means = rows.groupby("rate").accuracy.mean()
                counts = rows.groupby("rate").seed.nunique()
                if rows.empty or (counts != len(seeds)).any():
                    continue
                means.index = [min(rates, key=lambda r: abs(r - x)) for x in means.index]
                lines.append(f"| {label} | {method} | " + " | ".join(f"{100 * means[r]:.1f}" for r in rates) + " |")
        late = [best_at(dataset, rate, seeds) for rate in rates]
        if all(late):
            lines.append("| best late fusion | | " + " | ".join(f"{100 * score:.1f} {name}" for name, score in late)
                         + " |")
        lines.append("")
    if run.get("note"):
        lines += [f"Note: {run['note']}", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["features_mnist"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0])
    parser.add_argument("--single-passes", action="store_true", help="with the single-modality passes")
    parser.add_argument("--out", default="build/benchmarks/teachers.json")
    parser.add_argument("--report-from", nargs="+", default=None, metavar="JSON",
                        help="run nothing: merge these runs' records into benchmarks/results/teachers.json and .md")
    args = parser.parse_args(argv)
    if args.report_from:
        runs = [json.loads(Path(path).read_text()) for path in args.report_from]
        records = [row for run in runs for row in run["records"]]
        note = " ".join(run["note"] for run in runs if run.get("note"))
        merged = {"records": records, "note": note}
        (RESULTS / "teachers.json").write_text(json.dumps(merged, indent=0))
        page = report(merged, "python -m benchmarks.teachers --report-from " + " ".join(args.report_from))
        (RESULTS / "teachers.md").write_text(page)
        print(page)
        return
    records = []
    for dataset in args.datasets:
        for seed in args.seeds:
            X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, False)
            tests = {float(r): apply_missing(X_test, r, random_state=1000 * seed + i) for i, r in enumerate(rates)}
            for weight in args.weights:
                model = DyMoResearchClassifier(random_state=seed, device="cpu", single_passes=args.single_passes,
                                               teacher_weight=weight)
                start = time.perf_counter()
                model.fit(X_train, y_train)
                seconds = time.perf_counter() - start
                for selection in ("dymo", "none", "all"):
                    model.set_params(selection=selection)
                    for rate, X in tests.items():
                        records.append(dict(dataset=dataset, seed=seed, teacher_weight=weight, method=selection,
                                            single_passes=args.single_passes, teach="all",
                                            rate=rate, accuracy=float(np.mean(model.predict(X) == y_test)),
                                            fit_seconds=seconds))
                print(dataset, seed, weight, f"{seconds:.0f}s",
                      [round(100 * r["accuracy"], 1) for r in records[-3 * len(tests):]], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"records": records, "command": argv}, indent=1))


if __name__ == "__main__":
    main()
