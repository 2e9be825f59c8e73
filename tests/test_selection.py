"""Reward, ICS and selection behaviour on hand-built and planted problems."""

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import norm

from dymo_sklearn._prototypes import SubsetStatistics, log_ics
from dymo_sklearn._selection import Assessment, assess, reward


class _Identity:
    """Stands in for the network: the [CLS] output is the projected representation."""

    @staticmethod
    def heads(hidden):
        return None, hidden


def _toy_statistics():
    prototypes = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # subset code 1 (modality 0 only) and 3 (both); row 2 is the pooled fallback
    return SubsetStatistics(
        codes=np.array([1, 3]),
        subset_prototypes=np.stack([prototypes, prototypes * 2, prototypes]).astype(np.float32),
        sigma=np.array([[0.5, 0.5], [1.0, 2.0], [0.7, 0.7]], dtype=np.float32),
        prototypes=prototypes,
    ).to_torch("cpu")


def test_assessment_matches_hand_computation_sqeuclidean():
    """Check 3: p(k|z), the subset lookup and ICS = 2(1 - Phi(d / sigma)) by hand."""
    statistics = _toy_statistics()
    z = torch.tensor([[0.8, 0.3], [0.2, 1.5], [0.2, 1.5]])
    present = torch.tensor([[True, False], [True, True], [False, True]])  # codes 1, 3, 2 (unfitted)
    got = assess(_Identity, z, present, statistics, "sqeuclidean", temperature=0.5)

    zn = z.numpy().astype(np.float64)
    c = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = ((zn[:, None] - c[None]) ** 2).sum(-1)
    p = softmax(-d / 0.5, axis=1)
    np.testing.assert_allclose(got.log_confidence.exp().numpy(), p.max(1), rtol=1e-5)
    k = p.argmax(1)
    centres = np.array([c[k[0]], 2 * c[k[1]], c[k[2]]])  # subset 3 has prototypes * 2; code 2 -> pooled
    sigmas = np.array([0.5, [1.0, 2.0][k[1]], 0.7])
    d_own = ((zn - centres) ** 2).sum(-1)
    ics = 2 * (1 - norm.cdf(d_own / sigmas))
    np.testing.assert_allclose(got.log_ics.exp().numpy(), ics, rtol=1e-5)


def test_cosine_distance_and_rewards_by_hand():
    """Check 3: both reward forms with calibration, computed by hand for one candidate."""
    statistics = _toy_statistics()
    z = torch.tensor([[1.0, 1.0]])
    z_u = torch.tensor([[1.0, 0.2]])
    current = assess(_Identity, z, torch.tensor([[True, False]]), statistics, "cosine", 0.1)
    candidate = assess(_Identity, z_u, torch.tensor([[True, True]]), statistics, "cosine", 0.1)

    def state(vector, sigma):
        cos = vector @ np.array([[1.0, 0.0], [0.0, 1.0]]).T / np.linalg.norm(vector)
        p = softmax(-(1 - cos) / 0.1)
        k = p.argmax()
        return p.max(), 2 * (1 - norm.cdf((1 - cos[k]) / sigma[k]))

    S, g = state(np.array([1.0, 1.0]), [0.5, 0.5])
    S_u, g_u = state(np.array([1.0, 0.2]), [1.0, 2.0])
    expected_log = math.log(S_u) - math.log(S) + min(0.0, math.log(g_u) - math.log(g))
    G = math.log(g) / math.log(g_u) if g_u < g else 1.0
    expected_prob = S_u * G - S
    got_log = reward(current, candidate, form="log", calibrated=True, distance="cosine").item()
    got_prob = reward(current, candidate, form="prob", calibrated=True, distance="cosine").item()
    assert got_log == pytest.approx(expected_log, rel=1e-4, abs=1e-6)
    assert got_prob == pytest.approx(expected_prob, rel=1e-4, abs=1e-6)


def test_ics_tail_does_not_underflow():
    """Far from the prototype (d / sigma = 40) log ICS stays finite, unlike float32 1 - Phi."""
    statistics = _toy_statistics()
    z = torch.tensor([[41.0, 0.0]])
    value = log_ics(z, torch.tensor([0]), torch.tensor([2]), statistics, "sqeuclidean").item()
    assert math.isfinite(value)
    assert value == pytest.approx(math.log(2) + norm.logcdf(-1600 / 0.7), rel=1e-3)
    assert 2 * (1 - norm.cdf(torch.tensor(1600 / 0.7, dtype=torch.float32).item())) == 0.0


@pytest.mark.parametrize("form", ["log", "prob"])
@pytest.mark.parametrize("distance", ["cosine", "sqeuclidean"])
def test_calibration_never_raises_a_reward(form, distance):
    """Check 4, over many random confidence / ICS pairs including extreme ones."""
    generator = torch.Generator().manual_seed(0)
    n = 20000

    def random_assessment():
        log_confidence = -torch.rand(n, generator=generator) * 3
        log_ics_values = -torch.rand(n, generator=generator) ** 3 * 60
        log_ics_values[:100] = 0.0
        return Assessment(log_confidence, log_ics_values)

    current, candidate = random_assessment(), random_assessment()
    calibrated = reward(current, candidate, form=form, calibrated=True, distance=distance)
    plain = reward(current, candidate, form=form, calibrated=False, distance=distance)
    assert torch.isfinite(calibrated).all()
    assert (calibrated <= plain + 1e-7).all()
    less_typical = candidate.log_ics < current.log_ics - 1e-3
    assert (calibrated[less_typical] < plain[less_typical]).float().mean() > 0.9


def test_literal_equation_7_would_raise_the_reward():
    """The trap the package avoids: alpha < 1 on a log-probability raises the paper's R*.

    Without calibration (alpha = 1) the literal R* = -log p + log p_u is the package's "log"
    reward; with a less typical candidate (its ICS drops) the literal alpha = 0.5 would raise it,
    the package's calibration lowers it, by exactly the drop in log ICS."""
    log_p, log_p_u = math.log(0.6), math.log(0.7)
    literal = -log_p + 1.0 * log_p_u  # 0.1542; with alpha = 0.5 it would be 0.3325, higher
    current = Assessment(torch.tensor([log_p]), torch.tensor([-1.0]))
    candidate = Assessment(torch.tensor([log_p_u]), torch.tensor([-3.0]))
    plain = reward(current, candidate, form="log", calibrated=False, distance="cosine").item()
    ours = reward(current, candidate, form="log", calibrated=True, distance="cosine").item()
    assert plain == pytest.approx(literal, rel=1e-6)
    assert ours == pytest.approx(literal - 2.0, rel=1e-6)  # log ICS drops from -1 to -3
    assert ours < plain  # lowered, where the literal alpha < 1 would have raised it
