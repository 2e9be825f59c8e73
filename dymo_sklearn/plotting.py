"""Pictures of what DyMo did, drawn from :meth:`DyMoClassifier.explain`'s DataFrame.

matplotlib is imported only when a plotting function runs, so the package does not require it
(``pip install "dymo_sklearn[plot]"``). Each ``plot_*`` function takes the ``explain`` DataFrame
(and the true labels where needed), draws on ``ax`` (a new figure when None) and returns the
Axes. The numbers behind each picture come from a function that needs no matplotlib:
:func:`selection_fractions`, :func:`transition_counts` and :func:`candidate_rewards`.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._explanation import (
    TRANSITIONS,
    candidate_rewards,
    selection_fractions,
    transition_counts,
)

__all__ = [
    "selection_fractions",
    "transition_counts",
    "candidate_rewards",
    "plot_selection_heatmap",
    "plot_transitions",
    "plot_reward_distributions",
    "plot_expert_usage",
]

_TRANSITION_COLORS = ("tab:green", "tab:red", "tab:blue", "tab:gray")


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dymo_sklearn.plotting needs matplotlib: pip install 'dymo_sklearn[plot]'."
        ) from error
    return plt


def _axes(ax, table=None):
    """The caller's axes, or new ones in a figure whose constrained layout keeps tick labels,
    legends and colour bars inside it; a heatmap's ``table`` sizes the figure to its labels."""
    if ax is None:
        _, ax = _pyplot().subplots(layout="constrained", figsize=None if table is None else _heatmap_size(table))
    return ax


def _heatmap_size(table):
    """Figure inches that leave room for the row labels (about 0.08 in per character at the
    default font), slanted column labels and one cell per row and column."""
    row_label = max((len(str(index)) for index in table.index), default=0)
    column_label = max((len(str(column)) for column in table.columns), default=0)
    width = 2.5 + 0.08 * row_label + 0.8 * table.shape[1]
    height = 1.5 + 0.05 * column_label + 0.45 * table.shape[0]
    return max(6.4, width), max(4.8, height)


def _readable_xticks(ax, labels):
    """Slant long modality names so that neighbours do not overwrite each other."""
    if max((len(str(label)) for label in labels), default=0) > 6:
        ax.tick_params(axis="x", labelrotation=30)
        for text in ax.get_xticklabels():
            text.set_horizontalalignment("right")


def robust_range(values, whis):
    """``[Q1 - whis * IQR, Q3 + whis * IQR]`` of ``values``, within their range; the whole
    range when the quartiles coincide."""
    low, q1, q3, high = np.quantile(values, [0.0, 0.25, 0.75, 1.0])
    if q3 == q1:
        return low, high
    return max(low, q1 - whis * (q3 - q1)), min(high, q3 + whis * (q3 - q1))


