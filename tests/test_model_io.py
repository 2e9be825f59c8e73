"""explain, save and load of a whole model: an estimator or a Pipeline ending in one."""

import numpy as np
import pandas as pd
import pytest
from helpers import tiny_classifier, tiny_mars, tiny_research
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import dymo_sklearn
from dymo_sklearn import ModalityTransformer
from dymo_sklearn.experimental import DyMoResearchClassifier


def _double(values):
    return 2 * values


@pytest.fixture(scope="module")
def pipeline(image_table_data):
    X, y = image_table_data
    # PCA changes the table's width: the final estimator cannot take the raw table.
    return make_pipeline(ModalityTransformer({"table": PCA(n_components=5)}), tiny_classifier()).fit(X, y)


def test_explain_runs_the_pipelines_earlier_steps_first(pipeline, image_table_data):
    """Catches an explanation of the raw input (the table unscaled) instead of the transformed one."""
    X, _ = image_table_data
    expected = pipeline[-1].explain(pipeline[0].transform(X))
    pd.testing.assert_frame_equal(dymo_sklearn.explain(pipeline, X), expected)
    assert (dymo_sklearn.explain(pipeline, X)["prediction"] == pipeline.predict(X)).all()
    with pytest.raises(ValueError, match="table"):
        pipeline[-1].explain(X)


def test_explain_and_save_refuse_a_foreign_final_step(image_table_data, tmp_path):
    X, y = image_table_data
    rng = np.random.default_rng(0)
    foreign = make_pipeline(StandardScaler(), LogisticRegression(max_iter=50)).fit(rng.normal(size=(20, 3)), y[:20])
    for function, args in ((dymo_sklearn.explain, (X,)), (dymo_sklearn.save, (tmp_path / "m",))):
        with pytest.raises(TypeError, match="final step is a LogisticRegression"):
            function(foreign, *args)


def test_a_pipeline_saves_and_loads_without_pickle(pipeline, image_table_data, tmp_path):
    """Catches a Pipeline that loses a step, its names or its predictions on the way."""
    X, _ = image_table_data
    dymo_sklearn.save(pipeline, tmp_path / "model")
    assert sorted(path.name for path in (tmp_path / "model").iterdir()) == ["final", "manifest.json", "pipeline.json",
                                                                          "steps.skops"]
    loaded = dymo_sklearn.load(tmp_path / "model", device="cpu")
    assert [name for name, _ in loaded.steps] == [name for name, _ in pipeline.steps]
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    pd.testing.assert_frame_equal(dymo_sklearn.explain(loaded, X[:30]), dymo_sklearn.explain(pipeline, X[:30]))


def test_a_step_holding_code_is_refused_at_save(image_table_data, tmp_path):
    """Catches a pipeline written with a function inside, which load would have to run or refuse."""
    X, y = image_table_data
    model = make_pipeline(ModalityTransformer({"table": FunctionTransformer(_double)}),
                          tiny_classifier(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match="_double"):
        dymo_sklearn.save(model, tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("make", [tiny_classifier, tiny_mars, lambda: tiny_research(reward="prob")])
def test_load_finds_the_estimators_class(make, image_table_data, tmp_path):
    X, y = image_table_data
    model = make().set_params(max_epochs=1).fit(X, y)
    dymo_sklearn.save(model, tmp_path / "model")
    loaded = dymo_sklearn.load(tmp_path / "model")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    if isinstance(model, DyMoResearchClassifier):
        assert loaded.reward == "prob"


def test_load_names_what_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a saved dymo_sklearn model"):
        dymo_sklearn.load(tmp_path / "empty")


def test_an_edited_pipeline_step_is_refused(pipeline, tmp_path):
    """Catches a saved Pipeline whose own files (not the estimator's) escape the checksums."""
    dymo_sklearn.save(pipeline, tmp_path / "model")
    steps = tmp_path / "model" / "steps.skops"
    steps.write_bytes(steps.read_bytes()[:-10])
    with pytest.raises(ValueError, match="steps.skops was changed after save"):
        dymo_sklearn.load(tmp_path / "model")
