"""The base estimator: the one fit path and the one predict path that DyMo and MARS share.

fit: validate -> seed -> split -> fit-time preparation (hook) -> build the skorch net (hook) ->
train -> after-fit hook. predict: validate -> batches on the device -> per-batch hook -> outputs.
The estimators add only their parameters, docstrings and hooks."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import scipy.sparse
import torch
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from skorch.dataset import ValidSplit
from tqdm.auto import tqdm

from ._categorical import encode_categories, fit_categories, has_categories
from ._devices import resolve_device
from ._input import (
    check_some_modality_observed,
    observed_modalities,
    split_columns,
    validate_modalities,
)
from ._prototypes import MAX_MODALITIES
from ._random import fit_seed
from ._teachers import cross_fitted_teachers
from ._training import SAMPLE_WEIGHT, is_terminal
from .nn.encoders import encoder_kind
from .nn.standardize import input_statistics

AUTO_EARLY_STOPPING_MIN_SAMPLES = 500

# Constraints of the parameters both estimators share (input, network size, training, device).
SHARED_PARAMETER_CONSTRAINTS = {
    "encoders": [dict, None],
    "column_groups": [dict, None],
    "standardize": ["boolean"],
    "d_model": [Interval(Integral, 1, None, closed="left")],
    "n_heads": [Interval(Integral, 1, None, closed="left")],
    "n_layers": [Interval(Integral, 1, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "patience": [Interval(Integral, 1, None, closed="left")],
    "predict_batch_size": [Interval(Integral, 1, None, closed="left")],
    "device": [StrOptions({"auto", "cpu", "cuda"})],
    "class_weight": [dict, StrOptions({"balanced"}), None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def check_finite_outputs(logits, arrays):
    """``logits`` (n, K) unchanged when finite; else a ValueError naming the rows and the largest
    input of each modality there, never a silent NaN probability or a class-0 answer."""
    broken = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if broken.size:
        largest = ", ".join(f"{name} {np.nanmax(np.abs(array[broken]), initial=0.0):.3g}"
                            for name, array in arrays.items())
        raise ValueError(
            f"The network's outputs are not finite for {broken.size} sample(s) (rows {broken[:10].tolist()}). "
            f"Largest absolute input per modality in those rows: {largest}; values this large overflow "
            "the encoders: rescale the modality (or the model was trained to non-finite weights).")
    return logits


def _refuse_booleans(estimator, constraints):
    """scikit-learn's Interval(Integral) admits True and False; an integer parameter must not."""
    for name, options in constraints.items():
        value = getattr(estimator, name)
        integral = any(isinstance(option, Interval) and option.type is Integral for option in options)
        if integral and isinstance(value, (bool, np.bool_)):
            raise ValueError(f"The '{name}' parameter of {type(estimator).__name__} must be an integer, "
                             f"got {value!r}.")