def plot_selection_heatmap(explanation, y=None, *, by="pattern", ax=None, cmap="viridis", annotate=True):
    """Heatmap of the fraction of recovered candidates accepted, per modality.

    Parameters
    ----------
    explanation : pandas.DataFrame
        The output of :meth:`DyMoClassifier.explain`.
    y : array-like of shape (n_samples,), default=None
        True labels for ``by="class"``; None groups by predicted class.
    by : {"pattern", "class"}, default="pattern"
        Rows: missing pattern (which modalities were recovered; ``labs*`` marks a modality that
        was observed with some entries recovered) or class.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None creates a figure.
    cmap : str or Colormap, default="viridis"
    annotate : bool, default=True
        Write each fraction and its number of candidates in its cell.

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]``; its array holds the fractions of
        :func:`selection_fractions` (masked where a modality was never a candidate).
    """
    fractions, counts = selection_fractions(explanation, y, by=by)
    ax = _axes(ax, fractions)
    values = np.ma.masked_invalid(fractions.to_numpy(dtype=float))
    ax.set_facecolor("0.92")  # cells where the modality was never a candidate
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto")
    ax.set_xticks(range(fractions.shape[1]), fractions.columns)
    _readable_xticks(ax, fractions.columns)
    ax.set_yticks(range(fractions.shape[0]), [str(index) for index in fractions.index])
    ax.set_xlabel("recovered modality")
    ax.set_ylabel("missing pattern" if by == "pattern" else "class" + (" (predicted)" if y is None else ""))
    ax.set_title("share of recovered candidates accepted")
    if annotate:
        for (row, column), value in np.ndenumerate(fractions.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(column, row, f"{value:.2f}\n(n={counts.iat[row, column]})", ha="center",
                        va="center", fontsize=8, color="white" if value < 0.5 else "black")
    ax.figure.colorbar(image, ax=ax, label="accepted / candidates")
    return ax


def plot_transitions(explanation, y, *, ax=None):
    """Transition diagram from "observed only" to "after selection" predictions.

    Two stacked columns, right/wrong with observed modalities only and right/wrong after
    selection, are joined by bands whose widths are the counts of :func:`transition_counts`
    (corrected, broken, unchanged right, unchanged wrong).

    Parameters
    ----------
    explanation : pandas.DataFrame
        The output of :meth:`DyMoClassifier.explain`.
    y : array-like of shape (n_samples,)
        True labels.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None creates a figure.

    Returns
    -------
    matplotlib.axes.Axes
        The bands are the Axes' patches with ``get_label()`` in ``"corrected"``, ``"broken"``,
        ``"unchanged right"``, ``"unchanged wrong"``; each band's ``count`` attribute is its
        number of samples.
    """
    from matplotlib.patches import Polygon, Rectangle

    counts = transition_counts(explanation, y)
    total = max(int(counts.sum()), 1)
    ax = _axes(ax)
    width, gap = 0.12, 0.02 * total
    right_before = counts["unchanged right"] + counts["broken"]
    right_after = counts["unchanged right"] + counts["corrected"]
    # Column layout, bottom to top: wrong then right (with a gap in between).
    blocks = {
        ("before", "wrong"): (0.0, total - right_before),
        ("before", "right"): (total - right_before + gap, right_before),
        ("after", "wrong"): (0.0, total - right_after),
        ("after", "right"): (total - right_after + gap, right_after),
    }
    x = {"before": 0.0, "after": 1.0}
    for (side, outcome), (bottom, height) in blocks.items():
        ax.add_patch(Rectangle((x[side] - width / 2, bottom), width, height,
                               facecolor="0.85", edgecolor="0.3", label=f"_{side} {outcome}"))
        if height > 0:
            ax.text(x[side] + (-1 if side == "before" else 1) * (width / 2 + 0.02), bottom + height / 2,
                    f"{outcome}\n{height}", ha="right" if side == "before" else "left", va="center")
    # Bands, stacked inside each block in a fixed order so they do not cross needlessly.
    flows = [  # (name, from, to)
        ("unchanged wrong", "wrong", "wrong"),
        ("corrected", "wrong", "right"),
        ("broken", "right", "wrong"),
        ("unchanged right", "right", "right"),
    ]
    offset = {key: block[0] for key, block in blocks.items()}
    colors = dict(zip(TRANSITIONS, _TRANSITION_COLORS))
    for name, source, target in flows:
        count = int(counts[name])
        y0, y1 = offset[("before", source)], offset[("after", target)]
        offset[("before", source)] += count
        offset[("after", target)] += count
        xs = np.linspace(x["before"] + width / 2, x["after"] - width / 2, 30)
        t = (xs - xs[0]) / (xs[-1] - xs[0])
        smooth = 3 * t**2 - 2 * t**3
        lower = y0 + (y1 - y0) * smooth
        points = np.concatenate([np.c_[xs, lower], np.c_[xs[::-1], lower[::-1] + count]])
        band = Polygon(points, closed=True, facecolor=colors[name], alpha=0.55, edgecolor="none",
                       label=name)
        band.count = count
        ax.add_patch(band)
    ax.set_xlim(-0.45, 1.45)
    ax.set_ylim(-gap, total + 2 * gap)
    ax.set_xticks([0, 1], ["observed only", "after selection"])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    accuracy_before, accuracy_after = right_before / total, right_after / total
    ax.set_title(f"accuracy {accuracy_before:.3f} -> {accuracy_after:.3f}")
    handles = [Rectangle((0, 0), 1, 1, facecolor=colors[name], alpha=0.55) for name in TRANSITIONS]
    ax.legend(handles, [f"{name}: {counts[name]}" for name in TRANSITIONS], loc="upper center",
              bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    return ax


def plot_reward_distributions(explanation, *, threshold=None, bins=30, whis=3.0, ax=None, clip_quantile=None):
    """Histograms of the rewards of accepted and of rejected recovered candidates.

    Parameters
    ----------
    explanation : pandas.DataFrame
        The output of :meth:`DyMoClassifier.explain` (selection ``dymo``, ``iterative`` or
        ``simultaneous``; the other modes evaluate no reward).
    threshold : float, default=None
        Acceptance threshold to mark with a vertical line, e.g. ``clf.acceptance_threshold_``.
    bins : int or sequence, default=30
        Shared bins of both histograms (a sequence gives the edges).
    whis : float, default=3.0
        With an integer ``bins``, the bins span the quartiles widened by ``whis`` interquartile
        ranges (as a box plot's whiskers), and the threshold. Rejected rewards have a long
        negative tail (down to thousands on small data) that would squeeze every other bar into
        one: rewards outside the bins are counted in the legend, not drawn.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None creates a figure.
    clip_quantile : float, default=None
        Deprecated: bins from the ``clip_quantile`` to ``1 - clip_quantile`` quantiles instead of
        ``whis``. On small data a 1 % tail can still span thousands.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.containers`` holds the two histograms (accepted first, then rejected); their bar
        heights are the counts per bin. Each legend entry reads ``"<kind> (<n>)"``, followed by
        ``"; <k> below, <j> above the range"`` when some are not drawn.
    """
    rewards = candidate_rewards(explanation)
    ax = _axes(ax)
    if rewards.empty:
        ax.text(0.5, 0.5, "no rewards evaluated", ha="center", va="center", transform=ax.transAxes)
        return ax
    values_all = rewards["reward"].to_numpy()
    if np.ndim(bins) == 0:
        if clip_quantile is not None:
            warnings.warn("clip_quantile is deprecated; the bins follow the quartiles widened by `whis`.",
                          FutureWarning, stacklevel=2)
            low, high = np.quantile(values_all, [clip_quantile, 1.0 - clip_quantile])
        else:
            low, high = robust_range(values_all, whis)
        if threshold is not None and np.isfinite(threshold):
            low, high = min(low, threshold), max(high, threshold)
        edges = np.histogram_bin_edges(values_all, bins=int(bins), range=(low, high) if high > low else None)
    else:
        edges = np.asarray(bins, dtype=float)
    for accepted, color, label in ((True, "tab:green", "accepted"), (False, "tab:red", "rejected")):
        values = rewards.loc[rewards["accepted"] == accepted, "reward"].to_numpy()
        below, above = int((values < edges[0]).sum()), int((values > edges[-1]).sum())
        outside = f"; {below} below, {above} above the range" if below or above else ""
        ax.hist(values[(values >= edges[0]) & (values <= edges[-1])], bins=edges, color=color, alpha=0.6,
                label=f"{label} ({len(values)}{outside})")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("reward of a recovered candidate")
    ax.set_ylabel("candidates")
    ax.set_title("rewards of accepted vs rejected candidates")
    ax.legend()
    return ax


def plot_expert_usage(usage, *, ax=None, cmap="magma"):
    """Heatmap of MARS expert usage: mean gate weight per missing pattern and expert.

    Parameters
    ----------
    usage : pandas.DataFrame
        The output of :meth:`MARSClassifier.expert_usage` (rows: observed-modality patterns,
        columns: ``gate_<e>``).
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None creates a figure.
    cmap : str or Colormap, default="magma"

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]``; its array holds ``usage``'s values.
    """
    ax = _axes(ax, usage)
    values = usage.to_numpy(dtype=float)
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [column.replace("gate_", "expert ") for column in usage.columns])
    _readable_xticks(ax, usage.columns)
    ax.set_yticks(range(values.shape[0]), [str(index) for index in usage.index])
    ax.set_xlabel("expert")
    ax.set_ylabel("observed modalities")
    ax.set_title("mean gate weight")
    ax.figure.colorbar(image, ax=ax, label="gate weight")
    return ax
