"""Per-modality teachers: a classical model of each vector modality, cross-fitted inside ``fit``,
whose probabilities the network's subset passes are distilled towards.

A user's first comparison is late fusion of one classical model per modality; on small tables
such a model is often stronger alone than the network's encoder of that modality. The teachers
bring that skill into training: every training pass that fuses only taught modalities adds the
KL divergence from the product of those modalities' teacher probabilities (late fusion by
product) to the network's prediction for the pass. The teachers' probabilities on the training
rows are out of fold, so no row is taught by a model that saw its label.

With teacher fusion the model also keeps one teacher per vector modality fitted on every labeled
row, and its prediction is multiplied by the teachers of the modalities each sample observes.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.calibration import CalibratedClassifierCV
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

# Key prefix of a modality's out-of-fold teacher log-probabilities in a training batch.
TEACHER = "teacher:"

_OUTER_FOLDS = 5
_CALIBRATION_FOLDS = 3
# The smallest class must reach every calibration fold of every outer training fold.
_MIN_CLASS_ROWS = _OUTER_FOLDS
# An RBF SVC's fit grows with the square of its rows: past this many, each fold's teacher learns
# from a stratified sample of its training rows (every row is still taught, out of fold).
MAX_TEACHER_ROWS = 4000


def _warn(message):
    """A UserWarning at the first line outside this package: the user's ``fit`` call, however
    deep each estimator's fit reaches this module."""
    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level + 1)


def teacher_model(seed):
    """The classical model of one vector modality: mean-filled, standardised entries into an RBF
    SVC (C = 10) with Platt-scaled probabilities, the late-fusion peer of the benchmarks."""
    svc = SVC(C=10.0, random_state=seed)
    calibrated = CalibratedClassifierCV(svc, method="sigmoid", cv=_CALIBRATION_FOLDS, ensemble=False)
    return make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler(), calibrated)


def cross_fitted_teachers(arrays, taught, y_encoded, n_classes, seed, weights=None):
    """Out-of-fold log-probabilities of each taught modality's teacher on the training rows.

    Parameters
    ----------
    arrays : dict of str to ndarray
        The training rows of each modality, NaN marking missing entries.
    taught : list of str
        The modalities that get a teacher (vector modalities).
    y_encoded : ndarray of shape (n_samples,)
        Class indices 0 .. n_classes - 1.
    n_classes : int
    seed : int
        Seeds the folds and the SVCs.
    weights : ndarray of shape (n_samples,), optional
        Sample weights of the teachers' fits.

    Returns
    -------
    dict of str to ndarray of shape (n_samples, n_classes), float32
        Keyed ``teacher:<name>``; zero on the rows where the modality is missing (they take no
        pass through it). Empty, with a warning, when a class has too few rows to cross-fit.
    """
    if not taught:
        return {}
    counts = _class_rows(y_encoded, weights, n_classes)
    if counts.min() < _MIN_CLASS_ROWS:
        _warn(f"A class has {counts.min()} labeled rows of positive weight; per-modality teachers need "
              f"at least {_MIN_CLASS_ROWS} of each class to be cross-fitted: training without them.")
        return {}
    teachers = {}
    for name in taught:
        flat = arrays[name].reshape(len(arrays[name]), -1)
        rows = _teaching_rows(flat, weights)
        if _class_rows(y_encoded[rows], None, n_classes).min() < _MIN_CLASS_ROWS:
            _warn(f"Modality {name!r} is observed in fewer than {_MIN_CLASS_ROWS} labeled rows of some "
                  "class: it gets no teacher.")
            continue
        proba = np.zeros((len(rows), n_classes))
        for train, test in StratifiedKFold(_OUTER_FOLDS, shuffle=True, random_state=seed).split(rows, y_encoded[rows]):
            teacher = _fit_teacher(name, flat, y_encoded, weights, rows[train], seed)
            proba[test] = teacher.predict_proba(flat[rows[test]])
        out = np.zeros((len(flat), n_classes), dtype=np.float32)
        out[rows] = np.log(np.clip(proba, 1e-6, None))
        teachers[f"{TEACHER}{name}"] = out
    return teachers


