"""Compare recoverers (issue 3): reconstruction error, class alignment, fit/transform time and the
downstream accuracy of dymo / all / none with each. Writes benchmarks/results/recoverers.md and .json.

Run: ``python -m benchmarks.recoverers`` (``--quick`` for a smoke run). One torch thread.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from benchmarks.common import output_folder
from dymo_sklearn import DyMoClassifier, MultimodalDict
from dymo_sklearn.datasets import apply_missing, load_breast_cancer_views, make_multiview_digits
from dymo_sklearn.recovery import MultimodalVAERecoverer, TabularRecoverer, fit_recoverer, recover, recovery_report

# The paper's training (recovery_aware=False): one network serves every recoverer swapped in below;
# a recovery-aware network would have learned the recoveries of the one it was fitted with.
NETWORK = dict(d_model=32, n_heads=4, n_layers=2, projection_dim=32, lr=3e-3, aux_warmup=5,
               early_stopping=False, acceptance_threshold=0.0, recovery_aware=False, device="cpu")


def image_image(seed, quick):
    X, y = make_multiview_digits(3, n_samples=900 if quick else 1797, background=1.0, random_state=seed)
    return X, y, []


def image_table(seed, quick):
    """Breast-cancer mean + SE features as a table, and a digit image of the diagnosis (0 or 1)."""
    views, y = load_breast_cancer_views()
    rng = np.random.default_rng(seed)
    table = np.concatenate([views["mean"], views["se"]], axis=1)
    table = ((table - table.mean(0)) / table.std(0)).astype(np.float32)
    digits, digit_y = make_multiview_digits(1, n_samples=3000, background=1.0, random_state=seed)
    picks = np.array([rng.choice(np.flatnonzero(digit_y == label)) for label in y])
    return MultimodalDict(table=table, image=digits["m0"][picks]), y, ["table"]


def recoverers(dataset, quick):
    epochs = 15 if quick else 60
    found = {
        "SimpleImputer": SimpleImputer(),
        "KNNImputer": KNNImputer(n_neighbors=5),
        "IterativeImputer": IterativeImputer(max_iter=3, n_nearest_features=20, random_state=0),
        "MultimodalVAE": MultimodalVAERecoverer(max_epochs=epochs, random_state=0, device="cpu"),
    }
    if dataset == "image+table":
        found["TabularRecoverer (TIP-style)"] = TabularRecoverer("table", max_epochs=epochs, random_state=0,
                                                                 device="cpu")
    return found


def run(dataset, builder, seeds, quick):
    rows = []
    for seed in seeds:
        X, y, tables = builder(seed, quick)
        order = np.random.default_rng(seed).permutation(len(y))
        cut = int(0.7 * len(y))
        train, test = order[:cut], order[cut:]
        X_train, X_test = X[train], apply_missing(X[test], 0.67, entry_rate=0.3, tabular=tables, random_state=seed)
        clf = DyMoClassifier(recoverer=SimpleImputer(), max_epochs=8 if quick else 30, random_state=seed, **NETWORK)
        clf.fit(X_train, y[train])
        for name, recoverer in recoverers(dataset, quick).items():
            start = time.perf_counter()
            fitted = fit_recoverer(recoverer, dict(X_train))
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            recover(fitted, dict(X_test))
            transform_s = time.perf_counter() - start
            report = recovery_report(fitted, X[test], y[test], clf)
            clf.recoverer_ = fitted
            accuracy = {mode: clf.set_params(selection=mode).score(X_test, y[test]) for mode in ("none", "all", "dymo")}
            rows.append(dict(dataset=dataset, seed=seed, recoverer=name, fit_s=fit_s, transform_s=transform_s,
                             rmse=float(report["rmse"].mean()), rmse_mean=float(report["rmse_mean"].mean()),
                             alignment=float(report["class_alignment"].mean()),
                             true_alignment=float(report["true_alignment"].mean()), **accuracy))
            print(rows[-1], flush=True)
    return rows


def summarise(rows):
    lines = ["| data | recoverer | RMSE (mean-baseline) | class alignment (real) | fit s | transform s | "
             "none | all | dymo |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["dataset"], r["recoverer"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for dataset, recoverer in keys:
        group = [r for r in rows if r["dataset"] == dataset and r["recoverer"] == recoverer]

        def stat(key, scale=1.0, digits=1):
            values = np.array([r[key] for r in group]) * scale
            return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}" if len(values) > 1 else f"{values.mean():.{digits}f}"

        lines.append(f"| {dataset} | {recoverer} | {stat('rmse', digits=3)} ({stat('rmse_mean', digits=3)}) | "
                     f"{stat('alignment', 100)} ({stat('true_alignment', 100)}) | {stat('fit_s')} | "
                     f"{stat('transform_s', digits=2)} | {stat('none', 100)} | {stat('all', 100)} | {stat('dymo', 100)} |")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [0] if args.quick else [0, 1, 2]
    start = time.perf_counter()
    rows = run("image+image", image_image, seeds, args.quick) + run("image+table", image_table, seeds, args.quick)
    suffix = "_quick" if args.quick else ""
    (output_folder(args.quick) / f"recoverers{suffix}.json").write_text(json.dumps(rows, indent=1))
    command = "python -m benchmarks.recoverers" + (" --quick" if args.quick else "")
    lines = [
        "# Recoverers compared",
        "",
        f"`{command}` — {len(seeds)} seed(s), {(time.perf_counter() - start) / 60:.1f} min on {os.cpu_count()} CPU cores, 1 torch "
        "thread. Test samples miss 2 of 3 (image+image: 3 digit views) or 1 of 2 (image+table: breast-cancer "
        "mean+SE table and a digit image of the diagnosis) modalities, and 30 % of the remaining table entries. "
        "One DyMo network per seed (trained on complete data, the paper's threshold 0) is evaluated with each "
        "recoverer. RMSE: a whole modality hidden on held-out samples and recovered (standardised table units; "
        "image pixels in [0, 1]); in brackets the held-out mean as a baseline. Class alignment: share of "
        "recovered modalities classified as the true class on their own; in brackets the same for the real "
        "modality. Accuracies in %.",
        "",
        *summarise(rows),
    ]
    (output_folder(args.quick) / f"recoverers{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))



if __name__ == "__main__":
    main()
