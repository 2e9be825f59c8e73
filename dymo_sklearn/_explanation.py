"""What DyMo did, as tables: the ``explain`` DataFrame and the numbers behind each picture.

:func:`explanation_frame` turns the per-sample selection outputs into the DataFrame that
:meth:`DyMoClassifier.explain` returns; :func:`selection_fractions`, :func:`transition_counts`
and :func:`candidate_rewards` summarise that DataFrame without matplotlib, and
:mod:`dymo_sklearn.plotting` draws them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRANSITIONS = ("corrected", "broken", "unchanged right", "unchanged wrong")


def explanation_frame(run, present, modalities, classes):
    """The ``explain`` DataFrame from one prediction's per-sample outputs.

    Parameters
    ----------
    run : dict of str to ndarray
        ``logits``, ``logits_observed_only``, ``selected``, ``order``, ``rewards`` and
        ``candidates``, one row per sample (the selection outputs of ``_predict_arrays``).
    present : ndarray of bool, shape (n_samples, n_modalities)
        Which modalities have observed entries.
    modalities : list of str
        Modality names, in the fitted order.
    classes : ndarray of shape (n_classes,)
        Class labels, indexed by the logits' columns.
    """
    names = np.asarray(modalities, dtype=object)
    ranked = np.where(run["selected"], run["order"], np.iinfo(np.int64).max)
    candidates = np.asarray(run["candidates"], dtype=bool)
    frame = pd.DataFrame({
        "observed": [names[row].tolist() for row in present],
        "missing": [names[row].tolist() for row in candidates & ~present],
        "partial": [names[row].tolist() for row in candidates & present],
        "candidates": [names[row].tolist() for row in candidates],
        "selected": [names[np.argsort(r, kind="stable")[: int(s.sum())]].tolist()
                     for r, s in zip(ranked, run["selected"])],
    })
    for index, name in enumerate(modalities):
        frame[f"reward_{name}"] = run["rewards"][:, index]
        frame[f"step_{name}"] = np.where(run["selected"][:, index], run["order"][:, index], 0)
    frame["prediction"] = classes[run["logits"].argmax(axis=1)]
    frame["prediction_observed_only"] = classes[run["logits_observed_only"].argmax(axis=1)]
    return frame


def _modalities(explanation):
    """Modality names, in the fitted order, from the ``step_<m>`` columns."""
    names = [column[len("step_"):] for column in explanation.columns if column.startswith("step_")]
    if not names or "candidates" not in explanation.columns:
        raise ValueError(
            "Expected the DataFrame returned by DyMoClassifier.explain (columns 'candidates', "
            f"'step_<m>', 'reward_<m>', ...); got columns {list(explanation.columns)}."
        )
    return names


def _pattern(observed, candidates):
    """Label of a missing pattern: recovered modalities, '*' marking a partially observed one."""
    observed = set(observed)
    parts = [f"{name}*" if name in observed else name for name in candidates]
    return "recovered: " + ", ".join(parts) if parts else "complete"


def _labels(explanation, y, name):
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (len(explanation),):
        raise ValueError(f"{name} has shape {y.shape}; expected ({len(explanation)},), one label per row.")
    return y


def selection_fractions(explanation, y=None, *, by="pattern"):
    """Fraction of candidates accepted, per modality and per missing pattern or per class.

    Parameters
    ----------
    explanation : pandas.DataFrame
        The output of :meth:`DyMoClassifier.explain`.
    y : array-like of shape (n_samples,), default=None
        True labels, used when ``by="class"``; None uses the ``prediction`` column.
    by : {"pattern", "class"}, default="pattern"
        Rows of the result: the missing pattern (which modalities were recovered; ``m*`` marks
        a partially observed modality) or the class.

    Returns
    -------
    fractions : pandas.DataFrame
        One row per pattern or class, one column per modality: the number of samples of the row
        that accepted the modality divided by the number that had it as a candidate; NaN where
        no sample had it as a candidate.
    counts : pandas.DataFrame
        The denominators (number of candidates), same shape.
    """
    names = _modalities(explanation)
    if by == "pattern":
        keys = [_pattern(o, c) for o, c in zip(explanation["observed"], explanation["candidates"])]
    elif by == "class":
        labels = _labels(explanation, y, "y")
        keys = list(explanation["prediction"] if labels is None else labels)
    else:
        raise ValueError(f"by must be 'pattern' or 'class', got {by!r}.")
    candidate = pd.DataFrame(
        {name: [name in c for c in explanation["candidates"]] for name in names},
        index=explanation.index,
    )
    accepted = pd.DataFrame(
        {name: np.asarray(explanation[f"step_{name}"]) > 0 for name in names}, index=explanation.index
    ) & candidate
    keys = pd.Series(keys, index=explanation.index, name=by)
    counts = candidate.groupby(keys).sum()
    fractions = accepted.groupby(keys).sum() / counts.where(counts > 0)
    return fractions.astype(float), counts.astype(int)


def transition_counts(explanation, y):
    """How predictions changed from "observed only" to "after selection".

    Parameters
    ----------
    explanation : pandas.DataFrame
        The output of :meth:`DyMoClassifier.explain`.
    y : array-like of shape (n_samples,)
        True labels.

    Returns
    -------
    pandas.Series
        Counts indexed by ``"corrected"`` (wrong with observed modalities only, right after
        selection), ``"broken"`` (right, then wrong), ``"unchanged right"`` and
        ``"unchanged wrong"`` (wrong both times, whether or not the wrong label changed).
    """
    y = _labels(explanation, y, "y")
    if y is None:
        raise ValueError("transition_counts needs the true labels y.")
    before = np.asarray(explanation["prediction_observed_only"]) == y
    after = np.asarray(explanation["prediction"]) == y
    counts = [(~before & after).sum(), (before & ~after).sum(), (before & after).sum(), (~before & ~after).sum()]
    return pd.Series(np.asarray(counts, dtype=int), index=list(TRANSITIONS), name="samples")


def candidate_rewards(explanation):
    """Reward of every evaluated candidate, and whether it was accepted.

    Parameters
    ----------
    explanation : pandas.DataFrame
        The output of :meth:`DyMoClassifier.explain`.

    Returns
    -------
    pandas.DataFrame
        One row per (sample, candidate modality) with a finite reward, columns ``sample`` (row
        label in ``explanation``), ``modality``, ``reward`` (when accepted: the reward that
        accepted it; otherwise: its last reward) and ``accepted``. Candidates never evaluated
        (selection modes ``none`` and ``all``) have no reward and no row.
    """
    names = _modalities(explanation)
    frames = []
    for name in names:
        reward = np.asarray(explanation[f"reward_{name}"], dtype=float)
        keep = np.isfinite(reward)
        frames.append(pd.DataFrame({
            "sample": explanation.index[keep],
            "modality": name,
            "reward": reward[keep],
            "accepted": np.asarray(explanation[f"step_{name}"])[keep] > 0,
        }))
    return pd.concat(frames, ignore_index=True)
