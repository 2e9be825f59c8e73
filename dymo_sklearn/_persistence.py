"""A persistence format that runs no code on load: JSON config, safetensors weights, npz arrays,
and fitted scikit-learn parts through skops with only scikit-learn and numpy types trusted.

Layout of a saved model (a directory)::

    config.json          format version, estimator class, hyper-parameters, modalities, classes
    weights.safetensors  the network's state dict
    statistics.npz       the estimator's fitted arrays, e.g. DyMo's prototypes and ICS statistics
                         (loaded with allow_pickle=False)
    teachers.skops       for DyMo with teacher fusion: the fitted per-modality teachers
    recoverer.skops      for DyMo: the recoverer parameter and the fitted recoverer; for the
                         package's neural recoverers instead recoverer.json (class, parameters,
                         fitted attributes), recoverer.npz (scaling) and
                         recoverer.safetensors (network weights)
    manifest.json        the SHA-256 of every other file: any edit, truncation, deletion or
                         addition is refused at load, naming the file

What an estimator saves besides the network is declared by its class: ``_saved_arrays`` (numpy
attributes) and ``_saved_estimator`` (a parameter and its fitted attribute, stored through
skops). There is one format; until a first release it changes without compatibility.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import uuid
from pathlib import Path

import numpy as np

FORMAT = "dymo_sklearn"
FORMAT_VERSION = 3
# Types trusted on load beyond skops's own defaults: each named here on purpose. Anything else
# (a function such as builtins.eval or numpy.load inside a FunctionTransformer, an unknown class)
# is refused, so a tampered file cannot run code at load or at any later call.
TRUSTED_TYPES = frozenset({
    "numpy.dtype",
    "sklearn.impute._iterative.IterativeImputer",
    "sklearn.impute._iterative._ImputerTriplet",
    # Fitted data structures of estimators used inside IterativeImputer (trees, forests,
    # gradient boosting, nearest neighbours): arrays and numbers, no callables.
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "dymo_sklearn.recovery._knn.KNNRecoverer",
    "sklearn.frozen._frozen.FrozenEstimator",
    "dymo_sklearn._preprocessing.ModalityTransformer",
    # The per-modality teachers of teacher fusion: Platt-scaled SVCs (arrays and numbers).
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
})
TEACHERS_FILE = "teachers.skops"
_CUSTOM = "<custom factory>"


def _json_float(value):
    return value if math.isfinite(value) else str(value)


_NON_FINITE = ("inf", "-inf", "nan")


def _json_default(value):
    """numpy values nested in parameters (e.g. column_groups={"a": np.arange(3)}) as plain JSON."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} in the parameters cannot be saved as JSON.")
_CONFIG_KEYS = ("estimator", "params", "categories", "classes", "classes_dtype", "modalities", "modality_shapes", "n_features_in",
                "feature_names_in")


def _from_json_float(value):
    return float(value)


def _column_name(column):
    """A column name as pandas had it: JSON writes a MultiIndex column's tuple as a list."""
    return tuple(_column_name(part) for part in column) if isinstance(column, list) else column


def _read_categories(config_file, saved):
    """The saved categories, checked."""
    try:
        categories = {name: [(_column_name(column), None if values is None else list(values))
                             for column, values in columns]
                      for name, columns in saved.items()}
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{config_file}: 'categories' must map modalities to [column, categories] pairs; "
                         "the file was edited.") from None
    for columns in categories.values():
        for _, values in columns:
            if values is not None and not all(isinstance(value, (str, int, float, bool)) for value in values):
                raise ValueError(f"{config_file}: categories must be strings, numbers or booleans.")
    return categories