class MultimodalClassifier(ClassifierMixin, BaseEstimator):
    """Base of DyMoClassifier and MARSClassifier; not meant to be used directly.

    Subclasses implement :meth:`_build_net` and :meth:`_predict_batch`, and may override
    :meth:`_prepare_fit`, :meth:`_after_fit`, :meth:`_check_predict_params` and
    :meth:`_prediction_context`. What :meth:`save` stores besides the network is declared by
    ``_saved_arrays`` and ``_saved_estimator``; ``_reserved_prefixes`` names the prefixes of the
    extra training inputs a subclass's network reads, which modality names must not take.
    """

    _saved_arrays = ()
    _saved_estimator = None
    _reserved_prefixes = ()
    teacher_weight = 0.0  # weight of the per-modality teachers' distillation; subclasses that have it set it

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
        return tags

    # ----------------------------------------------------------------- input
    def _modalities(self, X, *, reset):
        """Validated float32 arrays per modality, in the fitted order when not resetting."""
        if scipy.sparse.issparse(X):
            raise TypeError(
                "Sparse input is not supported: missing entries must be NaN. Convert with `.toarray()`."
            )
        if isinstance(X, Mapping):
            if self.column_groups is not None:
                raise ValueError("column_groups applies to 2-D input only; a dict already names its modalities.")
            if reset:
                for attribute in ("n_features_in_", "feature_names_in_"):
                    if hasattr(self, attribute):
                        delattr(self, attribute)
            elif hasattr(self, "n_features_in_"):
                raise TypeError("This estimator was fitted on a 2-D array; predict on a 2-D array too.")
            return self._encoded_modalities(X, reset=reset)
        if not reset and not hasattr(self, "n_features_in_"):
            raise TypeError(
                f"This estimator was fitted on a dict of modalities {self.modalities_}; got {type(X).__name__}."
            )
        # Whether the table has categorical columns is decided at fit: at predict a column may
        # arrive as object dtype (numbers read from JSON) or as all-NaN floats (no value given).
        if has_categories(X) if reset else bool(getattr(self, "categories_", {})):
            # A table with categorical columns: split it by column position into DataFrames,
            # which are then encoded as a dict of DataFrames would be.
            validate_data(self, X, reset=reset, skip_check_array=True)
            positions = split_columns(np.arange(X.shape[1])[None, :], self.column_groups,
                                      getattr(self, "feature_names_in_", None))
            return self._encoded_modalities({name: X.iloc[:, columns[0]] for name, columns in positions.items()},
                                            reset=reset)
        if reset:
            self.categories_ = {}
        array = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=np.float32)
        modalities = split_columns(array, self.column_groups, getattr(self, "feature_names_in_", None))
        return validate_modalities(modalities, reference_shapes=None if reset else self.modality_shapes_)

    def _encoded_modalities(self, X, *, reset):
        """Categorical columns fitted (``reset``) or encoded, then every modality validated."""
        if reset:
            self.categories_ = fit_categories(X)
        X = encode_categories(X, getattr(self, "categories_", {}))
        return validate_modalities(X, reference_shapes=None if reset else self.modality_shapes_)

    def _taught_modalities(self):
        """The vector modalities: those a per-modality teacher (an SVC) can learn from."""
        specs = self._encoder_specs(self.modalities_)
        return [name for name, spec in zip(self.modalities_, specs)
                if encoder_kind(spec, self.modality_shapes_[name]) == "vector"]

    def _with_teacher_targets(self, train, y_encoded, seed, weights=None):
        """``train`` plus the cross-fitted teachers' log-probabilities (``teacher:<name>``) of its
        vector modalities, which the network distils from when ``teacher_weight`` is positive."""
        if self.teacher_weight <= 0:
            return train
        return {**train, **cross_fitted_teachers(train, self._taught_modalities(), y_encoded, len(self.classes_),
                                                 seed, weights)}

    def _encoder_specs(self, names):
        specs = dict(self.encoders or {})
        unknown = sorted(set(specs) - set(names))
        if unknown:
            raise ValueError(f"encoders names unknown modalities {unknown}; the input has {names}.")
        return [specs.get(name) for name in names]

    def _start_fit(self, X, y):
        """Validate parameters, input and labels; set classes_, modalities_, modality_shapes_.

        Returns the arrays, per-sample modality presence, encoded labels and encoder specs.
        """
        self._validate_params()
        _refuse_booleans(self, self._parameter_constraints)
        arrays = self._modalities(X, reset=True)
        y = column_or_1d(np.asarray(y), warn=True)
        n_samples = next(iter(arrays.values())).shape[0]
        if len(y) != n_samples:
            raise ValueError(f"y has {len(y)} labels but X has {n_samples} samples.")
        labeled = labeled_rows(y)
        if labeled is not None:
            y = y[labeled]
        try:
            check_classification_targets(y)
            encoder = LabelEncoder().fit(y)
        except TypeError as error:
            raise ValueError(f"y mixes label types that cannot be ordered (missing labels as None or NaN "
                             f"among strings?): {error}") from None
        if len(encoder.classes_) < 2:
            unlabeled = "" if labeled is None else (
                f" ({n_samples - len(labeled)} rows labelled -1 are unlabeled rows, as in "
                "sklearn.semi_supervised; a class named -1 must be renamed)")
            raise ValueError(f"Need samples of at least 2 classes to fit; y holds only one class: "
                             f"{encoder.classes_[0]!r}{unlabeled}.")
        if len(arrays) > MAX_MODALITIES:
            raise ValueError(f"At most {MAX_MODALITIES} modalities are supported, got {len(arrays)}.")
        names = list(arrays)
        prefixes = tuple(self._reserved_prefixes)
        reserved = [name for name in names if name == SAMPLE_WEIGHT or name.startswith(prefixes)]
        if reserved:
            taken = ", ".join([f"'{SAMPLE_WEIGHT}'", *(f"'{prefix}...'" for prefix in prefixes)])
            raise ValueError(f"Modality names {reserved} are reserved for training inputs ({taken}); rename them.")
        present, _ = observed_modalities(arrays)
        check_some_modality_observed(present, names)
        never = [name for name, seen in zip(names, present.any(axis=0)) if not seen]
        if never:
            raise ValueError(f"Modalities {never} have no observed entry in the training data: the network "
                             "cannot learn them. Drop them from X.")
        unseen = [] if labeled is None else [name for name, seen in zip(names, present[labeled].any(axis=0))
                                             if not seen]
        if unseen:
            raise ValueError(f"Modalities {unseen} are observed only in unlabeled rows (label -1): the network "
                             "cannot learn them. Drop them from X, or label some rows that have them.")
        specs = self._encoder_specs(names)
        self.classes_ = encoder.classes_
        self.modalities_ = names
        self.modality_shapes_ = {name: array.shape[1:] for name, array in arrays.items()}
        return arrays, present, encoder.transform(y).astype(np.int64), specs, labeled

    @staticmethod
    def _stratifiable(y_encoded, fraction):
        counts = np.bincount(y_encoded)
        n_held_out = int(np.ceil(fraction * len(y_encoded)))
        return counts.min() >= 2 and len(y_encoded) - n_held_out >= len(counts) and n_held_out >= len(counts)

    def _use_validation(self, y_encoded):
        feasible = self._stratifiable(y_encoded, self.validation_fraction)
        if self.early_stopping == "auto":
            return feasible and len(y_encoded) >= AUTO_EARLY_STOPPING_MIN_SAMPLES
        if self.early_stopping and not feasible:
            raise ValueError(
                "early_stopping=True needs a stratified validation split with every class on both sides; "
                f"class counts {np.bincount(y_encoded).tolist()} with validation_fraction="
                f"{self.validation_fraction} cannot."
            )
        return bool(self.early_stopping)

    # ------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Train the network through skorch, then fit what the estimator derives from it.

        Parameters
        ----------
        X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
            NaN marks missing entries; an all-NaN modality is a missing modality.
        y : array-like of shape (n_samples,)
            Class labels; -1 marks an unlabeled row (``sklearn.semi_supervised``'s convention),
            which only the label-free parts of fitting use.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample, multiplied by ``class_weight``; the product is
            rescaled to mean 1, so only relative weights matter. It weighs the training and
            validation losses, the class prototypes and every per-subset statistic. The
            recoverer is fitted unweighted (scikit-learn's imputers take no weights).

        Returns
        -------
        self
        """
        try:
            arrays, present, y_encoded, specs, labeled = self._start_fit(X, y)
            weights = self._sample_weights(y_encoded, _labeled_weights(sample_weight, labeled, len(present)))
            seed = fit_seed(self.random_state)
            network_inputs = self._prepare_fit(arrays, seed, labeled, y_encoded, weights)
            if weights is not None:
                network_inputs = {**network_inputs, SAMPLE_WEIGHT: weights}
            train_split = self._train_split(y_encoded, seed)
            # Input statistics need no labels: every row counts.
            self.net_ = self._build_net(specs, train_split, resolve_device(self.device), seed,
                                        self._input_scaling(arrays, specs))
            self.net_.fit(network_inputs, y_encoded)
            if labeled is not None:  # the labeled rows the network trained on, not copied again
                arrays, present = {name: network_inputs[name] for name in arrays}, present[labeled]
            self._after_fit(arrays, present, y_encoded, seed, weights)
        except BaseException:
            # A failed (re)fit leaves the estimator unfitted, never half old and half new.
            for name in [name for name in vars(self) if name.endswith("_") and not name.startswith("__")]:
                delattr(self, name)
            raise
        return self

    def _input_scaling(self, fit_arrays, specs):
        """Per modality (shift, scale) of its observed training entries; None without ``standardize``."""
        if not self.standardize:
            return None
        return [input_statistics(fit_arrays[name], encoder_kind(spec, self.modality_shapes_[name]), name)
                for name, spec in zip(self.modalities_, specs)]

    def _sample_weights(self, y_encoded, sample_weight):
        """float32 weights of mean 1 from ``sample_weight`` and ``class_weight``; None for neither,
        so unweighted training takes exactly the unweighted path."""
        if sample_weight is None and self.class_weight is None:
            return None
        if sample_weight is not None and not np.isscalar(sample_weight):
            kind = np.asarray(sample_weight).dtype.kind
            if kind not in "biuf":  # strings would be parsed into numbers silently
                raise TypeError(f"sample_weight must hold numbers, got dtype {np.asarray(sample_weight).dtype}.")
        weights = _check_sample_weight(sample_weight, y_encoded, dtype=np.float64, ensure_non_negative=True)
        class_weight = self.class_weight
        if isinstance(class_weight, dict):
            labels = self.classes_.tolist()
            unknown = [label for label in class_weight if label not in labels]
            if unknown:
                raise ValueError(f"class_weight names labels {unknown} that are not in y; the classes are {labels}.")
            if not all(value >= 0 for value in class_weight.values()):
                raise ValueError(f"class_weight must be non-negative, got {class_weight!r}.")
            class_weight = {labels.index(label): value for label, value in class_weight.items()}
        if class_weight is not None:
            weights = weights * compute_sample_weight(class_weight, y_encoded)
        if not weights.sum() > 0:
            raise ValueError("sample_weight (times class_weight) is zero for every sample: nothing to learn from.")
        if not np.isfinite(weights).all() or not np.isfinite(weights.sum()):
            raise ValueError("sample_weight (times class_weight) must be finite and sum to a finite number.")
        return (weights / weights.mean()).astype(np.float32)

    def _prepare_fit(self, arrays, seed, labeled=None, y_encoded=None, weights=None):
        """Hook: fit-time work before the network is built (e.g. fitting a recoverer).

        ``labeled`` indexes the labeled rows of ``arrays`` (None: every row is labeled);
        ``y_encoded`` and ``weights`` (or None) belong to those rows.
        Returns the dict the network trains on: the labeled rows of ``arrays``, possibly with
        extra entries that the network's training ``forward`` reads.
        """
        return arrays if labeled is None else {name: array[labeled] for name, array in arrays.items()}

    def _train_split(self, y_encoded, seed):
        """skorch's stratified validation split, or None when there is none."""
        if not self._use_validation(y_encoded):
            return None
        return ValidSplit(self.validation_fraction, stratified=True, random_state=seed)

    def _build_net(self, specs, train_split, device, seed, input_scaling=None):
        """Hook: the skorch net to train (see ``_training.build_net``), seeded with ``seed``;
        ``input_scaling`` (per modality (shift, scale), or None) goes to :meth:`_module_kwargs`."""
        raise NotImplementedError

    def _after_fit(self, arrays, present, y_encoded, seed, weights=None):
        """Hook: fitted state derived from the trained network (``weights``: per sample, or None)."""

    def _module_kwargs(self, specs=None, input_scaling=None):
        """Keyword arguments shared by the networks: modalities, encoders, input scaling and size.

        With ``standardize`` and no ``input_scaling`` (loading a saved model) the network gets
        identity statistics of the right shapes, which the saved state then overwrites."""
        return dict(
            modality_names=self.modalities_, modality_shapes=list(self.modality_shapes_.values()),
            encoder_specs=self._encoder_specs(self.modalities_) if specs is None else specs,
            n_classes=len(self.classes_), d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers,
            dropout=self.dropout, standardize_inputs=bool(self.standardize), input_scaling=input_scaling,
        )

    def _training_kwargs(self, train_split, device, seed):
        """Keyword arguments of ``build_net`` that every estimator sets the same way."""
        # Plain Python numbers: torch's samplers refuse numpy integers such as np.int64(64).
        return dict(train_split=train_split, patience=int(self.patience),
                    max_epochs=int(self.max_epochs), batch_size=int(self.batch_size), lr=float(self.lr), weight_decay=float(self.weight_decay),
                    device=device, random_seed=seed, verbose=int(self.verbose))

    # --------------------------------------------------------------- predict
    def _check_predict_params(self):
        """Validate the parameters read at predict time (they may change after fit); extend it."""
        constraints = {"predict_batch_size": self._parameter_constraints["predict_batch_size"]}
        validate_parameter_constraints(constraints, {"predict_batch_size": self.predict_batch_size},
                                       caller_name=type(self).__name__)
        _refuse_booleans(self, constraints)

    def _prediction_context(self, module, device, **options):
        """Hook: what every batch of one prediction needs (e.g. statistics on the device)."""
        return device

    def _predict_batch(self, module, context, rows, batch, outputs):
        """Hook: dict of the tensors named in ``outputs`` for the samples ``rows`` (a slice),
        whose NaN-marked arrays are ``batch``."""
        raise NotImplementedError

    def _validated(self, X):
        """Validated arrays of a fitted estimator, with at least one observed entry per sample."""
        check_is_fitted(self)
        self._check_predict_params()
        arrays = self._modalities(X, reset=False)
        present, _ = observed_modalities(arrays)
        check_some_modality_observed(present, self.modalities_)
        return arrays

    def _predict_arrays(self, arrays, outputs=("logits",), **options):
        """Run :meth:`_predict_batch` over batches of ``predict_batch_size``; numpy arrays by name.

        Memory stays bounded by the batch size whatever the number of samples.
        """
        module = self.net_.module_.eval()
        device = self.net_.device
        context = self._prediction_context(module, device, **options)
        n_samples = next(iter(arrays.values())).shape[0]
        collected = {key: [] for key in outputs}
        starts = range(0, n_samples, self.predict_batch_size)
        if self.verbose and len(starts) > 1:
            starts = tqdm(starts, desc=f"{type(self).__name__} predict", unit="batch", leave=False,
                          disable=not is_terminal(sys.stderr))  # no redrawn bar in a log file
        with torch.inference_mode():
            for start in starts:
                rows = slice(start, start + self.predict_batch_size)
                found = self._predict_batch(module, context, rows, {name: a[rows] for name, a in arrays.items()}, outputs)
                for key in outputs:
                    collected[key].append(found[key].cpu())
        return {key: torch.cat(values).numpy() for key, values in collected.items()}

    def _logits(self, X):
        arrays = self._validated(X)
        logits = check_finite_outputs(self._predict_arrays(arrays)["logits"].astype(np.float64), arrays)
        return self._output_logits(logits, arrays)

    def _output_logits(self, logits, arrays):
        """Hook: the logits that predict, predict_proba and decision_function report."""
        return logits

    def decision_function(self, X):
        """Confidence scores: the classifier's logits.

        Returns
        -------
        ndarray of shape (n_samples,) for two classes (the logit of ``classes_[1]`` minus that
        of ``classes_[0]``, positive where ``classes_[1]`` is predicted, as scikit-learn expects),
        else (n_samples, n_classes).
        """
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
            A modality absent from a dict is missing for every sample.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return softmax(self._logits(X), axis=1)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed without underflow."""
        return log_softmax(self._logits(X), axis=1)

    def predict(self, X):
        """Predicted class labels."""
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    # ----------------------------------------------------------- persistence
    def save(self, path):
        """Save the fitted model to the directory ``path`` in a format that runs no code on load.

        JSON config, safetensors weights, numpy arrays (no pickle) and, for DyMo, the recoverer
        through skops with only scikit-learn and numpy types trusted. Read it back with
        :meth:`load`.
        """
        from ._persistence import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path, *, device=None, encoders=None):
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or Path
        device : {"auto", "cpu", "cuda"}, optional
            Where to put the network; default: the saved ``device`` parameter. "cuda" raises
            where CUDA is absent: pass ``device="cpu"`` to load a GPU model on a CPU.
        encoders : dict, optional
            The same custom encoder factories the model was fitted with, if any.
        """
        from ._persistence import load_model

        return load_model(cls, path, device=device, encoders=encoders)


def labeled_rows(y):
    """Indices of the rows whose label is not -1, or None when every row is labeled.

    -1 marks an unlabeled row, as in ``sklearn.semi_supervised``: in numeric labels, and in
    object arrays (strings with -1 for the unlabeled rows). A string array has no unlabeled rows.
    """
    if y.dtype.kind in "iuf":
        unlabeled = y == -1
    elif y.dtype.kind == "O":
        unlabeled = np.array([isinstance(v, Real) and not isinstance(v, (bool, np.bool_)) and v == -1 for v in y],
                             dtype=bool)
    else:
        if y.dtype.kind in "US" and (y == y.dtype.type("-1")).any():
            raise ValueError("y is an array of strings holding '-1': mark unlabeled rows with the number -1 in an "
                             "object array (np.asarray(labels, dtype=object)), or rename a class called '-1'.")
        return None
    if not unlabeled.any():
        return None
    if unlabeled.all():
        raise ValueError("Every row of y is -1, which marks an unlabeled row: there is nothing to learn "
                         "the classes from.")
    return np.flatnonzero(~unlabeled)


def _labeled_weights(sample_weight, labeled, n_samples):
    """``sample_weight`` of the labeled rows; unlabeled rows carry no loss to weigh."""
    if labeled is None or sample_weight is None or np.isscalar(sample_weight):
        return sample_weight
    sample_weight = np.asarray(sample_weight)
    if sample_weight.ndim != 1 or len(sample_weight) != n_samples:
        raise ValueError(f"sample_weight has shape {sample_weight.shape}; expected ({n_samples},), one weight "
                         "per row of X, unlabeled rows included.")
    return sample_weight[labeled]
