"""
Pictures of the selection
=========================

What did DyMo do for each sample? ``explain`` returns one row per sample; the functions of
:mod:`dymo_sklearn.plotting` turn it into three pictures: which recovered modalities were
accepted per missing pattern and per class, how predictions moved from "observed only" to
"after selection", and the rewards of accepted and rejected candidates.

The data: three views of each sample are three different 8x8 digit images of the same class,
each on its own textured background; at test time two of the three views are missing.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.impute import KNNImputer
from sklearn.model_selection import train_test_split

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits
from dymo_sklearn.plotting import (plot_reward_distributions, plot_selection_heatmap,
                                   plot_transitions)

X, y = make_multiview_digits(n_modalities=3, n_samples=900, background=1.0, random_state=0)
train, test = train_test_split(np.arange(len(y)), test_size=0.4, stratify=y, random_state=0)
X_test = apply_missing(X[test], 2 / 3, random_state=1)

# A small network and few epochs so that the example runs in seconds.
clf = DyMoClassifier(recoverer=KNNImputer(), d_model=32, n_heads=2, n_layers=1, projection_dim=16,
                     max_epochs=20, acceptance_threshold=0.0, random_state=0,
                     verbose=1)  # one line per epoch while it fits
clf.fit(X[train], y[train])
report = clf.explain(X_test)
print(report[["observed", "candidates", "selected", "prediction_observed_only", "prediction"]].head())

# %%
# Which recovered views were accepted
# -----------------------------------
# Each cell is the share of samples of a row that accepted the column's recovered view, out of
# those that had it as a candidate (``n``).
fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
plot_selection_heatmap(report, by="pattern", ax=axes[0])
plot_selection_heatmap(report, y[test], by="class", ax=axes[1])

# %%
# How predictions changed
# -----------------------
# Bands join "observed only" (the ``none`` mode) to "after selection": corrected, broken,
# unchanged right and unchanged wrong samples.
plot_transitions(report, y[test])  # a figure of its own fits its labels: no layout call needed

# %%
# Rewards of accepted and rejected candidates
# -------------------------------------------
# With the paper's rule a candidate is accepted when its reward is above 0 and it is the best
# remaining candidate; a rejected candidate shows its last reward.
plot_reward_distributions(report, threshold=clf.acceptance_threshold)