def save_model(estimator, path):
    """Write a fitted estimator to the directory ``path`` (created if needed)."""
    import skops.io
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    check_is_fitted(estimator)
    params = estimator.get_params(deep=False)
    saved_estimator = estimator._saved_estimator
    if saved_estimator:
        params.pop(saved_estimator[0])
    if params.get("encoders"):
        # Code cannot be stored safely: a custom encoder factory is named, and given back at load.
        params["encoders"] = {
            name: spec if isinstance(spec, str) else _CUSTOM for name, spec in params["encoders"].items()
        }
    params = _storable_seed(params)
    if isinstance(params.get("class_weight"), dict):
        # JSON object keys are strings; pairs keep integer and float labels what they were.
        params["class_weight"] = [[label, weight] for label, weight in params["class_weight"].items()]
    params = {name: value.item() if isinstance(value, np.generic) else value for name, value in params.items()}
    params = {name: _json_float(value) if isinstance(value, float) else value for name, value in params.items()}
    classes = estimator.classes_
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "estimator": type(estimator).__name__,
        "params": params,
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "modalities": estimator.modalities_,
        "modality_shapes": {name: list(shape) for name, shape in estimator.modality_shapes_.items()},
        "feature_names_in": getattr(estimator, "feature_names_in_", np.array([])).tolist(),
        "n_features_in": getattr(estimator, "n_features_in_", None),
        # Per DataFrame modality with categorical columns: [column, categories or null] pairs.
        "categories": {name: [[column, categories] for column, categories in columns]
                       for name, columns in getattr(estimator, "categories_", {}).items()},
    }
    neural = bool(saved_estimator) and _is_neural(getattr(estimator, saved_estimator[1]))
    if saved_estimator and not neural:
        check_saveable(getattr(estimator, saved_estimator[1]), "the recoverer")

    def write(folder):
        (folder / "config.json").write_text(json.dumps(config, indent=2, default=_json_default))
        state = {key: value.detach().cpu().contiguous() for key, value in estimator.net_.module_.state_dict().items()}
        save_file(state, str(folder / "weights.safetensors"))
        np.savez(folder / "statistics.npz", **{name: getattr(estimator, name) for name in estimator._saved_arrays})
        if neural:
            _write_neural(folder, saved_estimator[0], getattr(estimator, saved_estimator[0]),
                          getattr(estimator, saved_estimator[1]))
        elif saved_estimator:
            param, fitted = saved_estimator
            skops.io.dump({"param": getattr(estimator, param), "fitted": getattr(estimator, fitted)},
                          folder / f"{param}.skops")
        if getattr(estimator, "teachers_", None):
            skops.io.dump(estimator.teachers_, folder / TEACHERS_FILE)

    return write_directory(path, write)


def write_directory(path, write):
    """Create the directory ``path`` (absent or empty) with what ``write(folder)`` puts in it.

    It is written as a temporary sibling, sealed with a manifest of checksums and renamed at the
    end: a failure leaves nothing.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} exists and is not an empty directory; save() never overwrites.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}-{uuid.uuid4().hex}"
    staging.mkdir()  # the usual permissions (umask), unlike tempfile.mkdtemp's private 0700
    try:
        write(staging)
        write_manifest(staging)
        if path.exists():
            path.rmdir()
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


MANIFEST = "manifest.json"


def _checksums(folder):
    """SHA-256 of every file below ``folder`` but its manifest, by relative POSIX path; names
    starting with a dot (an OS's .DS_Store, say) are not part of a model."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)}


def write_manifest(folder):
    """Seal ``folder``: write the checksums of its files into its manifest."""
    (Path(folder) / MANIFEST).write_text(json.dumps({"format": FORMAT, "sha256": _checksums(folder)}, indent=1))


def verify_manifest(folder):
    """Refuse a saved model whose files differ from what save() wrote, naming the file.

    The checksums catch edits, truncation, lost and added files; they are no signature: whoever
    rewrites a file can rewrite the manifest too, so load() still trusts no code inside.
    """
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise ValueError(f"{manifest} is missing: {folder} was not written by save(), or was edited.")
    recorded = read_checked(manifest, lambda: json.loads(manifest.read_text()))
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), dict):
        raise ValueError(f"{manifest} is not what save() wrote; the folder was edited.")
    found = _checksums(folder)
    for name, digest in recorded["sha256"].items():
        if name not in found:
            raise ValueError(f"{folder / name} is missing: the saved model is incomplete.")
        if found[name] != digest:
            raise ValueError(f"{folder / name} was changed after save() wrote it (its checksum differs from "
                             f"{manifest.name}); save the model again.")
    added = sorted(set(found) - set(recorded["sha256"]))
    if added:
        raise ValueError(f"{folder / added[0]} was not written by save(); remove it or save the model again.")


