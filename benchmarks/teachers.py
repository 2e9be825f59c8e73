"""Experiment (issue 33): distil training passes from classical models of each view.

Inside ``fit``, each modality gets a classical teacher (an RBF SVC, C = 10, Platt-scaled) whose
probabilities on the training rows are cross-fitted (5 folds), so no row is taught by a model
that saw its label. Every subset pass of training then adds ``teacher_weight`` times the KL
divergence from the product of the subset's teachers (the late fusion a user would run) to the
network's prediction for that subset; with ``--teach singles`` only the passes that fuse one
modality, each from its own teacher. ``--single-passes`` trains with
``DyMoResearchClassifier(single_passes=True)``. Benchmarks only: not an estimator option.

    python -m benchmarks.teachers --datasets features_mnist breast_cancer --seeds 0 1 2
    python -m benchmarks.teachers --datasets features_mnist --single-passes --teach singles
    python -m benchmarks.teachers --report-from benchmarks/results/teachers.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import SVC

from dymo_sklearn._classifier import PrototypeTracker, SubsetSamplingNet
from dymo_sklearn._training import build_net
from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.experimental import DyMoResearchClassifier
from dymo_sklearn.nn.dymo import DyMoNetwork

from .common import load_split

RESULTS = Path(__file__).parent / "results"

TEACHER = "teacher:"


def cross_fitted_teacher(values, y, seed):
    """(n, K) log-probabilities of an out-of-fold SVC on the rows where the view is observed; 0 elsewhere."""
    flat = values.reshape(len(values), -1)
    observed = ~np.isnan(flat).all(axis=1)
    n_classes = len(np.unique(y))
    out = np.zeros((len(values), n_classes), dtype=np.float32)
    teacher = CalibratedClassifierCV(SVC(C=10.0), method="sigmoid", cv=3, ensemble=False)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    filled = np.nan_to_num(flat[observed])
    proba = cross_val_predict(teacher, filled, y[observed], cv=folds, method="predict_proba")
    out[observed] = np.log(np.clip(proba, 1e-6, None))
    return out


class TeacherNetwork(DyMoNetwork):
    def forward(self, **inputs):
        teachers = [inputs.pop(f"{TEACHER}{name}") for name in self.modality_names if f"{TEACHER}{name}" in inputs]
        self.last_teacher = torch.stack(teachers, dim=1) if teachers else None  # (B, M, K)
        return super().forward(**inputs)

    def _sample_subsets(self, present):
        self.last_passes = super()._sample_subsets(present)
        return self.last_passes


class TeacherNet(SubsetSamplingNet):
    def __init__(self, *args, teacher_weight=1.0, teach="all", **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher_weight = teacher_weight
        self.teach = teach

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        module = self.module_
        if not training or module.last_teacher is None or self.teacher_weight <= 0:
            return loss
        passes = module.last_passes.float()  # (A, B, M)
        fused = torch.einsum("abm,bmk->abk", passes, module.last_teacher)  # product fusion
        target = F.softmax(fused, dim=-1)
        student = F.log_softmax(y_pred[0][: passes.shape[0]], dim=-1)
        kl = (target * (torch.log(target.clamp_min(1e-12)) - student)).sum(-1)  # (A, B)
        if self.teach == "singles":  # only the passes that fuse one modality, from its own teacher
            single = passes.sum(-1) == 1
            kl = kl[single] if single.any() else kl.new_zeros(1)
        return loss + self.teacher_weight * kl.mean()


class TeacherDyMo(DyMoResearchClassifier):
    teacher_weight = 1.0
    teach = "all"

    def fit(self, X, y, sample_weight=None):
        self._teacher_labels = np.unique(np.asarray(y), return_inverse=True)[1]
        return super().fit(X, y, sample_weight=sample_weight)

    def _prepare_fit(self, arrays, seed, labeled=None):
        inputs = super()._prepare_fit(arrays, seed, labeled)
        teachers = {f"{TEACHER}{name}": cross_fitted_teacher(arrays[name], self._teacher_labels, seed)
                    for name in self.modalities_}
        return {**inputs, **teachers}

    def _build_net(self, specs, train_split, device, seed, input_scaling=None):
        module_kwargs = {**self._module_kwargs(specs, input_scaling), "projection_dim": self.projection_dim,
                         "n_subsets": self._n_subsets(warn=False), "entry_dropout": self.entry_dropout,
                         "single_passes": bool(self.single_passes),
                         "recovered_embedding": bool(self.recovery_aware)}
        tracker = PrototypeTracker(len(self.classes_), self.distance, self.aux_warmup)
        return build_net(TeacherNet, TeacherNetwork, module_kwargs, callbacks=[("prototypes", tracker)],
                         distance=self.distance, temperature=self.temperature, aux_weight=self.aux_weight,
                         teacher_weight=self.teacher_weight, teach=self.teach, **self._training_kwargs(train_split, device, seed))


VARIANTS = {(False, "all"): "teachers, every pass", (True, "all"): "teachers, every pass + single passes",
            (True, "singles"): "teachers, one-modality passes + single passes"}


def report(run, command):
    """The page: each teacher variant beside the shipped model, the single passes alone and the
    best late fusion, on the same seeds, splits and masks; dymo and its own none."""
    import pandas as pd

    from .late_fusion import _dymo_rows, best_at

    records = run["records"]
    frame = pd.DataFrame(records)
    frame["variant"] = [VARIANTS[(bool(r.get("single_passes", False)), r.get("teach", "all"))] for r in records]
    lines = ["# Per-view teachers: distilling training passes from classical models of each view",
             "", f"`{command}`", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             "Accuracy (%), mean over the seeds named; `shipped` is the shipped model of the dilemma records, "
             "`single passes` the candidate of `single_passes_runs.json` (same splits, masks and seeds; a "
             "teacher weight of 0 reproduces them exactly).", ""]
    for dataset, part in frame.groupby("dataset", sort=False):
        rates = sorted(part.rate.unique())
        seeds = sorted(int(seed) for seed in part.seed.unique())
        references = {"shipped": _dymo_rows(dataset),
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
    parser.add_argument("--teach", choices=["all", "singles"], default="all",
                        help="distil every pass from its modalities' teachers, or only the one-modality passes")
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
                model = TeacherDyMo(random_state=seed, device="cpu", single_passes=args.single_passes)
                model.teacher_weight = weight
                model.teach = args.teach
                start = time.perf_counter()
                model.fit(X_train, y_train)
                seconds = time.perf_counter() - start
                for selection in ("dymo", "none", "all"):
                    model.set_params(selection=selection)
                    for rate, X in tests.items():
                        records.append(dict(dataset=dataset, seed=seed, teacher_weight=weight, method=selection,
                                            single_passes=args.single_passes, teach=args.teach,
                                            rate=rate, accuracy=float(np.mean(model.predict(X) == y_test)),
                                            fit_seconds=seconds))
                print(dataset, seed, weight, f"{seconds:.0f}s",
                      [round(100 * r["accuracy"], 1) for r in records[-3 * len(tests):]], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"records": records, "command": argv}, indent=1))


if __name__ == "__main__":
    main()
