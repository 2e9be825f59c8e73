"""The pictures of dymo_sklearn.plotting draw the numbers they claim to draw."""

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers import EXPLANATION_LABELS, hand_written_explanation  # noqa: E402

from dymo_sklearn import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def explanation():
    return hand_written_explanation()


Y = EXPLANATION_LABELS


def test_heatmap_values_are_the_fractions(explanation):
    ax = plotting.plot_selection_heatmap(explanation, Y, by="class")
    drawn = ax.images[0].get_array()
    # Class 0 (rows 3, 5): a accepted once of twice. Class 1: b 2/3, c 1/3.
    expected = np.array([[0.5, np.nan, np.nan], [np.nan, 2 / 3, 1 / 3]])
    np.testing.assert_allclose(np.ma.filled(drawn, np.nan), expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    texts = {t.get_text() for t in ax.texts}
    assert "0.67\n(n=3)" in texts and "0.50\n(n=2)" in texts


def test_heatmap_by_predicted_class_and_pattern(explanation):
    ax = plotting.plot_selection_heatmap(explanation, by="class")  # groups by "prediction"
    drawn = np.ma.filled(ax.images[0].get_array(), np.nan)
    np.testing.assert_allclose(drawn, [[1.0, 1.0, 1.0], [0.0, 0.5, 0.0]])
    ax = plotting.plot_selection_heatmap(explanation)
    assert len(ax.get_yticklabels()) == 3


def test_transition_bands_are_the_counts(explanation):
    counts = plotting.transition_counts(explanation, Y)
    ax = plotting.plot_transitions(explanation, Y)
    bands = {p.get_label(): p.count for p in ax.patches if p.get_label() in plotting.TRANSITIONS}
    assert bands == counts.to_dict()
    for patch in ax.patches:  # a band's height is its count
        if patch.get_label() in plotting.TRANSITIONS:
            xy = patch.get_xy()[:-1]  # without the closing point: lower edge, then upper reversed
            heights = xy[len(xy) // 2:][::-1, 1] - xy[: len(xy) // 2, 1]
            np.testing.assert_allclose(heights, patch.count)
    assert ax.get_title() == "accuracy 0.500 -> 0.667"


def test_reward_histograms(explanation):
    ax = plotting.plot_reward_distributions(explanation, threshold=0.0, bins=[-1, 0, 1])
    accepted, rejected = ax.containers
    assert [bar.get_height() for bar in accepted] == [0, 4]
    assert [bar.get_height() for bar in rejected] == [4, 0]
    assert ax.lines[0].get_xdata()[0] == 0.0


def test_reward_outliers_are_counted_not_drawn(explanation):
    explanation.at[2, "reward_b"] = -9000.0  # a rejected outlier, as small data produce
    ax = plotting.plot_reward_distributions(explanation, bins=[-1, 0, 1])
    accepted, rejected = ax.containers
    assert sum(bar.get_height() for bar in accepted) == 4 and sum(bar.get_height() for bar in rejected) == 3
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["accepted (4)", "rejected (4; 1 below, 0 above the range)"]
    ax = plotting.plot_reward_distributions(explanation, bins=4)
    assert ax.containers[1][0].get_x() > -10  # the bins follow the quartiles, not the outlier
    assert sum(bar.get_height() for bar in ax.containers[1]) == 3


def test_clip_quantile_still_works_with_a_deprecation_warning(explanation):
    explanation.at[2, "reward_b"] = -100.0
    with pytest.warns(FutureWarning, match="clip_quantile is deprecated"):
        ax = plotting.plot_reward_distributions(explanation, bins=4, clip_quantile=0.2)
    assert ax.containers[1][0].get_x() > -100


def test_robust_range_ignores_a_far_tail():
    values = np.r_[np.linspace(-1, 1, 97), -9000.0, -4000.0, 0.0]
    low, high = plotting.robust_range(values, whis=3.0)
    assert -8 < low < -1 and high == 1.0
    assert plotting.robust_range(np.zeros(5), whis=3.0) == (0.0, 0.0)


@pytest.mark.parametrize("draw", [
    lambda e: plotting.plot_selection_heatmap(e),
    lambda e: plotting.plot_selection_heatmap(e, Y, by="class"),
    lambda e: plotting.plot_transitions(e, Y),
    lambda e: plotting.plot_reward_distributions(e, threshold=0.0),
    lambda e: plotting.plot_expert_usage(pd.DataFrame(
        [[0.7, 0.3], [0.1, 0.9]], index=["accelerometer+gyroscope", "badminton racket sensor"],
        columns=["gate_0", "gate_1"])),
], ids=["heatmap", "heatmap by class", "transitions", "rewards", "expert usage"])
def test_a_new_figure_fits_its_labels(explanation, draw):
    """Long names (a heatmap's 'recovered: accelerometer, gyroscope*', a legend below the axes)
    stay inside the figure that the function creates."""
    long_names = {"a": "accelerometer", "b": "gyroscope", "c": "badminton_racket"}
    for column in ("observed", "candidates", "selected"):
        explanation[column] = [[long_names[m] for m in row] for row in explanation[column]]
    explanation = explanation.rename(columns={f"{kind}_{m}": f"{kind}_{name}" for m, name in long_names.items()
                                              for kind in ("reward", "step")})
    ax = draw(explanation)
    figure = ax.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    def shown(labels, locations, limits):  # matplotlib also lists ticks beyond the view limits
        low, high = sorted(limits)
        return [label for label, at in zip(labels, locations) if low <= at <= high]

    texts = [*shown(ax.get_xticklabels(), ax.get_xticks(), ax.get_xlim()),
             *shown(ax.get_yticklabels(), ax.get_yticks(), ax.get_ylim()), ax.xaxis.label, ax.yaxis.label, ax.title]
    if ax.get_legend() is not None:
        texts += [ax.get_legend()]
    box = figure.bbox
    for text in texts:
        if isinstance(text, matplotlib.text.Text) and not text.get_text():
            continue
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1 and box.y0 - 1 <= extent.y0 \
            and extent.y1 <= box.y1 + 1, getattr(text, "get_text", lambda: "legend")()


def test_plots_from_a_fitted_model(image_table_data):
    from sklearn.impute import SimpleImputer

    from dymo_sklearn import DyMoClassifier

    X, y = image_table_data
    clf = DyMoClassifier(d_model=16, n_heads=2, n_layers=1, projection_dim=8, max_epochs=2,
                         recoverer=SimpleImputer(), acceptance_threshold=0.0, random_state=0).fit(X, y)
    report = clf.explain(X)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    plotting.plot_selection_heatmap(report, y, ax=axes[0])
    plotting.plot_transitions(report, y, ax=axes[1])
    plotting.plot_reward_distributions(report, threshold=0.0, ax=axes[2])
    fig.canvas.draw()
    drawn = plotting.transition_counts(report, y).sum()
    assert drawn == len(y)
    assert axes[2].containers and axes[0].images


def test_long_modality_names_do_not_overwrite_each_other():
    """Five long names: the new figure is sized to its labels (constrained layout still applies,
    every label inside), and the slanted column labels lie farther apart than a line of text."""
    import warnings

    names = ["accelerometer", "gyroscope", "badminton_racket", "heart_rate_monitor", "skin_temperature"]
    rows = [{"observed": [name], "candidates": [m for m in names if m != name], "selected": [],
             **{f"reward_{m}": np.nan if m == name else 0.1 for m in names}, **{f"step_{m}": 0 for m in names},
             "prediction": 0, "prediction_observed_only": 0} for name in names]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied" when the labels do not fit
        ax = plotting.plot_selection_heatmap(pd.DataFrame(rows))
        ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    figure = ax.figure.bbox
    for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        box = label.get_window_extent(renderer)
        assert figure.x0 - 1 <= box.x0 and box.x1 <= figure.x1 + 1 and figure.y0 - 1 <= box.y0, label.get_text()
    labels = ax.get_xticklabels()
    spacing = abs(labels[1].get_window_extent(renderer).x1 - labels[0].get_window_extent(renderer).x1)
    line = labels[0].get_fontsize() * ax.figure.dpi / 72
    angle = np.deg2rad(labels[0].get_rotation())
    assert spacing * np.sin(angle) > line  # slanted baselines are a line of text apart
