"""Scale limits of DyMoClassifier (issue 5): many classes, incomplete training data, many
modalities, large predictions. Writes benchmarks/results/limits.md.

Run: ``python -m benchmarks.limits`` (about 3 minutes on 2 CPU cores, 1 torch thread).
"""

import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from sklearn.impute import KNNImputer, SimpleImputer

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits

SMALL = dict(d_model=32, n_heads=2, n_layers=1, projection_dim=16, random_state=0, device="cpu")


def tabular_views(n, n_classes, n_modalities, width, rng):
    y = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, n_modalities, width)) * 2
    X = {f"v{m}": (centres[y, m] + rng.normal(size=(n, width))).astype(np.float32) for m in range(n_modalities)}
    return X, y


def measure(label, fit, evaluate):
    """Fit, then time and trace ``evaluate(clf) -> (accuracy, note)``."""
    start = time.perf_counter()
    clf = fit()
    fit_s = time.perf_counter() - start
    tracemalloc.start()
    start = time.perf_counter()
    accuracy, note = evaluate(clf)
    predict_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(case=label, fit_s=fit_s, predict_s=predict_s, peak_mib=peak / 2 ** 20, accuracy=accuracy, note=note)


def many_classes(rng):
    X, y = tabular_views(6000, 100, 2, 8, rng)
    train = {k: v[:5000] for k, v in X.items()}
    test = apply_missing({k: v[5000:] for k, v in X.items()}, 0.5, random_state=0)
    return measure(
        "100 classes, 2 tabular views, 5,000 train / 1,000 test, 1 of 2 views missing",
        lambda: DyMoClassifier(recoverer=SimpleImputer(), max_epochs=20, **SMALL).fit(train, y[:5000]),
        lambda clf: (clf.score(test, y[5000:]), f"prototypes {clf.prototypes_.shape}"),
    )


def incomplete_training(rng):
    views, labels = make_multiview_digits(3, background=1.0, random_state=0)
    train = {k: v[:1400].copy() for k, v in views.items()}
    incomplete = rng.random(1400) < 0.4
    which = rng.integers(0, 3, 1400)
    for m, name in enumerate(train):
        train[name][incomplete & (which == m)] = np.nan
    test = apply_missing({k: v[1400:] for k, v in views.items()}, 2 / 3, random_state=1)
    return measure(
        "3-view digits, 40 % of 1,400 training samples miss one view; test: 2 of 3 missing",
        lambda: DyMoClassifier(recoverer=KNNImputer(), max_epochs=30, **SMALL).fit(train, labels[:1400]),
        lambda clf: (clf.score(test, labels[1400:]), f"threshold {clf.acceptance_threshold_:g}"),
    )


def many_modalities(rng):
    X, y = tabular_views(3000, 4, 12, 3, rng)
    test = apply_missing({k: v[2000:] for k, v in X.items()}, 0.5, random_state=2)
    return measure(
        "12 tabular modalities, 2,000 train / 1,000 test, 6 of 12 missing",
        lambda: DyMoClassifier(recoverer=SimpleImputer(), max_epochs=10, **SMALL).fit(
            {k: v[:2000] for k, v in X.items()}, y[:2000]),
        lambda clf: (clf.score(test, y[2000:]), f"{len(clf.subset_codes_)} of {2 ** 12 - 1} subsets fitted"),
    )


def large_prediction(rng):
    X, y = tabular_views(102000, 3, 3, 10, rng)
    test = apply_missing({k: v[2000:] for k, v in X.items()}, 2 / 3, random_state=3)
    input_mib = sum(v.nbytes for v in test.values()) / 2 ** 20
    return measure(
        f"predict on 100,000 samples ({input_mib:.1f} MiB of input), batch 1,024, 2 of 3 views missing",
        lambda: DyMoClassifier(recoverer=SimpleImputer(), max_epochs=5, **SMALL).fit(
            {k: v[:2000] for k, v in X.items()}, y[:2000]),
        lambda clf: (clf.score(test, y[2000:]), "peak includes one float32 copy of the input"),
    )


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = [case(rng) for case in (many_classes, incomplete_training, many_modalities, large_prediction)]
    lines = [
        "# Scale limits",
        "",
        "Measured by `python -m benchmarks.limits` (1 torch thread, CPU), "
        f"torch {torch.__version__}, Python {platform.python_version()}. Small networks "
        "(d_model 32, 1 block); `peak` is the tracemalloc peak during `score` (numpy and Python "
        "allocations; torch's own are not traced and are bounded by `predict_batch_size`).",
        "",
        "| case | fit (s) | predict (s) | peak (MiB) | accuracy | note |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['case']} | {r['fit_s']:.1f} | {r['predict_s']:.2f} | {r['peak_mib']:.1f} | "
              f"{r['accuracy']:.3f} | {r['note']} |" for r in rows]
    Path("benchmarks/results/limits.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
