"""Quickstart: DyMo vs. discarding vs. fusing every recovered modality, on offline data.

Three views of each sample are three different real 8x8 digit images of the same class, each on
its own textured background (a PolyMNIST-like set built from scikit-learn's digits). The
model trains on complete samples; at test time two of the three views are missing per sample.
"""

import time

import numpy as np
from sklearn.impute import KNNImputer
from sklearn.model_selection import train_test_split

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits

MISSING_RATE = 2 / 3  # two of three views missing per test sample

X, y = make_multiview_digits(n_modalities=3, background=1.0, random_state=0)
train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)
X_test = apply_missing(X[test], MISSING_RATE, random_state=1)

clf = DyMoClassifier(recoverer=KNNImputer(n_neighbors=5), random_state=0)
started = time.perf_counter()
clf.fit(X[train], y[train])
print(f"fit: {time.perf_counter() - started:.1f} s, {len(clf.net_.history)} epochs, {len(train)} samples")

print(f"accuracy with {MISSING_RATE:.0%} of views missing ({len(test)} test samples):")
for selection, meaning in [
    ("none", "discard: observed views only"),
    ("all", "fuse every recovered view"),
    ("dymo", "DyMo: select recovered views per sample"),
]:
    clf.set_params(selection=selection)
    print(f"  {selection:>5}  {clf.score(X_test, y[test]):.3f}   {meaning}")

clf.set_params(selection="dymo")
report = clf.explain(X_test)
n_candidates = report["candidates"].map(len).sum()
n_selected = report["selected"].map(len).sum()
print(f"DyMo used {n_selected} of {n_candidates} recovered views; first test samples:")
print(report[["observed", "selected", "prediction_observed_only", "prediction"]].head().to_string())
print(f"total: {time.perf_counter() - started:.1f} s")
