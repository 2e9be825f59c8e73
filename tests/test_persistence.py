"""save / load in the safe format, pickle-free loading, version checks, models made on a GPU."""

import json
import re
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import tiny_classifier, tiny_mars
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from dymo_sklearn import DyMoClassifier, MARSClassifier
from dymo_sklearn._persistence import write_manifest
from dymo_sklearn.experimental import DyMoResearchClassifier
from dymo_sklearn.nn import VectorEncoder

DATA = Path(__file__).parent / "data"


def test_save_load_round_trip_dict_input(image_table_data, tmp_path):
    X, y = image_table_data
    clf = tiny_classifier(recoverer=KNNImputer(n_neighbors=3), acceptance_threshold=0.05).fit(X, y)
    clf.save(tmp_path / "model")
    loaded = DyMoClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.recoverer.n_neighbors == 3 and loaded.recoverer is not clf.recoverer
    assert loaded.acceptance_threshold == 0.05
    pd.testing.assert_frame_equal(loaded.explain(X[:20]), clf.explain(X[:20]))


def test_research_options_survive_save_and_load(image_table_data, tmp_path):
    """Catches a research estimator saved without its options (loaded with the defaults, it
    would build another network: no recovered embedding) or loadable through the main class."""
    X, y = image_table_data
    clf = DyMoResearchClassifier(recoverer=SimpleImputer(), recovery_aware=False, reward="prob",
                                 selection="iterative", d_model=16, n_heads=2, n_layers=1, max_epochs=2,
                                 random_state=0).fit(X, y)
    clf.save(tmp_path / "model")
    with pytest.raises(ValueError, match="holds a DyMoResearchClassifier"):
        DyMoClassifier.load(tmp_path / "model")
    loaded = DyMoResearchClassifier.load(tmp_path / "model")
    assert (loaded.recovery_aware, loaded.reward, loaded.selection) == (False, "prob", "iterative")
    assert loaded.net_.module_.recovered_embedding is None
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_save_load_round_trip_dataframe(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 4)), columns=["a", "b", "c", "d"])
    y = np.where(frame["a"] > 0, "sick", "well")
    clf = tiny_classifier(column_groups={"left": ["a", "b"], "right": ["c", "d"]}).fit(frame, y)
    clf.save(tmp_path / "m")
    loaded = DyMoClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(frame), clf.predict(frame))
    assert list(loaded.feature_names_in_) == ["a", "b", "c", "d"] and loaded.classes_.dtype == clf.classes_.dtype


