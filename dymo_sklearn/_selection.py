"""Inference-time selection of recovered modalities (DyMo's Algorithm 1), batched on a device.

Each sample starts from what it observed; every modality that is not fully observed has a
recovered *candidate*. A reward compares the fused representation with a candidate added to the
current one; candidates are accepted one at a time (best first) while their reward is positive,
and a candidate whose reward is not positive is dropped for good.

Rewards (S = max_k p(k|z), g = ICS of the predicted class, u = with the candidate):

* ``"log"``  : R = log S_u - log S + min(0, log g_u - log g). This is what the paper's Eq. 7
  means: calibration is a log-penalty that only ever lowers the reward of a candidate whose
  representation is less typical of its predicted class than the current one.
* ``"prob"`` : R = S_u * G - S, the form of the authors' released code, with G = 1 unless the ICS
  drops, else G = log g / log g_u (cosine) or g_u / g (squared Euclidean).

Both keep calibration from raising a reward (G <= 1, the log-penalty <= 0). The paper's literal
``-log p(y|z) + alpha log p(y_u|z_u)`` with alpha < 1 would instead raise it, since log p <= 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._prototypes import log_ics, subset_codes
from .nn.distances import prototype_log_probabilities

SELECTIONS = ("dymo", "iterative", "simultaneous", "all", "none")
REWARDS = ("log", "prob")


@dataclass
class Assessment:
    """What the prototypes say of fused representations: log max_k p(k|z) and log ICS."""

    log_confidence: torch.Tensor
    log_ics: torch.Tensor


def assess(network, hidden, present, statistics, distance, temperature):
    """Prototype confidence and ICS of the predicted class for fused [CLS] outputs."""
    z = network.heads(hidden)[1]
    log_p = prototype_log_probabilities(z, statistics.prototypes, distance, temperature)
    log_confidence, predicted = log_p.max(dim=1)
    row = statistics.lookup(subset_codes(present))
    return Assessment(log_confidence, log_ics(z, predicted, row, statistics, distance))


def reward(current, candidate, *, form, calibrated, distance):
    """Reward of adding a candidate (``candidate``) to the current state (``current``)."""
    if form == "log":
        value = candidate.log_confidence - current.log_confidence
        if calibrated:
            value = value + (candidate.log_ics - current.log_ics).clamp_max(0.0)
        return value
    if form == "prob":
        gain = torch.ones_like(candidate.log_ics)
        if calibrated:
            drops = candidate.log_ics < current.log_ics
            if distance == "cosine":
                ratio = current.log_ics / torch.where(drops, candidate.log_ics, torch.full_like(gain, -1.0))
            else:
                ratio = torch.exp(candidate.log_ics - current.log_ics)
            gain = torch.where(drops, ratio.clamp(0.0, 1.0), gain)
        return candidate.log_confidence.exp() * gain - current.log_confidence.exp()
    raise ValueError(f"Unknown reward {form!r}; expected one of {REWARDS}.")


@dataclass
class SelectionResult:
    """Per-sample outcome of selection on one batch."""

    hidden: torch.Tensor  # (B, d) fused [CLS] of the final state
    selected: torch.Tensor  # (B, M) bool, candidates accepted
    order: torch.Tensor  # (B, M) int, 1-based acceptance step, 0 if not accepted
    rewards: torch.Tensor  # (B, M) reward when last evaluated, NaN if never evaluated
    evaluations: torch.Tensor  # (B, M) int, fusion passes spent on each candidate


class CandidateFusion:
    """Fuses any state (which candidates are taken) from tokens encoded once per version."""

    def __init__(self, network, tokens_observed, tokens_recovered, present, candidates):
        self.network = network
        self.tokens_observed = tokens_observed
        self.tokens_recovered = tokens_recovered
        self.present = present
        self.candidates = candidates

    def presence(self, rows, taken):
        return self.present[rows] | taken

    def fuse(self, rows, taken):
        return self.network.fuse_versions(self.tokens_observed[rows], self.tokens_recovered[rows], self.present[rows],
                                          taken)


@dataclass
class _Search:
    """The state of one batch during selection, shared by the modes that compute rewards."""

    fusion: CandidateFusion
    statistics: object
    reward_form: str
    distance: str
    temperature: float
    calibrated: bool

    def __post_init__(self):
        candidates = self.fusion.candidates
        batch, n_modalities = candidates.shape
        device = candidates.device
        self.rows = torch.arange(batch, device=device)
        self.selected = torch.zeros_like(candidates)
        self.active = candidates.clone()
        self.order = torch.zeros(batch, n_modalities, dtype=torch.long, device=device)
        self.rewards = torch.full((batch, n_modalities), float("nan"), device=device)
        self.evaluations = torch.zeros(batch, n_modalities, dtype=torch.long, device=device)
        self.hidden = self.fusion.fuse(self.rows, self.selected)
        self.current = self._assess(self.hidden, self.rows, self.selected)

    def _assess(self, hidden, rows, taken):
        return assess(self.fusion.network, hidden, self.fusion.presence(rows, taken), self.statistics,
                      self.distance, self.temperature)

    def try_every_active_candidate(self):
        """One fusion pass per (sample, active candidate) added to the current state.

        Returns the pairs, their fused [CLS], their assessment and a (B, M) table of rewards
        (-inf where nothing was tried).
        """
        sample, modality = self.active.nonzero(as_tuple=True)
        trial = self.selected[sample].clone()
        trial[torch.arange(len(sample), device=trial.device), modality] = True
        trial_hidden = self.fusion.fuse(sample, trial)
        trial_assessment = self._assess(trial_hidden, sample, trial)
        current = Assessment(self.current.log_confidence[sample], self.current.log_ics[sample])
        values = reward(current, trial_assessment, form=self.reward_form, calibrated=self.calibrated,
                        distance=self.distance)
        self.rewards[sample, modality] = values
        self.evaluations[sample, modality] += 1
        table = torch.full_like(self.rewards, -float("inf"))
        table[sample, modality] = values
        return sample, modality, trial_hidden, trial_assessment, table

    def result(self):
        return SelectionResult(self.hidden, self.selected, self.order, self.rewards, self.evaluations)


def _fuse_fixed(fusion, taken):
    rows = torch.arange(len(taken), device=taken.device)
    no_rewards = torch.full(taken.shape, float("nan"), device=taken.device)
    return SelectionResult(fusion.fuse(rows, taken), taken, taken.long(), no_rewards, torch.zeros_like(taken.long()))


def select_none(fusion, statistics, **options):
    """Discard: fuse only what each sample observed (no candidate, no reward)."""
    return _fuse_fixed(fusion, torch.zeros_like(fusion.candidates))


def select_all(fusion, statistics, **options):
    """The paper's Baseline: fuse every recovered candidate at once."""
    return _fuse_fixed(fusion, fusion.candidates.clone())


