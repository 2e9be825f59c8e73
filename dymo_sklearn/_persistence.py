"""A persistence format that runs no code on load: JSON config, safetensors weights, npz arrays,
and the fitted recoverer through skops with only scikit-learn and numpy types trusted.

Layout of a saved model (a directory)::

    config.json          format version, hyper-parameters, modalities, classes, fitted scalars
    weights.safetensors  the network's state dict
    statistics.npz       prototypes and ICS statistics (loaded with allow_pickle=False)
    recoverer.skops      the recoverer parameter and the fitted recoverer
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

FORMAT = "dymo_sklearn"
FORMAT_VERSION = 1
_STATISTICS = ("subset_codes_", "subset_prototypes_", "ics_sigma_", "prototypes_")
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.")
_CUSTOM = "<custom factory>"


def _json_float(value):
    return value if math.isfinite(value) else str(value)


def _from_json_float(value):
    return float(value)


def save_model(estimator, path):
    """Write a fitted DyMoClassifier to the directory ``path`` (created if needed)."""
    import skops.io
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    check_is_fitted(estimator)
    params = estimator.get_params(deep=False)
    params.pop("recoverer")
    if params.get("encoders"):
        # Code cannot be stored safely: a custom encoder factory is named, and given back at load.
        params["encoders"] = {
            name: spec if isinstance(spec, str) else _CUSTOM for name, spec in params["encoders"].items()
        }
    if isinstance(params["random_state"], np.random.RandomState):
        params["random_state"] = None
    if isinstance(params["acceptance_threshold"], float):
        params["acceptance_threshold"] = _json_float(params["acceptance_threshold"])
    classes = estimator.classes_
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "params": params,
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "modalities": estimator.modalities_,
        "modality_shapes": {name: list(shape) for name, shape in estimator.modality_shapes_.items()},
        "acceptance_threshold_": _json_float(float(estimator.acceptance_threshold_)),
        "feature_names_in": getattr(estimator, "feature_names_in_", np.array([])).tolist(),
        "n_features_in": getattr(estimator, "n_features_in_", None),
    }
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    state = {key: value.detach().cpu().contiguous() for key, value in estimator.net_.module_.state_dict().items()}
    save_file(state, str(path / "weights.safetensors"))
    np.savez(path / "statistics.npz", **{name: getattr(estimator, name) for name in _STATISTICS})
    skops.io.dump({"param": estimator.recoverer, "fitted": estimator.recoverer_}, path / "recoverer.skops")
    return path


def _trusted_types(file):
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=file)
    refused = [name for name in untrusted if not name.startswith(_TRUSTED_PREFIXES)]
    if refused:
        raise ValueError(f"{file} holds types outside scikit-learn and numpy, which load() refuses: {refused}.")
    return untrusted


def load_model(cls, path, *, device=None, encoders=None):
    """Read a model written by :func:`save_model`."""
    import skops.io
    from safetensors.torch import load_file

    from ._devices import resolve_device

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path} is not a saved DyMoClassifier: {config_file.name} is missing.")
    config = json.loads(config_file.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{config_file} is not a {FORMAT} model file.")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in format version {config.get('format_version')} by dymo_sklearn "
            f"{config.get('package_version')}; this version reads format {FORMAT_VERSION} only."
        )
    params = dict(config["params"])
    if isinstance(params["acceptance_threshold"], str) and params["acceptance_threshold"] != "auto":
        params["acceptance_threshold"] = _from_json_float(params["acceptance_threshold"])
    saved_encoders = dict(params.get("encoders") or {})
    saved_encoders.update(encoders or {})
    missing = [name for name, spec in saved_encoders.items() if spec == _CUSTOM]
    if missing:
        raise ValueError(
            f"The model was fitted with custom encoder factories for modalities {missing}; pass them "
            "again: DyMoClassifier.load(path, encoders={...})."
        )
    params["encoders"] = saved_encoders or None
    if device is not None:
        params["device"] = device
    recoverers = skops.io.load(path / "recoverer.skops", trusted=_trusted_types(path / "recoverer.skops"))
    estimator = cls(recoverer=recoverers["param"], **params)

    estimator.classes_ = np.asarray(config["classes"], dtype=np.dtype(config["classes_dtype"]))
    estimator.modalities_ = list(config["modalities"])
    estimator.modality_shapes_ = {name: tuple(shape) for name, shape in config["modality_shapes"].items()}
    estimator.acceptance_threshold_ = _from_json_float(config["acceptance_threshold_"])
    if config["n_features_in"] is not None:
        estimator.n_features_in_ = config["n_features_in"]
        if config["feature_names_in"]:
            estimator.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
    estimator.recoverer_ = recoverers["fitted"]
    with np.load(path / "statistics.npz", allow_pickle=False) as statistics:
        for name in _STATISTICS:
            setattr(estimator, name, statistics[name])

    torch_device = resolve_device(estimator.device)
    net = estimator._build_net(None, None, torch_device)
    net.initialize()
    net.module_.load_state_dict(load_file(str(path / "weights.safetensors"), device=str(torch_device)))
    net.module_.eval()
    estimator.net_ = net
    return estimator
