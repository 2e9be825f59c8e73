"""
Per-modality preprocessing with ModalityTransformer
===================================================

A dict of modalities does not go through scikit-learn's own scalers: ``StandardScaler`` expects
one 2-D array. :class:`~dymo_sklearn.ModalityTransformer` applies one transformer per modality,
fitted on the samples that have that modality, and keeps a missing modality missing (all NaN),
so it goes into a :class:`~sklearn.pipeline.Pipeline` before
:class:`~dymo_sklearn.DyMoClassifier`, and a grid search reaches its transformers' parameters.

Here the three views of scikit-learn's breast-cancer data keep their raw units (areas in the
thousands next to smoothness values near 0.1); half of the samples miss one or two views.
"""

import numpy as np
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import RobustScaler, StandardScaler

from dymo_sklearn import DyMoClassifier, ModalityTransformer, MultimodalDict
from dymo_sklearn.datasets import load_breast_cancer_views

X, y = load_breast_cancer_views()
rng = np.random.default_rng(0)
views = {name: np.asarray(array).copy() for name, array in X.items()}
for row in np.flatnonzero(rng.random(len(y)) < 0.5):
    for name in rng.choice(list(views), size=rng.integers(1, 3), replace=False):
        views[name][row] = np.nan
X = MultimodalDict(**views)
train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)

settings = dict(d_model=16, n_heads=2, n_layers=1, projection_dim=8, max_epochs=30, random_state=0)
unscaled = DyMoClassifier(standardize=False, **settings).fit(X[train], y[train])
print(f"raw units, standardize=False:      accuracy {unscaled.score(X[test], y[test]):.3f}")
raw = DyMoClassifier(**settings).fit(X[train], y[train])
print(f"raw units, standardize=True:       accuracy {raw.score(X[test], y[test]):.3f}")

# %%
# The network standardises each modality from its observed training entries (``standardize=True``,
# the default), so raw units work. Other preprocessing (a robust scaler, a log transform, PCA)
# goes in front of it, one transformer per modality:
scaled = make_pipeline(
    ModalityTransformer({"mean": StandardScaler(), "se": StandardScaler(), "worst": StandardScaler()}),
    DyMoClassifier(**settings),
).fit(X[train], y[train])
print(f"StandardScaler per view in front:  accuracy {scaled.score(X[test], y[test]):.3f}")

# %%
# The transformers' parameters are grid-searchable by modality name. A missing view stays
# missing after scaling: the statistics come from the samples that have it.
search = GridSearchCV(
    scaled,
    {"modalitytransformer__se": [StandardScaler(), RobustScaler()],
     "modalitytransformer__mean__with_mean": [True, False]},
    cv=3,
).fit(X[train], y[train])
print("best:", search.best_params_)
transformed = search.best_estimator_.named_steps["modalitytransformer"].transform(X[test])
print("samples missing 'se' before / after:", int(np.isnan(X[test]["se"]).all(1).sum()),
      int(np.isnan(transformed["se"]).all(1).sum()))
