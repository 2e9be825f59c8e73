"""
Pipeline and GridSearchCV
=========================

``DyMoClassifier`` is a scikit-learn estimator: it goes into a :class:`~sklearn.pipeline.Pipeline`
and a :class:`~sklearn.model_selection.GridSearchCV` like any other. Here the input is one 2-D
array (scikit-learn's breast-cancer data, 30 features) split into three tabular modalities with
``column_groups``: the mean, standard-error and worst values of the ten cell measurements. A
:class:`~sklearn.preprocessing.StandardScaler` before it keeps NaN (missing) entries as they are.
"""

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dymo_sklearn import DyMoClassifier

X, y = load_breast_cancer(return_X_y=True)
groups = {"mean": list(range(10)), "se": list(range(10, 20)), "worst": list(range(20, 30))}

# Hide one or two of the three modalities for 60 % of the samples.
rng = np.random.default_rng(0)
X = X.copy()
for row in np.flatnonzero(rng.random(len(X)) < 0.6):
    for name in rng.choice(list(groups), size=rng.integers(1, 3), replace=False):
        X[row, groups[name]] = np.nan
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)

pipeline = make_pipeline(
    StandardScaler(),
    DyMoClassifier(column_groups=groups, d_model=16, n_heads=2, n_layers=1, projection_dim=8,
                   max_epochs=15, random_state=0),
)
search = GridSearchCV(
    pipeline,
    {"dymoclassifier__recoverer": [SimpleImputer(), KNNImputer(n_neighbors=5)],
     "dymoclassifier__temperature": [0.05, 0.1]},
    cv=3,
)
search.fit(X_train, y_train)

results = pd.DataFrame(search.cv_results_)[
    ["param_dymoclassifier__recoverer", "param_dymoclassifier__temperature", "mean_test_score", "std_test_score"]
]
print(results.round(3).to_string(index=False))
print("best:", search.best_params_)
print(f"test accuracy of the refitted best pipeline: {search.score(X_test, y_test):.3f}")

# %%
# ``selection`` is read at predict time, so the discard baseline needs no refit:
best = search.best_estimator_
for selection in ("none", "all", "dymo"):
    best.set_params(dymoclassifier__selection=selection)
    print(f"{selection:>5}: {best.score(X_test, y_test):.3f}")
