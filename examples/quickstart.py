"""Quickstart: DyMo vs. discarding vs. fusing every recovered modality, on offline data.

Three views of each sample are three different real 8x8 digit images of the same class, each on
its own textured background (a PolyMNIST-like set built from scikit-learn's digits). The
model trains on complete samples; at test time two of the three views are missing per sample.

It prints skorch's epoch table while it fits (about 100 epochs, 1-2 minutes on one CPU core),
then its figures in a fixed format, one ``name value`` pair a line, between the lines
``== results ==`` and ``== end ==``: the README quotes them and CI compares the two.
"""

import time

import numpy as np
import torch
from sklearn.impute import KNNImputer
from sklearn.model_selection import train_test_split

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits

# One torch thread: these small networks gain little from more, two jobs sharing cores slow each
# other badly when each takes them all, and the figures below do not depend on the core count.
torch.set_num_threads(1)

MISSING_RATE = 2 / 3  # two of three views missing per test sample

started = time.perf_counter()
X, y = make_multiview_digits(n_modalities=3, background=1.0, random_state=0)
train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)
X_test = apply_missing(X[test], MISSING_RATE, random_state=1)
print(f"[1/3] data: {len(train)} training samples, {len(test)} test samples with "
      f"{MISSING_RATE:.0%} of their views missing", flush=True)

print("[2/3] fitting DyMoClassifier (one line per epoch; early stopping ends it):", flush=True)
clf = DyMoClassifier(recoverer=KNNImputer(n_neighbors=5), random_state=0, verbose=1)
clf.fit(X[train], y[train])
fit_s = time.perf_counter() - started
print(f"      fitted in {fit_s:.1f} s, {len(clf.net_.history)} epochs", flush=True)

print("[3/3] scoring each selection on the test set:", flush=True)
scores = {}
for selection, meaning in [
    ("none", "discard: observed views only"),
    ("all", "fuse every recovered view"),
    ("dymo", "DyMo: select recovered views per sample"),
]:
    clf.set_params(selection=selection)
    scores[selection] = clf.score(X_test, y[test])
    print(f"      {selection:>5}  {scores[selection]:.3f}   {meaning}", flush=True)

clf.set_params(selection="dymo")
report = clf.explain(X_test)
n_candidates = int(report["candidates"].map(len).sum())
n_selected = int(report["selected"].map(len).sum())
print("first test samples:")
print(report[["observed", "selected", "prediction_observed_only", "prediction"]].head().to_string())

print("== results ==")
for selection, score in scores.items():
    print(f"accuracy_{selection} {score:.3f}")
print(f"views_recovered {n_candidates}")
print(f"views_used {n_selected}")
print(f"total_s {time.perf_counter() - started:.0f}")
print("== end ==")