def select_simultaneous(fusion, statistics, *, reward_form, distance, temperature, threshold=0.0):
    """S (the paper's Table 2): reward every candidate once, uncalibrated, against the observed
    state; accept all above the threshold in one step."""
    search = _Search(fusion, statistics, reward_form, distance, temperature, calibrated=False)
    if not search.active.any():
        return search.result()
    sample, modality, trial_hidden, _, table = search.try_every_active_candidate()
    accept = search.active & (table > threshold)
    search.selected |= accept
    search.order[accept] = 1
    accepted_per_row = accept.sum(dim=1)
    # One accepted candidate: its trial pass is the final state; several: fuse them together.
    single = (accepted_per_row == 1)[sample] & accept[sample, modality]
    search.hidden[sample[single]] = trial_hidden[single]
    several = (accepted_per_row > 1).nonzero(as_tuple=True)[0]
    if several.numel():
        search.hidden[several] = fusion.fuse(several, search.selected[several])
    return search.result()


def select_iterative(fusion, statistics, *, reward_form, distance, temperature, threshold=0.0, calibrated=False):
    """Algorithm 1: accept the best candidate while its reward exceeds the threshold; a candidate
    whose reward does not is dropped for good. ``calibrated`` adds the ICS term (I+C)."""
    search = _Search(fusion, statistics, reward_form, distance, temperature, calibrated=calibrated)
    step = 0
    while search.active.any():
        step += 1
        sample, modality, trial_hidden, trial_assessment, table = search.try_every_active_candidate()
        best_value, best = table.max(dim=1)
        accept = search.active.any(dim=1) & (best_value > threshold)
        search.active &= table > threshold
        accepted = accept.nonzero(as_tuple=True)[0]
        if accepted.numel() == 0:
            break
        chosen = best[accepted]
        search.active[accepted, chosen] = False
        search.selected[accepted, chosen] = True
        search.order[accepted, chosen] = step
        # Reuse the accepted candidate's own pass: no extra fusion for the new state.
        lookup = torch.full_like(search.order, -1)
        lookup[sample, modality] = torch.arange(len(sample), device=lookup.device)
        pass_index = lookup[accepted, chosen]
        search.hidden[accepted] = trial_hidden[pass_index]
        search.current.log_confidence[accepted] = trial_assessment.log_confidence[pass_index]
        search.current.log_ics[accepted] = trial_assessment.log_ics[pass_index]
    return search.result()


def select_dymo(fusion, statistics, **options):
    """I+C: Algorithm 1 with the calibrated reward."""
    return select_iterative(fusion, statistics, calibrated=True, **options)


SELECTORS = {"dymo": select_dymo, "iterative": select_iterative, "simultaneous": select_simultaneous,
             "all": select_all, "none": select_none}


def select(fusion, statistics, *, selection, reward_form, distance, temperature, threshold=0.0):
    """Run one selection mode on a batch; returns a :class:`SelectionResult`."""
    if selection not in SELECTORS:
        raise ValueError(f"Unknown selection {selection!r}; expected one of {SELECTIONS}.")
    return SELECTORS[selection](fusion, statistics, reward_form=reward_form, distance=distance,
                                temperature=temperature, threshold=threshold)
