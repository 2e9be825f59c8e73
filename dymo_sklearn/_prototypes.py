"""Per-(subset, class) prototypes and ICS statistics, fitted after training.

For subset s and class k: c_{s,k} is the mean projected z of the training samples of class k
fused with exactly the modalities in s, and sigma_{s,k} = sqrt(mean d(z, c_{s,k})^2) is the scale
of a half-normal fitted to their distances. ICS(k, z) = 2 (1 - Phi(d(z, c_{s,k}) / sigma_{s,k})).

With many modalities the 2^M - 1 subsets are not enumerated: at most ``max_subsets`` are fitted
(all of them when that is possible; otherwise the full set, singletons, leave-one-outs, the
patterns seen in training, then random ones); an unfitted subset falls back to the pooled
per-class statistics. So does a (subset, class) cell with fewer than ``MIN_CELL_SAMPLES``
training samples: its prototype becomes the class's overall prototype and its sigma the class's
pooled sigma.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._devices import to_device
from .nn.distances import paired_distance
from .nn.dymo import subset_bits

MAX_MODALITIES = 62  # subset codes are int64 bit masks
# A half-normal scale fitted to n distances has a relative standard error near 1 / sqrt(2 n):
# about 22 % at 10 samples; below that a cell's sigma (and the rewards divided by it) is noise.
MIN_CELL_SAMPLES = 10
_FUSION_ROWS_PER_CALL = 8192


def subset_codes(present):
    """Integer code of each row's modality set (bit m = modality m); (B, M) bool -> (B,) int64."""
    weights = 2 ** torch.arange(present.shape[1], device=present.device, dtype=torch.long)
    return (present.long() * weights).sum(dim=1)


def choose_subsets(n_modalities, max_subsets, seen_codes, random_state):
    """Sorted int64 codes of the subsets whose statistics are fitted."""
    n_all = 2 ** n_modalities - 1
    if n_all <= max_subsets:
        return np.arange(1, n_all + 1, dtype=np.int64)
    full = (1 << n_modalities) - 1
    chosen = [full]
    chosen += [1 << m for m in range(n_modalities)]
    chosen += [full ^ (1 << m) for m in range(n_modalities)]
    values, counts = np.unique(np.asarray(seen_codes, dtype=np.int64), return_counts=True)
    chosen += values[np.argsort(-counts, kind="stable")].tolist()
    unique = list(dict.fromkeys(int(code) for code in chosen if code > 0))[:max_subsets]
    rng = np.random.default_rng(random_state)
    taken = set(unique)
    while len(unique) < max_subsets:
        code = sum(1 << int(m) for m in np.flatnonzero(rng.random(n_modalities) < 0.5))
        if code and code not in taken:
            taken.add(code)
            unique.append(code)
    return np.sort(np.asarray(unique, dtype=np.int64))


@dataclass
class SubsetStatistics:
    """Fitted statistics as numpy arrays (row ``S`` of the subset arrays is the pooled fallback)."""

    codes: np.ndarray  # (S,) sorted int64
    subset_prototypes: np.ndarray  # (S + 1, K, P)
    sigma: np.ndarray  # (S + 1, K)
    prototypes: np.ndarray  # (K, P) overall prototypes = mean over subsets

    def to_torch(self, device):
        return TorchStatistics(
            codes=torch.as_tensor(self.codes, device=device),
            subset_prototypes=torch.as_tensor(self.subset_prototypes, device=device),
            sigma=torch.as_tensor(self.sigma, device=device),
            prototypes=torch.as_tensor(self.prototypes, device=device),
        )


@dataclass
class TorchStatistics:
    codes: torch.Tensor
    subset_prototypes: torch.Tensor
    sigma: torch.Tensor
    prototypes: torch.Tensor

    def lookup(self, codes):
        """Row index of each code in the subset arrays; unfitted subsets map to the pooled row."""
        position = torch.searchsorted(self.codes, codes).clamp_max(len(self.codes) - 1)
        found = self.codes[position] == codes
        return torch.where(found, position, torch.full_like(position, len(self.codes)))


def log_ics(z, classes, row, statistics, distance):
    """log ICS(k, z) = log 2 + log Phi(-d / sigma), computed in log space (no tail underflow)."""
    centre = statistics.subset_prototypes[row, classes]
    scale = statistics.sigma[row, classes]
    standardized = paired_distance(z, centre, distance) / scale
    return (math.log(2.0) + torch.special.log_ndtr(-standardized)).clamp_max(0.0)


def _project(network, hidden, distance):
    z = network.heads(hidden)[1]
    return F.normalize(z, dim=-1) if distance == "cosine" else z


