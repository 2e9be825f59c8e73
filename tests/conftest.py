"""Shared fixtures: small real data (scikit-learn digits) and tiny networks."""

import os

import numpy as np
import pytest
import torch
from sklearn.impute import SimpleImputer

from dymo_sklearn import MultimodalDict
from dymo_sklearn.experimental import DyMoResearchClassifier
from dymo_sklearn.datasets import make_multiview_digits

# Tiny networks gain nothing from intra-op threads, and threads oversubscribe under CPU contention.
torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    """With DYMO_FAIL_ON_IMPORT_SKIP=1 (set by CI), a test skipped because a module could not be
    imported fails: the install command that set up this environment forgot a dependency."""
    if (os.environ.get("DYMO_FAIL_ON_IMPORT_SKIP") == "1" and report.skipped
            and not hasattr(report, "wasxfail") and "could not import" in str(report.longrepr)):
        report.outcome = "failed"


pytest_collectreport = pytest_runtest_logreport


@pytest.fixture(scope="session")
def image_table_data():
    """Digits as an (n, 1, 8, 8) image plus a 16-feature table (row/column ink profiles of
    another digit of the same class, with noise); 20 % of images and 20 % of tables missing,
    never both."""
    views, y = make_multiview_digits(2, n_samples=400, background=0.3, random_state=0)
    rng = np.random.default_rng(0)
    other = views["m1"][:, 0]
    table = np.concatenate([other.sum(axis=1), other.sum(axis=2)], axis=1)
    table = (table + rng.normal(0, 0.2, table.shape)).astype(np.float32)
    image = views["m0"].copy()
    drop = rng.random(len(y))
    image[drop < 0.2] = np.nan
    table[(drop >= 0.2) & (drop < 0.4)] = np.nan
    return MultimodalDict(image=image, table=table), y


@pytest.fixture(scope="session")
def fitted_multiview():
    """A reasonably trained model on complete 3-view digits, plus held-out complete data.

    It uses the paper's acceptance rule (threshold 0) and the paper's training (no
    recovery-aware pass): these tests check faithfulness to the paper, and several swap in another
    recoverer after fitting, which only leaves the network valid when it never saw recoveries."""
    X, y = make_multiview_digits(3, background=1.0, random_state=0)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1200], order[1200:]
    clf = DyMoResearchClassifier(
        recoverer=SimpleImputer(), d_model=32, n_heads=2, n_layers=1, projection_dim=16,
        max_epochs=15, acceptance_threshold=0.0, recovery_aware=False, random_state=0,
    ).fit(X[train], y[train])
    return clf, X[test], y[test]