def fit_teachers(arrays, taught, y_encoded, n_classes, seed, weights=None):
    """One teacher per taught modality fitted on every row where it is observed (at most
    ``MAX_TEACHER_ROWS``, a stratified sample), for teacher fusion at prediction.

    Returns
    -------
    dict of str to fitted Pipeline
        Empty, with a warning, when a class has fewer than ``_MIN_CLASS_ROWS`` rows in some
        taught modality.
    """
    teachers = {}
    for name in taught:
        flat = arrays[name].reshape(len(arrays[name]), -1)
        rows = _teaching_rows(flat, weights)
        counts = _class_rows(y_encoded[rows], None, n_classes)
        if counts.min() < _MIN_CLASS_ROWS:
            _warn(f"A class has {counts.min()} labeled rows of positive weight observing modality "
                  f"{name!r}; teacher fusion needs at least {_MIN_CLASS_ROWS}: predicting without the teachers.")
            return {}
        teachers[name] = _fit_teacher(name, flat, y_encoded, weights, rows, seed)
    return teachers


def _teaching_rows(flat, weights):
    """Indices of the rows that observe the modality and weigh more than 0: rows of weight 0
    neither teach nor are taught (their loss terms weigh nothing)."""
    return np.flatnonzero(~np.isnan(flat).all(axis=1) & (True if weights is None else weights > 0))


def _fit_teacher(name, flat, y_encoded, weights, rows, seed):
    """A teacher fitted on ``rows`` (at most ``MAX_TEACHER_ROWS`` of them, a stratified sample),
    its errors naming the modality."""
    if len(rows) > MAX_TEACHER_ROWS:
        rows = _bounded_sample(rows, y_encoded[rows], MAX_TEACHER_ROWS, np.random.default_rng(seed))
    fit_params = {} if weights is None else {"calibratedclassifiercv__sample_weight": weights[rows]}
    try:
        return teacher_model(seed).fit(flat[rows], y_encoded[rows], **fit_params)
    except ValueError as error:
        raise ValueError(f"The per-modality teacher of modality {name!r} could not be fitted: {error}") from error


def _class_rows(y_encoded, weights, n_classes):
    """Rows of each class, counting only rows of positive weight."""
    return np.bincount(y_encoded if weights is None else y_encoded[weights > 0], minlength=n_classes)


def teacher_log_proba(teachers, arrays, n_classes):
    """(n, K) sum of the log-probabilities of the teachers of the modalities each row observes."""
    n_samples = len(next(iter(arrays.values())))
    total = np.zeros((n_samples, n_classes))
    for name, teacher in teachers.items():
        flat = arrays[name].reshape(n_samples, -1)
        observed = ~np.isnan(flat).all(axis=1)
        if observed.any():
            total[observed] += np.log(np.clip(teacher.predict_proba(flat[observed]), 1e-6, None))
    return total


def _bounded_sample(rows, labels, size, rng):
    """About ``size`` of ``rows``, each class in proportion but with at least ``_MIN_CLASS_ROWS``
    (or all it has), so a rare class still reaches every calibration fold."""
    n_rows = len(rows)
    kept = []
    for label in np.unique(labels):
        members = rows[labels == label]
        take = min(len(members), max(int(np.ceil(size * len(members) / n_rows)), _MIN_CLASS_ROWS))
        kept.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(kept))


def distillation_loss(logits, passes, X, modality_names, weights=None):
    """Mean KL divergence from the product of each pass's teachers to the network's prediction.

    Parameters
    ----------
    logits : tensor of shape (A, B, K)
        The subset passes' logits (the recovery pass excluded).
    passes : tensor of shape (A, B, M), bool
        The modalities each pass fused for each sample.
    X : dict
        The training batch; its ``teacher:<name>`` entries are (B, K) log-probabilities.
    modality_names : list of str
    weights : tensor of shape (B,), optional
        Sample weights.

    Returns
    -------
    tensor or None
        None when no pass of the batch fuses only taught modalities.
    """
    keys = [f"{TEACHER}{name}" for name in modality_names]
    taught = torch.tensor([key in X for key in keys], device=logits.device)
    if not taught.any():
        return None
    teacher = torch.stack([X[key].to(logits.device) if key in X else logits.new_zeros(logits.shape[1:])
                           for key in keys], dim=1)  # (B, M, K)
    # Only passes whose every fused modality has a teacher: a partial product would pull a pass
    # that also sees an untaught modality towards a weaker target.
    covered = ~(passes & ~taught).any(dim=-1) & passes.any(dim=-1)  # (A, B); an empty pass has no target
    if not covered.any():
        return None
    target = F.softmax(torch.einsum("abm,bmk->abk", passes.to(teacher.dtype), teacher), dim=-1)
    student = F.log_softmax(logits, dim=-1)
    kl = (target * (torch.log(target.clamp_min(1e-12)) - student)).sum(-1)  # (A, B)
    scale = covered.to(kl.dtype) if weights is None else covered.to(kl.dtype) * weights[None]
    return (kl * scale).sum() / covered.sum()
