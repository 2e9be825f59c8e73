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
        self.token_modality = network.token_modality

    def presence(self, rows, taken):
        return self.present[rows] | taken

    def fuse(self, rows, taken):
        use_recovered = taken[:, self.token_modality][..., None]
        tokens = torch.where(use_recovered, self.tokens_recovered[rows], self.tokens_observed[rows])
        return self.network.fuse(tokens, self.presence(rows, taken))


def select(fusion, statistics, *, selection, reward_form, distance, temperature, threshold=0.0):
    """Run one selection mode on a batch; returns a :class:`SelectionResult`."""
    candidates = fusion.candidates
    batch, n_modalities = candidates.shape
    device = candidates.device
    rows = torch.arange(batch, device=device)
    selected = torch.zeros_like(candidates)
    order = torch.zeros(batch, n_modalities, dtype=torch.long, device=device)
    rewards = torch.full((batch, n_modalities), float("nan"), device=device)
    evaluations = torch.zeros(batch, n_modalities, dtype=torch.long, device=device)

    if selection in ("none", "all"):
        taken = candidates.clone() if selection == "all" else selected
        return SelectionResult(fusion.fuse(rows, taken), taken, order + taken.long(), rewards, evaluations)
    if selection not in SELECTIONS:
        raise ValueError(f"Unknown selection {selection!r}; expected one of {SELECTIONS}.")

    calibrated = selection != "iterative"
    hidden = fusion.fuse(rows, selected)
    current = assess(fusion.network, hidden, fusion.presence(rows, selected), statistics, distance, temperature)
    active = candidates.clone()
    step = 0
    while active.any():
        step += 1
        sample, modality = active.nonzero(as_tuple=True)
        trial = selected[sample].clone()
        trial[torch.arange(len(sample), device=device), modality] = True
        trial_hidden = fusion.fuse(sample, trial)
        trial_assessment = assess(fusion.network, trial_hidden, fusion.presence(sample, trial), statistics,
                                  distance, temperature)
        current_here = Assessment(current.log_confidence[sample], current.log_ics[sample])
        values = reward(current_here, trial_assessment, form=reward_form, calibrated=calibrated, distance=distance)
        rewards[sample, modality] = values
        evaluations[sample, modality] += 1

        table = torch.full((batch, n_modalities), -float("inf"), device=device)
        table[sample, modality] = values
        if selection == "simultaneous":
            accept = active & (table > threshold)
            selected |= accept
            order[accept] = 1
            accepted_rows = accept.sum(dim=1)
            single = accepted_rows == 1
            pair_of_single = single[sample] & accept[sample, modality]
            hidden[sample[pair_of_single]] = trial_hidden[pair_of_single]
            several = (accepted_rows > 1).nonzero(as_tuple=True)[0]
            if several.numel():
                hidden[several] = fusion.fuse(several, selected[several])
            break

        best_value, best = table.max(dim=1)
        accept = active.any(dim=1) & (best_value > threshold)
        active &= table > threshold
        accepted = accept.nonzero(as_tuple=True)[0]
        if accepted.numel() == 0:
            break
        chosen = best[accepted]
        active[accepted, chosen] = False
        selected[accepted, chosen] = True
        order[accepted, chosen] = step
        # Reuse the accepted candidate's own pass: no extra fusion for the new state.
        lookup = torch.full((batch, n_modalities), -1, dtype=torch.long, device=device)
        lookup[sample, modality] = torch.arange(len(sample), device=device)
        pass_index = lookup[accepted, chosen]
        hidden[accepted] = trial_hidden[pass_index]
        current.log_confidence[accepted] = trial_assessment.log_confidence[pass_index]
        current.log_ics[accepted] = trial_assessment.log_ics[pass_index]
    return SelectionResult(hidden, selected, order, rewards, evaluations)
