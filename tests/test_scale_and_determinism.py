"""Determinism across processes, incomplete training data, many classes, many modalities."""

import subprocess
import sys
import textwrap

import numpy as np
from helpers import tiny_classifier, tiny_research

SCRIPT = textwrap.dedent("""
    import sys, numpy as np, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from helpers import tiny_classifier
    from dymo_sklearn.datasets import make_multiview_digits, apply_missing
    X, y = make_multiview_digits(2, n_samples=200, random_state=0)
    clf = tiny_classifier(device="cpu", random_state=7).fit(X, y)
    proba = clf.predict_proba(apply_missing(X, 0.5, random_state=0))
    sys.stdout.write(proba.astype(np.float64).tobytes().hex())
""")


def test_same_predictions_across_processes():
    import os

    tests = os.path.dirname(__file__)
    runs = [subprocess.run([sys.executable, "-c", SCRIPT.format(tests=tests)], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    assert runs[0] and runs[0] == runs[1]


def test_training_on_incomplete_data():
    """40 % of training samples miss a modality; another 20 % miss table entries."""
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, n)
    X = {"a": (y[:, None] + rng.normal(0, 0.5, (n, 4))).astype(np.float32),
         "b": (y[:, None] + rng.normal(0, 0.5, (n, 6))).astype(np.float32)}
    missing = rng.random(n)
    X["a"][missing < 0.2] = np.nan
    X["b"][(missing >= 0.2) & (missing < 0.4)] = np.nan
    X["b"][(missing >= 0.4) & (missing < 0.6), :3] = np.nan
    clf = tiny_classifier(max_epochs=20, lr=1e-2).fit(X, y)
    assert clf.score(X, y) > 0.8
    report = clf.explain(X)
    assert report["candidates"].map(len).sum() == int((missing < 0.6).sum())


def test_one_hundred_classes():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(100), 6)
    X = {"a": rng.normal(size=(600, 3)).astype(np.float32) + y[:, None] * 0.1,
         "b": rng.normal(size=(600, 2)).astype(np.float32)}
    X["b"][::4] = np.nan
    clf = tiny_classifier(max_epochs=1).fit(X, y)
    assert clf.prototypes_.shape[0] == 100 and clf.ics_sigma_.shape[1] == 100
    assert clf.predict_proba(X).shape == (600, 100)


def test_twelve_modalities_cap_the_subset_statistics():
    rng = np.random.default_rng(2)
    n = 120
    y = rng.integers(0, 2, n)
    X = {f"m{i}": (y[:, None] + rng.normal(0, 1, (n, 2))).astype(np.float32) for i in range(12)}
    for i in range(12):
        X[f"m{i}"][rng.random(n) < 0.3] = np.nan
    X["m0"][np.isnan(np.stack([X[f"m{i}"][:, 0] for i in range(12)], 1)).all(1)] = 0.0
    clf = tiny_research(max_epochs=1, max_subsets=64).fit(X, y)
    assert len(clf.subset_codes_) == 64 < 2 ** 12 - 1
    assert clf.subset_prototypes_.shape[0] == 65  # plus the pooled fallback row
    assert np.isfinite(clf.predict_proba(X)).all()


def test_prediction_is_batched(image_table_data):
    """The network never sees more than predict_batch_size samples per selection call."""
    X, y = image_table_data
    clf = tiny_classifier(predict_batch_size=50).fit(X, y)
    network = clf.net_.module_
    seen = []
    original = network.fuse
    network.fuse = lambda tokens, present: seen.append(tokens.shape[0]) or original(tokens, present)
    try:
        clf.set_params(selection="all").predict(X)
    finally:
        del network.fuse
        clf.set_params(selection="dymo")
    assert max(seen) == 50 and sum(seen) == 400