def test_incompatible_or_foreign_files_fail_clearly(image_table_data, tmp_path):
    X, y = image_table_data
    tiny_classifier().fit(X, y).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["format_version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    write_manifest(tmp_path / "m")  # an edit sealed again: the deeper checks must still refuse it
    with pytest.raises(ValueError, match="format version 99"):
        DyMoClassifier.load(tmp_path / "m")
    with pytest.raises(ValueError, match="not a saved DyMoClassifier"):
        DyMoClassifier.load(tmp_path / "nothing")


class _Custom(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.fill_ = 0.0
        return self

    def transform(self, X):
        return np.nan_to_num(X, nan=self.fill_)


def test_save_refuses_a_recoverer_it_cannot_store_safely_and_leaves_nothing(image_table_data, tmp_path):
    X, y = image_table_data
    clf = tiny_classifier(recoverer=_Custom()).fit(X, y)
    with pytest.raises(ValueError, match="_Custom.*Use pickle or joblib"):
        clf.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("payload", [eval, np.load], ids=["builtins.eval", "numpy.load"])
def test_a_tampered_recoverer_file_is_refused_before_anything_runs(image_table_data, tmp_path, payload):
    """The attack from issue 13: a recoverer.skops holding a FunctionTransformer around a
    dangerous function. Nothing of it may be loaded."""
    import skops.io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = image_table_data
    tiny_classifier().fit(X, y).save(tmp_path / "m")
    evil = make_pipeline(FunctionTransformer(payload, kw_args={}), SimpleImputer())
    skops.io.dump({"param": evil, "fitted": evil}, tmp_path / "m" / "recoverer.skops")
    with pytest.raises(ValueError, match="recoverer.skops was changed after save"):
        DyMoClassifier.load(tmp_path / "m")
    write_manifest(tmp_path / "m")  # an attacker can recompute the checksums: the types are still refused
    with pytest.raises(ValueError, match=f"does not trust.*{payload.__module__}.{payload.__name__}"):
        DyMoClassifier.load(tmp_path / "m")


@pytest.mark.parametrize("recoverer", [None, KNNImputer(n_neighbors=3), IterativeImputer(max_iter=2)],
                         ids=["default KNNRecoverer", "KNNImputer", "IterativeImputer"])
def test_the_usual_recoverers_round_trip(image_table_data, tmp_path, recoverer):
    X, y = image_table_data
    clf = tiny_classifier(recoverer=recoverer).fit(X, y)
    clf.save(tmp_path / "m")
    loaded = DyMoClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("damage", ["truncate weights", "truncate statistics", "truncate recoverer",
                                    "drop config key", "invalid parameter", "not json"])
def test_damaged_files_give_an_error_naming_the_file(image_table_data, tmp_path, damage):
    import json

    X, y = image_table_data
    tiny_classifier().fit(X, y).save(tmp_path / "m")
    folder = tmp_path / "m"
    file = {"truncate weights": "weights.safetensors", "truncate statistics": "statistics.npz",
            "truncate recoverer": "recoverer.skops"}.get(damage, "config.json")
    if damage.startswith("truncate"):
        content = (folder / file).read_bytes()
        (folder / file).write_bytes(content[: len(content) // 2])
    elif damage == "not json":
        (folder / file).write_text("{not json")
    else:
        config = json.loads((folder / file).read_text())
        if damage == "drop config key":
            del config["classes"]
        else:
            config["params"]["temperature"] = -1.0
        (folder / file).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=re.escape(file) + ".*changed after save"):
        DyMoClassifier.load(folder)
    write_manifest(folder)  # sealed again, the reading itself must still name the file
    with pytest.raises(ValueError, match=re.escape(file)):
        DyMoClassifier.load(folder)


@pytest.mark.parametrize("edit", ["swap classes", "add file", "delete file", "drop manifest"])
def test_any_edit_of_a_saved_model_is_refused_naming_the_file(image_table_data, tmp_path, edit):
    """Catches edits that load and silently change predictions (two classes swapped in
    config.json inverts them), files lost or added, and a folder without its manifest."""
    X, y = image_table_data
    tiny_classifier(max_epochs=1).fit(X, y).save(tmp_path / "m")
    folder = tmp_path / "m"
    expected = {"swap classes": "config.json was changed", "add file": "notes.txt was not written by save",
                "delete file": "statistics.npz is missing", "drop manifest": "manifest.json is missing"}[edit]
    if edit == "swap classes":
        config = json.loads((folder / "config.json").read_text())
        config["classes"][:2] = config["classes"][1::-1]
        (folder / "config.json").write_text(json.dumps(config))
    elif edit == "add file":
        (folder / "notes.txt").write_text("mine")
    elif edit == "delete file":
        (folder / "statistics.npz").unlink()
    else:
        (folder / "manifest.json").unlink()
    with pytest.raises(ValueError, match=expected):
        DyMoClassifier.load(folder)
    (folder / ".DS_Store").write_text("an OS file")  # dot files are no part of a model
    if edit == "add file":
        (folder / "notes.txt").unlink()
        DyMoClassifier.load(folder)


def test_save_never_overwrites(image_table_data, tmp_path):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)
    clf.save(tmp_path / "m")
    with pytest.raises(ValueError, match="not an empty directory"):
        clf.save(tmp_path / "m")
    (tmp_path / "empty").mkdir()
    clf.save(tmp_path / "empty")  # an empty directory is fine
    assert (tmp_path / "empty" / "config.json").is_file()


def _two_token_encoder(shape, d_model):
    return VectorEncoder(shape, d_model, n_tokens=2)


def test_custom_encoders_are_passed_back_at_load(image_table_data, tmp_path):
    X, y = image_table_data
    clf = tiny_classifier(encoders={"table": _two_token_encoder}).fit(X, y)
    clf.save(tmp_path / "m")
    with pytest.raises(ValueError, match="custom encoder factories for modalities \\['table'\\]"):
        DyMoClassifier.load(tmp_path / "m")
    loaded = DyMoClassifier.load(tmp_path / "m", encoders={"table": _two_token_encoder})
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("kind", ["pickle", "saved"])
def test_model_trained_on_cuda_predicts_on_cpu(kind):
    """A model trained on an H100 by benchmarks/gpu_smoke.py, with the test input and the
    predictions recorded there. Its files were rewritten in the current save format (same weights
    and statistics; the pickle with every storage tagged cuda:0 and the net's device 'cuda', as
    torch writes them on a GPU): the predictions still match those made on the GPU."""
    with np.load(DATA / "cuda_model_input.npz") as stored:
        X = {name: stored[name] for name in ("m0", "m1")}
    if kind == "pickle":
        with open(DATA / "cuda_model.pkl", "rb") as handle:
            clf = pickle.load(handle)
    else:
        clf = DyMoResearchClassifier.load(DATA / "cuda_model", device="cpu")
    if not torch.cuda.is_available():
        assert str(clf.net_.module_.prototypes.device) == "cpu"
    expected = np.load(DATA / "cuda_model_proba.npy")
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-4)


def test_mars_saves_and_loads_through_the_same_format(image_table_data, tmp_path):
    X, y = image_table_data
    clf = tiny_mars(max_epochs=2, lr=np.float64(1e-2), batch_size=np.int64(64)).fit(X, y)
    clf.save(tmp_path / "mars")
    assert not (tmp_path / "mars" / "recoverer.skops").exists()
    loaded = MARSClassifier.load(tmp_path / "mars")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.get_params()["batch_size"] == 64
    with pytest.raises(ValueError, match="holds a MARSClassifier; load it with MARSClassifier.load"):
        DyMoClassifier.load(tmp_path / "mars")


@pytest.mark.parametrize("kind", ["vae", "tabular"])
def test_models_with_the_packages_neural_recoverers_save_without_pickle(image_table_data, tmp_path, kind):
    """Catches a model whose recoverer is MultimodalVAERecoverer or TabularRecoverer (torch
    modules, which skops cannot store safely) refused at save, or loaded with another network,
    another scaling or other categories: predictions and recoveries must be bit-identical."""
    from dymo_sklearn.recovery import MultimodalVAERecoverer, TabularRecoverer, recover

    X, y = image_table_data
    table = X["table"].copy()
    table[:, -1] = np.where(np.isnan(table[:, -1]), np.nan, (y % 3).astype(np.float32))  # a category code
    X = {"image": X["image"], "table": table}
    recoverer = (MultimodalVAERecoverer(max_epochs=2, random_state=0, device="cpu") if kind == "vae" else
                 TabularRecoverer("table", categorical_features=[15], max_epochs=2, random_state=0, device="cpu"))
    clf = tiny_classifier(recoverer=recoverer).fit(X, y)
    clf.save(tmp_path / "m")
    assert not (tmp_path / "m" / "recoverer.skops").exists()
    loaded = DyMoClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    for name, values in recover(loaded.recoverer_, X).items():
        np.testing.assert_array_equal(values, recover(clf.recoverer_, X)[name])
    assert type(loaded.recoverer) is type(recoverer) and loaded.recoverer.get_params() == recoverer.get_params()
    if kind == "tabular":
        assert loaded.recoverer_.categories_ == clf.recoverer_.categories_ == {15: 3}


def test_a_model_loaded_on_another_device_recovers_there(image_table_data, tmp_path):
    """The recoverer follows load(device=...): a model whose KNNRecoverer was set to CUDA loads
    and predicts on a CPU-only machine, and the default recoverer is never pinned to "cuda"."""
    from dymo_sklearn.recovery import KNNRecoverer

    assert DyMoClassifier(device="cuda")._recoverer().device == "auto"
    X, y = image_table_data
    clf = tiny_classifier(recoverer=KNNRecoverer(device="cpu")).fit(X, y)
    expected = clf.predict_proba(X)
    clf.recoverer_.set_params(device="cuda")
    clf.save(tmp_path / "m")
    loaded = DyMoClassifier.load(tmp_path / "m", device="cpu")
    assert loaded.recoverer_.device == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_saved_directory_has_the_usual_permissions(image_table_data, tmp_path):
    X, y = image_table_data
    tiny_classifier().fit(X, y).save(tmp_path / "m")
    (tmp_path / "plain").mkdir()
    assert (tmp_path / "m").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_iterative_imputer_with_trees_and_numpy_parameters_round_trip(image_table_data, tmp_path):
    from sklearn.ensemble import RandomForestRegressor

    X, y = image_table_data
    flat = np.concatenate([X["image"].reshape(len(y), -1), X["table"]], axis=1)
    recoverer = IterativeImputer(RandomForestRegressor(n_estimators=2, max_depth=3, random_state=0),
                                 max_iter=1, n_nearest_features=5, random_state=0)
    clf = tiny_classifier(recoverer=recoverer, column_groups={"image": np.arange(64), "table": list(range(64, 80))})
    clf.fit(flat, y).save(tmp_path / "m")
    np.testing.assert_array_equal(DyMoClassifier.load(tmp_path / "m").predict_proba(flat), clf.predict_proba(flat))


def test_a_save_that_fails_midway_leaves_nothing_behind(image_table_data, tmp_path, monkeypatch):
    X, y = image_table_data
    clf = tiny_classifier().fit(X, y)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        clf.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_a_multiindex_frame_with_a_categorical_column_loads_back(tmp_path):
    """Catches a saved model that loads but cannot predict: JSON turned the MultiIndex column
    names (tuples) into lists, which pandas cannot look up ('unhashable type: list')."""
    rng = np.random.default_rng(0)
    columns = pd.MultiIndex.from_tuples([("lab", "sodium"), ("lab", "potassium"), ("visit", "ward")])
    frame = pd.DataFrame({0: rng.normal(size=60), 1: rng.normal(size=60), 2: rng.choice(["a", "b"], 60)})
    frame.columns = columns
    X = {"labs": frame, "other": rng.normal(size=(60, 3))}
    clf = tiny_classifier(max_epochs=1).fit(X, np.arange(60) % 2)
    clf.save(tmp_path / "m")
    loaded = DyMoClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
