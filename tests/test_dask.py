"""Hyper-parameter search on a Dask cluster through joblib, on dict (MultimodalDict) input."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV

distributed = pytest.importorskip("dask.distributed")
joblib = pytest.importorskip("joblib")

from dymo_sklearn import DyMoClassifier  # noqa: E402


def test_grid_search_on_a_two_worker_local_cluster(image_table_data):
    X, y = image_table_data
    X, y = X[:240], y[:240]
    search = GridSearchCV(
        DyMoClassifier(d_model=16, n_heads=2, n_layers=1, projection_dim=8, max_epochs=2,
                       recoverer=SimpleImputer(), acceptance_threshold=0.0, random_state=0),
        {"selection": ["none", "dymo"]}, cv=2, n_jobs=2, error_score="raise",
    )
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with joblib.parallel_backend("dask"):
            search.fit(X, y)
        # The fits ran as tasks on the cluster, and the dict input travelled to it.
        prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        assert any(prefix.startswith("batch_of__fit_and_score") for prefix in prefixes), prefixes
    assert set(search.cv_results_["param_selection"]) == {"none", "dymo"}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # the refit on the cluster is the model a local fit with the same parameters gives
    local = clone(search.best_estimator_).fit(X, y)
    np.testing.assert_array_equal(search.best_estimator_.predict_proba(X), local.predict_proba(X))