def _storable_seed(params):
    """``params`` with a RandomState instance (which JSON cannot hold) saved as None."""
    if isinstance(params.get("random_state"), np.random.RandomState):
        return {**params, "random_state": None}
    return params


def _neural_classes():
    from .recovery import MultimodalVAERecoverer, TabularRecoverer

    return {cls.__name__: cls for cls in (MultimodalVAERecoverer, TabularRecoverer)}


def _is_neural(fitted):
    """The package's neural recoverers hold torch modules: saved as weights, never through skops."""
    return type(fitted) in _neural_classes().values()


def _write_neural(folder, param, unfitted, fitted):
    from safetensors.torch import save_file

    config = {"class": type(fitted).__name__, "param": _storable_seed(unfitted.get_params(deep=False)),
              "params": _storable_seed(fitted.get_params(deep=False))}
    config["fitted"], arrays, state = fitted.saved_state()
    (folder / f"{param}.json").write_text(json.dumps(config, indent=2, default=_json_default))
    np.savez(folder / f"{param}.npz", **arrays)
    save_file(state, str(folder / f"{param}.safetensors"))


def _read_neural(path, param, device):
    """(the unfitted recoverer parameter, the fitted recoverer) of a neural recoverer's files."""
    from safetensors.torch import load_file

    config_file = path / f"{param}.json"
    config = read_checked(config_file, lambda: json.loads(config_file.read_text()))
    classes = _neural_classes()
    if not isinstance(config, dict) or config.get("class") not in classes:
        raise ValueError(f"{config_file} does not name one of the package's neural recoverers {sorted(classes)}.")
    cls = classes[config["class"]]

    def read_arrays():
        with np.load(path / f"{param}.npz", allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}

    arrays = read_checked(path / f"{param}.npz", read_arrays)
    weights = path / f"{param}.safetensors"
    state = read_checked(weights, lambda: load_file(str(weights)))
    fitted = read_checked(config_file, lambda: cls.from_saved_state(config["params"], config["fitted"], arrays, state,
                                                                    device))
    return cls(**config["param"]), fitted


def check_saveable(fitted, what):
    """Refuse at save what load() would refuse: a fitted part (``what``) made of untrusted types."""
    import skops.io

    untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(fitted))) - TRUSTED_TYPES
    if untrusted:
        raise ValueError(
            f"save() stores {what} without pickle, and {type(fitted).__name__} holds types it cannot "
            f"store safely: {sorted(untrusted)}. Use pickle or joblib for this model, or scikit-learn "
            "imputers and transformers, KNNRecoverer and ModalityTransformer.")


def trusted_types(file):
    import skops.io

    untrusted = read_checked(file, lambda: skops.io.get_untrusted_types(file=file))
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ValueError(
            f"{file} holds types that load() does not trust: {refused}. Only scikit-learn estimators, "
            "KNNRecoverer, ModalityTransformer and the types they are made of are loaded; if you trust this file, "
            "read it yourself with skops.io.load(file, trusted=...).")
    return untrusted


def read_checked(file, reader):
    """Run ``reader``; a missing, truncated or edited file becomes a ValueError naming it."""
    try:
        return reader()
    except Exception as error:  # zipfile.BadZipFile, KeyError, EOFError, JSON and safetensors errors
        if isinstance(error, ValueError) and str(file) in str(error):
            raise
        raise ValueError(f"{file} is missing, truncated or not what save() wrote: "
                         f"{type(error).__name__}: {error}") from error


