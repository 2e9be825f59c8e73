"""Local random generators: fits never touch the caller's random state and are reproducible in threads."""

import joblib
import numpy as np
import pytest
import torch
from helpers import tiny_mars, tiny_research
from sklearn.model_selection import cross_val_score

from dymo_sklearn import MultimodalDict
from dymo_sklearn._random import dropout
from dymo_sklearn.datasets import apply_missing, make_multiview_digits
from dymo_sklearn.recovery import MultimodalVAERecoverer, TabularRecoverer, fit_recoverer, recover

# Dropout and entry dropout on, so every stochastic part of training runs.
STOCHASTIC = dict(dropout=0.3, device="cpu", random_state=3)


@pytest.fixture(scope="module")
def data():
    X, y = make_multiview_digits(2, n_samples=160, random_state=0)
    return MultimodalDict(**apply_missing(X, 0.3, random_state=1)), y


def _fit_proba(make, X, y):
    return make().fit(X, y).predict_proba(X)


ESTIMATORS = {
    "dymo": lambda: tiny_research(**STOCHASTIC, entry_dropout=0.3),
    "mars": lambda: tiny_mars(**STOCHASTIC),
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fit_leaves_the_callers_random_state_untouched(data, name):
    """Catches torch.manual_seed (or any draw from the global streams) anywhere in fit or predict."""
    X, y = data
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    ESTIMATORS[name]().fit(X, y).predict_proba(X)
    ESTIMATORS[name]().set_params(random_state=None).fit(X, y)
    assert torch.equal(torch_state, torch.get_rng_state())
    after = np.random.get_state()
    assert np.array_equal(numpy_state[1], after[1]) and numpy_state[2] == after[2]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fit_does_not_depend_on_the_callers_seed(data, name):
    """Catches a random draw (dropout, subsets, noise, shuffling, initialisation) from the global stream."""
    X, y = data
    torch.manual_seed(1)
    first = _fit_proba(ESTIMATORS[name], X, y)
    torch.manual_seed(2)
    np.random.seed(2)
    second = _fit_proba(ESTIMATORS[name], X, y)
    assert np.array_equal(first, second)
    other_seed = _fit_proba(lambda: ESTIMATORS[name]().set_params(random_state=4), X, y)
    assert not np.array_equal(first, other_seed)  # the seed does reach the draws


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fits_in_threads_equal_serial_fits(data, name):
    """Catches fits in threads sharing one random stream (the joblib threading backend, Dask threads)."""
    X, y = data
    serial = cross_val_score(ESTIMATORS[name](), X, y, cv=3)
    with joblib.parallel_backend("threading", n_jobs=3):
        threaded = cross_val_score(ESTIMATORS[name](), X, y, cv=3, n_jobs=3)
    np.testing.assert_array_equal(serial, threaded)


@pytest.mark.parametrize("make", [
    lambda: MultimodalVAERecoverer(max_epochs=2, random_state=0, device="cpu"),
    lambda: TabularRecoverer("m0", max_epochs=2, random_state=0, device="cpu"),
], ids=["vae", "tabular"])
def test_neural_recoverers_use_local_generators(make):
    rng = np.random.default_rng(0)
    X = {"m0": rng.normal(size=(80, 6)).astype(np.float32), "m1": rng.normal(size=(80, 3)).astype(np.float32)}
    X["m0"][:20, :3] = np.nan
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = recover(fit_recoverer(make(), X), X)["m0"]
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(2)
    second = recover(fit_recoverer(make(), X), X)["m0"]
    np.testing.assert_array_equal(first, second)


def test_dropout_draws_from_the_given_generator():
    """Catches a dropout that ignores its generator or forgets to rescale the kept values."""
    values = torch.ones(100_000)
    masks = [dropout(values, 0.25, True, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(masks[0], masks[1])
    kept = masks[0][masks[0] > 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))
    assert abs((masks[0] == 0).float().mean() - 0.25) < 0.01  # 7 standard errors
    assert torch.equal(dropout(values, 0.25, False, None), values)
