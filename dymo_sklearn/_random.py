"""Local random generators: fitting never reads or changes the caller's random streams.

Every random draw of training (parameter initialisation, minibatch order, dropout, subset and
pattern sampling, routing noise) comes from generators seeded by the estimator's
``random_state``, so a fit gives the same model in a thread, in a process or serially, whatever
the caller's own random state.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import torch
from sklearn.utils import check_random_state

_CONSTRUCTION_LOCK = threading.Lock()


def fit_seed(random_state):
    """One integer seed for a fit.

    ``None`` draws fresh entropy from the operating system instead of numpy's global stream,
    which it would otherwise advance; an int or a ``RandomState`` follows scikit-learn.
    """
    if random_state is None:
        return int(np.random.default_rng().integers(np.iinfo(np.int32).max))
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextlib.contextmanager
def seeded_construction(seed):
    """Build torch modules with parameters drawn from ``seed``, leaving the caller's stream as it was.

    torch's layers initialise their parameters from the global CPU generator and take no
    generator of their own, so construction forks that generator, seeds the fork and restores
    the caller's state on exit. The lock keeps two fits in threads from interleaving there.
    """
    with _CONSTRUCTION_LOCK, torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


class Stochastic:
    """Mixin of modules that draw random numbers in ``forward``: they draw from ``self.generator``.

    None (the default, e.g. for a module used on its own) falls back to torch's global stream.
    """

    generator = None


def attach_generator(module, generator):
    """Give every :class:`Stochastic` submodule of ``module`` the generator (None to detach)."""
    for submodule in module.modules():
        if isinstance(submodule, Stochastic):
            submodule.generator = generator


def device_generator(seed, device):
    """A torch generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def random_present_subset(present, generator):
    """(B, M) bool: each present modality kept with probability 1/2, and one random present
    modality kept where the coin flips left none."""
    keep = (torch.rand(present.shape, generator=generator, device=present.device) < 0.5) & present
    # A sample with nothing present (every entry hidden by entry dropout) keeps its empty pattern.
    empty = ~keep.any(dim=1) & present.any(dim=1)
    if empty.any():
        pick = torch.multinomial(present[empty].float(), 1, generator=generator).squeeze(1)
        keep[empty.nonzero(as_tuple=True)[0], pick] = True
    return keep


def dropout(values, rate, training, generator):
    """Inverted dropout drawing its mask from ``generator`` (``F.dropout`` cannot take one)."""
    if not training or rate == 0:
        return values
    keep = torch.rand(values.shape, generator=generator, device=values.device) >= rate
    return values * keep.to(values.dtype) / (1.0 - rate)


class Dropout(Stochastic, torch.nn.Module):
    """``nn.Dropout`` whose mask comes from the module's generator."""

    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, values):
        return dropout(values, self.rate, self.training, self.generator)
