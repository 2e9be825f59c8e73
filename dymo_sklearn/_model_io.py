"""Whole-model functions: explain, save and load a package estimator or a Pipeline ending in one.

scikit-learn's Pipeline exposes only the methods it knows (predict, score, ...), so a Pipeline
ending in a DyMoClassifier has no ``explain`` or ``save``. These functions take either: the
Pipeline's earlier steps transform ``X`` (or are stored through skops with the same trusted
types as a recoverer) and the final estimator does the rest.

Layout of a saved Pipeline (a directory)::

    pipeline.json   format, the step names, the final step's class
    steps.skops     the steps before the final one, as a Pipeline, through skops
    final/          the final estimator, as its own ``save`` writes it
    manifest.json   the checksums of every file above, final/ included
"""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.pipeline import Pipeline

from ._base import MultimodalClassifier
from ._persistence import FORMAT, FORMAT_VERSION, check_saveable, read_checked, trusted_types, verify_manifest, write_directory

__all__ = ["explain", "load", "save"]

_PIPELINE_FILE = "pipeline.json"


def _final(model, action):
    """(preprocessing Pipeline or None, final package estimator) of ``model``."""
    if isinstance(model, Pipeline):
        final = model.steps[-1][1]
        preprocessing = model[:-1] if len(model.steps) > 1 else None
    else:
        final, preprocessing = model, None
    if not isinstance(final, MultimodalClassifier):
        raise TypeError(f"{action} needs a dymo_sklearn estimator or a Pipeline ending in one; the final step is "
                        f"a {type(final).__name__}.")
    return preprocessing, final


def explain(model, X):
    """Per-sample explanation of a fitted estimator or Pipeline ending in one.

    Parameters
    ----------
    model : fitted DyMoClassifier, MARSClassifier, or Pipeline ending in one
        A Pipeline's earlier steps transform ``X`` first, as they do for ``predict``.
    X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame

    Returns
    -------
    pandas.DataFrame
        What the final estimator's ``explain`` returns: for DyMo, per sample the observed,
        candidate and selected modalities, rewards and predictions; for MARS, the gates.
    """
    preprocessing, final = _final(model, "explain")
    return final.explain(X if preprocessing is None else preprocessing.transform(X))


def save(model, path):
    """Save a fitted estimator, or a Pipeline ending in one, without pickle.

    An estimator is saved as its own :meth:`~dymo_sklearn.DyMoClassifier.save` does. For a
    Pipeline the earlier steps are stored through skops, refused at save when they hold types
    that :func:`load` would not trust (e.g. a ``FunctionTransformer`` of a function), and the final
    estimator in a subdirectory. Read it back with :func:`load`.

    Parameters
    ----------
    model : fitted DyMoClassifier, MARSClassifier, or Pipeline ending in one
    path : str or Path
        A directory that does not exist or is empty.

    Returns
    -------
    path : Path
    """
    import skops.io

    preprocessing, final = _final(model, "save")
    if not isinstance(model, Pipeline):
        return final.save(path)
    if preprocessing is not None:
        check_saveable(preprocessing, "the Pipeline's steps before the estimator")
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "Pipeline",
              "steps": [name for name, _ in model.steps], "final": type(final).__name__}

    def write(folder):
        (folder / _PIPELINE_FILE).write_text(json.dumps(config, indent=2))
        if preprocessing is not None:
            skops.io.dump(preprocessing, folder / "steps.skops")
        final.save(folder / "final")

    return write_directory(path, write)


def _estimator_classes():
    from ._classifier import DyMoClassifier
    from ._mars import MARSClassifier
    from .experimental import DyMoResearchClassifier, MARSResearchClassifier

    return {cls.__name__: cls for cls in (DyMoClassifier, MARSClassifier, DyMoResearchClassifier,
                                          MARSResearchClassifier)}


def _load_estimator(path, device, encoders):
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path} is not a saved dymo_sklearn model: neither {_PIPELINE_FILE} nor config.json is "
                         "there.")
    config = read_checked(config_file, lambda: json.loads(config_file.read_text()))
    name = config.get("estimator") if isinstance(config, dict) else None
    classes = _estimator_classes()
    if name not in classes:
        raise ValueError(f"{config_file} names estimator {name!r}, not one of {sorted(classes)}.")
    return classes[name].load(path, device=device, encoders=encoders)


def load(path, *, device=None, encoders=None):
    """Load what :func:`save` (or an estimator's ``save``) wrote: an estimator or a Pipeline.

    Parameters
    ----------
    path : str or Path
    device : {"auto", "cpu", "cuda"}, optional
        Where to put the network; default: the saved ``device`` parameter.
    encoders : dict, optional
        The custom encoder factories the model was fitted with, if any.

    Returns
    -------
    DyMoClassifier, MARSClassifier (or their research variants), or Pipeline
    """
    import skops.io

    path = Path(path)
    pipeline_file = path / _PIPELINE_FILE
    if not pipeline_file.is_file():
        return _load_estimator(path, device, encoders)
    verify_manifest(path)
    config = read_checked(pipeline_file, lambda: json.loads(pipeline_file.read_text()))
    if not isinstance(config, dict) or config.get("format") != FORMAT or config.get("kind") != "Pipeline":
        raise ValueError(f"{pipeline_file} is not a saved dymo_sklearn Pipeline.")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{pipeline_file} has format version {config.get('format_version')}; this version reads "
                         f"format {FORMAT_VERSION}: fit and save it again.")
    names = config.get("steps")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{pipeline_file}: 'steps' must be a non-empty list of step names; the file was edited.")
    final = _load_estimator(path / "final", device, encoders)
    steps = []
    if len(names) > 1:
        file = path / "steps.skops"
        trusted = trusted_types(file)
        preprocessing = read_checked(file, lambda: skops.io.load(file, trusted=trusted))
        if not isinstance(preprocessing, Pipeline) or len(preprocessing.steps) != len(names) - 1:
            raise ValueError(f"{file} does not hold the {len(names) - 1} steps {pipeline_file} names.")
        steps = list(preprocessing.steps)
    return Pipeline(steps + [(names[-1], final)])