def _subset_passes(network, tokens, present, codes_tensor, n_modalities):
    """Yield (subset index, row indices, projected hidden) for every subset each row can realise."""
    bits = subset_bits(codes_tensor, n_modalities)  # (S, M)
    feasible = (bits[:, None, :] <= present[None]).all(dim=2)  # (S, B): s is a subset of present
    chunk = max(1, _FUSION_ROWS_PER_CALL // max(1, tokens.shape[0]))
    for start in range(0, len(codes_tensor), chunk):
        subset_index, rows = feasible[start:start + chunk].nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue
        subset_index = subset_index + start
        yield subset_index, rows, network.fuse(tokens[rows], bits[subset_index])


def warn_about_small_classes(y_encoded, weights, classes):
    """Warn, naming them, about classes with too few samples of positive weight for per-subset
    statistics (they fall back to their pooled ones)."""
    counted = y_encoded if weights is None else y_encoded[weights > 0]
    counts = np.bincount(counted, minlength=len(classes))
    small = np.flatnonzero(counts < MIN_CELL_SAMPLES)
    if small.size:
        labels = np.asarray(classes).tolist()
        named = ", ".join(f"{labels[k]!r} ({counts[k]})" for k in small)
        warnings.warn(
            f"Classes with fewer than {MIN_CELL_SAMPLES} training samples: {named}. Per-subset prototypes "
            "and ICS scales would rest on almost nothing, so these classes use their pooled statistics "
            "(the mean prototype over subsets and one scale over all subsets); rewards involving them "
            "are less reliable. More samples of these classes, or selection='none', avoid this.",
            UserWarning, stacklevel=6)  # past _fit_statistics, _after_fit and both fits: the caller's line


def encoded_batches(network, arrays, y_encoded, weights, batch_size, device):
    """The ``batches`` callable of :func:`fit_subset_statistics` for training arrays: each call
    iterates over (tokens, present, labels, weights) of ``batch_size`` rows, encoded by ``network``."""

    def batches():
        for start in range(0, len(y_encoded), batch_size):
            rows = slice(start, start + batch_size)
            with torch.no_grad():
                tokens, present = network.encode(to_device({name: array[rows] for name, array in arrays.items()}, device))
            yield (tokens, present, torch.as_tensor(y_encoded[rows], device=device),
                   None if weights is None else torch.as_tensor(weights[rows], device=device))

    return batches


def fit_subset_statistics(network, batches, n_classes, codes, distance):
    """Fit prototypes and ICS sigma per (subset, class) from training batches.

    Prototypes are (weighted) class means of the projected representations; sigma is the root
    (weighted) mean squared distance to them. A (subset, class) cell with fewer than
    ``MIN_CELL_SAMPLES`` samples of positive weight takes the class's overall prototype (the mean
    of its fitted cells' prototypes, or of all its cells when none has enough samples) and its
    pooled sigma.

    Parameters
    ----------
    network : DyMoNetwork in eval mode
    batches : callable returning an iterator of (tokens, present, labels, weights) tensors;
        ``weights`` is None for unweighted samples
    codes : ndarray of int64, the subsets to fit
    """
    device = network.prototypes.device
    codes_tensor = torch.as_tensor(codes, device=device)
    n_subsets, n_modalities = len(codes), network.n_modalities
    dim = network.projection.out_features

    def weighted_passes():
        for tokens, present, labels, weights in batches():
            weights = torch.ones(len(labels), dtype=torch.float64, device=device) if weights is None else weights.double()
            for subset_index, rows, hidden in _subset_passes(network, tokens, present, codes_tensor, n_modalities):
                yield subset_index, labels[rows], weights[rows], _project(network, hidden, distance).double()

    sums = torch.zeros(n_subsets, n_classes, dim, dtype=torch.float64, device=device)
    counts = torch.zeros(n_subsets, n_classes, dtype=torch.float64, device=device)  # weight sums
    n_weighted = torch.zeros(n_subsets, n_classes, dtype=torch.float64, device=device)  # samples of weight > 0
    with torch.no_grad():
        for subset_index, k, weights, z in weighted_passes():
            flat = subset_index * n_classes + k
            sums.view(-1, dim).index_add_(0, flat, z * weights[:, None])
            counts.view(-1).index_add_(0, flat, weights)
            n_weighted.view(-1).index_add_(0, flat, (weights > 0).double())
        seen = counts > 0
        means = sums / torch.where(seen, counts, 1.0)[..., None]
        class_seen = seen.any(dim=0)
        enough = n_weighted >= MIN_CELL_SAMPLES
        # A class with no cell of enough samples averages all its seen cells: all it has.
        fitted = enough | (seen & ~enough.any(dim=0, keepdim=True))
        overall = (means * fitted[..., None]).sum(0) / fitted.sum(0).clamp_min(1)[:, None]
        centres = torch.where(enough[..., None], means, overall[None])

        squares = torch.zeros(n_subsets, n_classes, dtype=torch.float64, device=device)
        for subset_index, k, weights, z in weighted_passes():
            d = paired_distance(z, centres[subset_index, k], distance)
            squares.view(-1).index_add_(0, subset_index * n_classes + k, d.pow(2) * weights)
    sigma = torch.sqrt(squares / torch.where(seen, counts, 1.0))
    pooled_counts = counts.sum(0)
    pooled = torch.sqrt(squares.sum(0) / torch.where(pooled_counts > 0, pooled_counts, 1.0))
    floor = 1e-6
    pooled = torch.where(class_seen, pooled, pooled[class_seen].mean() if class_seen.any() else 1.0).clamp_min(floor)
    sigma = torch.where(enough, sigma, pooled[None]).clamp_min(floor)
    return SubsetStatistics(
        codes=np.asarray(codes, dtype=np.int64),
        subset_prototypes=torch.cat([centres, overall[None]]).float().cpu().numpy(),
        sigma=torch.cat([sigma, pooled[None]]).float().cpu().numpy(),
        prototypes=overall.float().cpu().numpy(),
    )