def load_model(cls, path, *, device=None, encoders=None):
    """Read a model written by :func:`save_model`."""
    import skops.io
    from safetensors.torch import load_file

    from ._devices import resolve_device

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path} is not a saved {cls.__name__}: {config_file.name} is missing.")
    verify_manifest(path)
    config = read_checked(config_file, lambda: json.loads(config_file.read_text()))
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} is not a {FORMAT} model file.")
    if config.get("format") != FORMAT:
        raise ValueError(f"{config_file} is not a {FORMAT} model file.")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in format version {config.get('format_version')} by dymo_sklearn "
            f"{config.get('package_version')}; this version reads format {FORMAT_VERSION}: fit and save it again."
        )
    missing_keys = sorted(set(_CONFIG_KEYS) - set(config))
    if missing_keys:
        raise ValueError(f"{config_file} lacks {missing_keys}: it is truncated or was edited.")
    saved_class = config["estimator"]
    if saved_class != cls.__name__:
        raise ValueError(f"{path} holds a {saved_class}; load it with {saved_class}.load.")
    params = {name: _from_json_float(value) if value in _NON_FINITE else value
              for name, value in config["params"].items()}
    saved_encoders = dict(params.get("encoders") or {})
    saved_encoders.update(encoders or {})
    missing = [name for name, spec in saved_encoders.items() if spec == _CUSTOM]
    if missing:
        raise ValueError(
            f"The model was fitted with custom encoder factories for modalities {missing}; pass them "
            f"again: {cls.__name__}.load(path, encoders={{...}})."
        )
    params["encoders"] = saved_encoders or None
    if isinstance(params.get("class_weight"), list):
        pairs = params["class_weight"]
        if not all(isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int, float))
                   for pair in pairs):
            raise ValueError(f"{config_file}: class_weight must be saved as [label, weight] pairs; the file was edited.")
        params["class_weight"] = {label: weight for label, weight in pairs}
    if device is not None:
        params["device"] = device
    fitted_parts = {}
    if cls._saved_estimator and (path / f"{cls._saved_estimator[0]}.json").is_file():
        param, fitted = cls._saved_estimator
        params[param], fitted_parts[fitted] = _read_neural(path, param, device)
    elif cls._saved_estimator:
        param, fitted = cls._saved_estimator
        file = path / f"{param}.skops"
        trusted = trusted_types(file)
        parts = read_checked(file, lambda: skops.io.load(file, trusted=trusted))
        params[param], fitted_parts[fitted] = parts["param"], parts["fitted"]
    estimator = cls(**params)
    try:
        estimator._validate_params()
    except ValueError as error:
        raise ValueError(f"{config_file}: {error}") from error

    estimator.classes_ = np.asarray(config["classes"], dtype=np.dtype(config["classes_dtype"]))
    estimator.modalities_ = list(config["modalities"])
    estimator.modality_shapes_ = {name: tuple(shape) for name, shape in config["modality_shapes"].items()}
    estimator.categories_ = _read_categories(config_file, config["categories"])
    if config["n_features_in"] is not None:
        estimator.n_features_in_ = config["n_features_in"]
        if config["feature_names_in"]:
            estimator.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
    for name, value in fitted_parts.items():
        if device is not None and hasattr(value, "get_params") and "device" in value.get_params():
            value.set_params(device=device)  # the recoverer follows the network to the requested device
        setattr(estimator, name, value)
    teachers = path / TEACHERS_FILE
    if teachers.is_file():  # teacher fusion (a research option of DyMo)
        estimator.teachers_ = read_checked(teachers, lambda: skops.io.load(teachers, trusted=trusted_types(teachers)))

    def read_statistics():
        with np.load(path / "statistics.npz", allow_pickle=False) as statistics:
            return {name: statistics[name] for name in cls._saved_arrays}

    for name, value in read_checked(path / "statistics.npz", read_statistics).items():
        setattr(estimator, name, value)

    torch_device = resolve_device(estimator.device)
    net = estimator._build_net(None, None, torch_device, seed=0)  # weights are loaded next
    net.initialize()
    weights = path / "weights.safetensors"
    read_checked(weights, lambda: net.module_.load_state_dict(load_file(str(weights), device=str(torch_device))))
    net.module_.eval()
    estimator.net_ = net
    return estimator
