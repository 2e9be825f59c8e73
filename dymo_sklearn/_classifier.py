"""DyMoClassifier: recover missing modalities, then select per sample which ones to use."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_parameter_constraints

from ._base import SHARED_PARAMETER_CONSTRAINTS, MultimodalClassifier, _refuse_booleans, check_finite_outputs
from ._devices import to_device
from ._calibration import calibrate_threshold
from ._explanation import explanation_frame
from ._input import observed_modalities
from ._prototypes import (
    SubsetStatistics,
    choose_subsets,
    encoded_batches,
    fit_subset_statistics,
    subset_codes,
    warn_about_small_classes,
)
from ._selection import REWARDS, SELECTIONS, CandidateFusion, select
from ._training import PrototypeTracker, SubsetSamplingNet, build_net
from .nn.distances import DISTANCES
from .nn.network import HIDDEN, RECOVERED, SUBSET_SAMPLINGS, DyMoNetwork
from .recovery import KNNRecoverer, fit_recoverer, recover
from .recovery._cross_fit import cross_fitted_recoveries


class DyMoClassifier(MultimodalClassifier):
    """Incomplete multimodal classifier with inference-time dynamic modality selection (DyMo).

    Missing modalities (all entries NaN) and missing entries (some NaN) are recovered by
    ``recoverer``; then, per sample, recovered modalities are added one at a time while a
    prototype-based reward says they add task-relevant information (Du et al., ICLR 2026).
    Training fuses random modality subsets through a masked transformer, with a prototype loss.

    Parameters
    ----------
    recoverer : scikit-learn imputer or None, default=None
        Fills missing entries from the flattened, concatenated modalities; cloned into
        ``recoverer_`` at fit. None means ``KNNRecoverer(n_neighbors=5)`` (``KNNImputer``'s
        result, computed with torch on ``device``): it recovers a missing
        modality from training samples that resemble the observed ones, so a recovery tends to
        carry class information (mean imputation never does), it needs no model of the data and
        works for images and tables alike. ``IterativeImputer`` is often better on small tables
        but scales poorly with the number of columns. Observed entries are never changed.
    selection : {"dymo", "iterative", "simultaneous", "all", "none"}, default="dymo"
        The paper's Table 2 ablation: ``dymo`` (I+C): iterative selection with the calibrated
        reward; ``iterative`` (I): uncalibrated; ``simultaneous`` (S): accept every candidate with
        a positive uncalibrated reward at once;
        ``all``: fuse every recovered modality; ``none``: observed entries only (discard).
        Read at predict time, so it can be changed after fitting with ``set_params``.
    reward : {"log", "prob"}, default="log"
        ``log``: log-confidence gain plus a non-positive log-ICS penalty (the paper's intent);
        ``prob``: the authors' code, confidence gain scaled by an ICS ratio. Read at predict time.
    distance : {"cosine", "sqeuclidean"}, default="cosine"
        Distance between projected representations and prototypes.
    temperature : float, default=0.1
        Temperature of the prototype softmax, in the loss and in the reward.
    acceptance_threshold : float or "auto", default=0.0
        A candidate is accepted only if its reward exceeds this; 0 is the paper's rule and the
        benchmarked default (with recovery-aware training never more than 0.2 points below
        discarding with mean, iterative, KNN or multimodal-VAE recovery, see docs/dilemma.md; with the paper's
        training and mean imputation of images 1.0–4.7 points below at η = 0.8, docs/benchmarks.md).
        "auto" holds out ``calibration_fraction`` of the training samples (also used for early
        stopping), hides modalities of theirs at random, recovers them with a recoverer fitted
        without them, and scores thresholds from -inf (accept all) through reward quantiles and
        0 to +inf (accept none); the paper's 0 is kept unless another is more accurate there by
        more than one standard error. The recoverer is then refitted on all samples. Measured,
        it rarely moves and the network's smaller training set costs more than it gains, so it
        is not the default. Read at predict time: a number set after fitting is used as is.
    calibration_fraction : float, default=0.2
        Held-out share of the training samples when ``acceptance_threshold="auto"``.
    recovery_aware : bool, default=True
        Recovery-aware training (beyond the paper; False is the paper's training, under which
        the fitted network does not depend on the recoverer): each training sample also hides
        some of its modalities (k of its m present ones, k uniform in 1 .. m - 1), has them
        recovered by a clone of ``recoverer`` fitted on the other half of the training data
        (cross-fitting, so the recoveries are as wrong as on new samples), and is fused in one
        extra pass per minibatch with each recovered modality taken with probability 1/2. A
        learned per-modality embedding marks recovered tokens, in training and at prediction,
        so the network learns how far to trust each recovered modality. Costs two more
        recoverer fits, one recovery of the training data, two more copies of it in memory and
        one more fusion pass per minibatch (1.3-1.9x the fit time with the default recoverer in
        docs/dilemma.md).
    encoders : dict of str to {"vector", "image", "sequence"} or callable, default=None
        Encoder of each modality; unlisted ones are inferred from the shape ((C, H, W) with
        C <= 4 and H, W >= 4 is an image, anything else is flattened). "sequence" runs temporal
        convolutions over a (channels, time) recording (docs/sequences.md). A callable
        ``f(input_shape, d_model)`` returns a module mapping ``(values, observed)`` to
        ``(batch, tokens, d_model)``.
    column_groups : dict of str to list of int or str, default=None
        For 2-D input: the columns of each tabular modality. None: one modality ``"x"``.
    standardize : bool, default=True
        Standardise each modality inside the network with the mean and standard deviation of
        its observed training entries: per channel for images and sequences, per entry otherwise
        (a feature that does not vary is only shifted; a custom encoder factory gets its values
        as given). Recovered values pass through the same transform;
        a missing entry enters the encoder as 0, the training mean. False feeds values as given.
    d_model, n_heads, n_layers, projection_dim, dropout : network size
        Token width, attention heads, transformer blocks, width of the prototype space, dropout.
    n_subsets : int, default=8
        Random modality subsets fused per training batch. More subsets train each missing
        pattern more often, at a higher cost per epoch. 8 rather than the paper's 4, as measured
        in docs/dilemma.md (every recoverer) and docs/n_subsets.md.
    subset_sampling : {"uniform", "by_size"}, default="uniform"
        How those subsets are drawn. ``uniform``: the paper's, ``min(n_subsets, 2^M - 1)``
        distinct subsets per batch, uniform over the non-empty ones and shared by its samples
        (then intersected with what each sample has). ``by_size``: ``n_subsets`` passes, in each
        of which every sample draws a size k uniform in 1..(modalities it has), then k of them
        uniformly; each size is equally likely for every sample. Measured in
        docs/subset_sampling.md (it loses on Fashion-MNIST); not the default.
    aux_weight : float, default=1.0
        Weight of the prototype loss; ``aux_warmup`` epochs pass before it starts.
    aux_warmup : int, default=2
    entry_dropout : float, default=0.2
        During training each sample hides a random fraction U(0, entry_dropout) of its observed
        entries, so the encoders learn partially observed inputs.
    max_subsets : int, default=256
        Most subsets whose prototypes and ICS statistics are fitted (all 2^M - 1 when they fit).
    max_epochs, batch_size, lr, weight_decay : training (AdamW)
        ``max_epochs=100`` with ``patience=10`` was measured against 50 / 5 in
        docs/training_length.md and docs/dilemma.md.
    early_stopping : bool or "auto", default="auto"
        Hold out a stratified ``validation_fraction`` and stop after ``patience`` epochs without
        improvement, restoring the best weights. "auto": on when there are at least 500 samples.
    validation_fraction : float, default=0.1
    patience : int, default=10
    early_stopping_monitor : {"valid_loss", "valid_acc_subsets", "valid_loss_subsets"}, default="valid_loss"
        What early stopping watches: the cross-entropy of everything each held-out sample
        observes, or the accuracy or the cross-entropy on a random sub-pattern of it (the same
        every epoch), closer to the missing modalities met at prediction. Measured in
        docs/early_stopping.md: the accuracy stops after 29-49 epochs and DyMo loses 4.3 (digits)
        and 5.8 (MNIST) points at η = 0.8; the sub-pattern cross-entropy
        (docs/early_stopping_loss.md) stops after 44-89 epochs and loses at every η, 1.8 (digits)
        and 0.9 (MNIST) at η = 0.8. So the loss of everything observed is the default.
    predict_batch_size : int, default=1024
        Samples per batch at predict time; memory stays bounded whatever the input size.
    device : {"auto", "cpu", "cuda"}, default="auto"
    class_weight : dict, "balanced" or None, default=None
        Weight of each class (keyed by label), multiplied into ``sample_weight`` at fit;
        "balanced" weighs classes inversely to their frequency, ``n_samples / (n_classes *
        count)``, as in scikit-learn. None: every class weighs 1.
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
        When positive, skorch's epoch table: ``train_ce`` (classification loss),
        ``train_prototype_loss`` (0 for the first ``aux_warmup`` epochs), ``train_loss`` (their
        sum, the prototype term times ``aux_weight``: it jumps when that term starts),
        with a validation split ``valid_loss`` (cross-entropy), ``valid_acc`` (everything
        present fused), ``valid_acc_subsets`` and ``valid_loss_subsets`` (accuracy and
        cross-entropy of a random subset of each sample's present modalities, the same every
        epoch), and a line naming the restored epoch when early
        stopping fires. On a terminal also colour for the best values and progress bars (for
        training and for the batches of a long prediction); never in a log file.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    modalities_ : list of str
    modality_shapes_ : dict of str to tuple
    recoverer_ : fitted imputer
    net_ : skorch.NeuralNet holding the trained ``DyMoNetwork``
    prototypes_ : ndarray of shape (n_classes, projection_dim)
        Overall class prototypes (mean over subsets); the last row of ``subset_prototypes_``.
    subset_codes_ : ndarray of int64, shape (n_fitted_subsets,)
        Fitted subsets as bit masks (bit m = ``modalities_[m]``).
    subset_prototypes_ : ndarray of shape (n_fitted_subsets + 1, n_classes, projection_dim)
        c_{s,k}; the last row, the overall prototypes, is the fallback for subsets not fitted.
    ics_sigma_ : ndarray of shape (n_fitted_subsets + 1, n_classes)
        Half-normal scale sigma_{s,k} of distances to c_{s,k}; last row pooled.
    acceptance_threshold_ : float
        The threshold in use when ``acceptance_threshold="auto"`` (0.0 when the training data
        are too small to hold out a stratified part).
    calibration_accuracy_ : dict of float to float
        Held-out accuracy of each threshold tried (only when one was fitted).

    Examples
    --------
    >>> from sklearn.impute import SimpleImputer
    >>> clf = DyMoClassifier(recoverer=SimpleImputer(), max_epochs=2, random_state=0)
    >>> clf.fit({"a": X_a, "b": X_b}, y).predict({"a": X_a})  # doctest: +SKIP
    """

    _parameter_constraints = {
        **SHARED_PARAMETER_CONSTRAINTS,
        "recoverer": [HasMethods(["fit", "transform"]), None],
        "selection": [StrOptions(set(SELECTIONS))],
        "reward": [StrOptions(set(REWARDS))],
        "distance": [StrOptions(set(DISTANCES))],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "acceptance_threshold": [Real, StrOptions({"auto"})],
        "calibration_fraction": [Interval(Real, 0, 1, closed="neither")],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "n_subsets": [Interval(Integral, 1, None, closed="left")],
        "subset_sampling": [StrOptions(set(SUBSET_SAMPLINGS))],
        "aux_weight": [Interval(Real, 0, None, closed="left")],
        "aux_warmup": [Interval(Integral, 0, None, closed="left")],
        "entry_dropout": [Interval(Real, 0, 1, closed="left")],
        "max_subsets": [Interval(Integral, 1, None, closed="left")],
        "recovery_aware": ["boolean"],
    }

    def __init__(
        self,
        recoverer=None,
        *,
        selection="dymo",
        reward="log",
        distance="cosine",
        temperature=0.1,
        acceptance_threshold=0.0,
        calibration_fraction=0.2,
        recovery_aware=True,
        encoders=None,
        column_groups=None,
        standardize=True,
        d_model=64,
        n_heads=4,
        n_layers=2,
        projection_dim=32,
        dropout=0.1,
        n_subsets=8,
        subset_sampling="uniform",
        aux_weight=1.0,
        aux_warmup=2,
        entry_dropout=0.2,
        max_subsets=256,
        max_epochs=100,
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-4,
        early_stopping="auto",
        validation_fraction=0.1,
        patience=10,
        early_stopping_monitor="valid_loss",
        predict_batch_size=1024,
        device="auto",
        class_weight=None,
        random_state=None,
        verbose=0,
    ):
        self.recoverer = recoverer
        self.selection = selection
        self.reward = reward
        self.distance = distance
        self.temperature = temperature
        self.acceptance_threshold = acceptance_threshold
        self.calibration_fraction = calibration_fraction
        self.recovery_aware = recovery_aware
        self.encoders = encoders
        self.column_groups = column_groups
        self.standardize = standardize
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.n_subsets = n_subsets
        self.subset_sampling = subset_sampling
        self.aux_weight = aux_weight
        self.aux_warmup = aux_warmup
        self.entry_dropout = entry_dropout
        self.max_subsets = max_subsets
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.early_stopping_monitor = early_stopping_monitor
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Fit the recoverer, train the network, and fit prototypes and ICS statistics.

        Parameters
        ----------
        X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
            Modalities of shape (n_samples, ...); NaN marks missing entries.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-sample weights, multiplied by ``class_weight`` and rescaled to mean
            1: they weigh the losses, the prototypes and the subset statistics (prototypes and
            ICS scales are weighted means). The recoverer is fitted unweighted, and with
            ``acceptance_threshold="auto"`` the threshold maximises plain accuracy on the
            held-out rows.

        Returns
        -------
        self : DyMoClassifier
        """
        return super().fit(X, y, sample_weight=sample_weight)

    _saved_arrays = ("subset_codes_", "subset_prototypes_", "ics_sigma_")
    _parameters_added_later = {"recovery_aware": False, "class_weight": None, "standardize": False,
                               "subset_sampling": "uniform", "early_stopping_monitor": "valid_loss"}
    _saved_scalars = ("acceptance_threshold_",)
    _saved_estimator = ("recoverer", "recoverer_")

    @property
    def prototypes_(self):
        """Overall class prototypes (n_classes, projection_dim): the pooled row of ``subset_prototypes_``."""
        return self.subset_prototypes_[-1]

    def _recoverer(self):
        if self.recoverer is not None:
            return self.recoverer
        # "auto", not "cuda": a model fitted on a GPU must still recover after loading on a CPU.
        return KNNRecoverer(n_neighbors=5, device="cpu" if self.device == "cpu" else "auto")

    def _held_out_rows(self, y_encoded, seed):
        """With ``acceptance_threshold="auto"``, a stratified part held out to fit the threshold."""
        rows = np.arange(len(y_encoded))
        if self.acceptance_threshold != "auto" or not self._stratifiable(y_encoded, self.calibration_fraction):
            return rows, None
        fit_rows, held_out_rows = train_test_split(
            rows, test_size=self.calibration_fraction, stratify=y_encoded, random_state=seed)
        return np.sort(fit_rows), np.sort(held_out_rows)

    def _prepare_fit(self, fit_arrays, seed):
        self.recoverer_ = fit_recoverer(self._recoverer(), fit_arrays)
        if not self.recovery_aware:
            return fit_arrays
        hidden, recovered = cross_fitted_recoveries(self._recoverer(), fit_arrays, _RECOVERY_FOLDS,
                                                    np.random.default_rng(seed))
        return {**fit_arrays, **{f"{HIDDEN}{name}": array for name, array in hidden.items()},
                **{f"{RECOVERED}{name}": array for name, array in recovered.items()}}

    def _build_net(self, specs, train_split, device, seed, input_scaling=None):
        module_kwargs = {**self._module_kwargs(specs, input_scaling), "projection_dim": self.projection_dim,
                         "n_subsets": self.n_subsets, "subset_sampling": self.subset_sampling,
                         "entry_dropout": self.entry_dropout,
                         "recovered_embedding": bool(self.recovery_aware)}
        tracker = PrototypeTracker(len(self.classes_), self.distance, self.aux_warmup)
        return build_net(SubsetSamplingNet, DyMoNetwork, module_kwargs, callbacks=[("prototypes", tracker)],
                         distance=self.distance, temperature=self.temperature, aux_weight=self.aux_weight,
                         **self._training_kwargs(train_split, device, seed))

    def _after_fit(self, arrays, present, y_encoded, fit_rows, held_out_rows, seed, weights=None):
        self._fit_statistics({name: array[fit_rows] for name, array in arrays.items()}, present[fit_rows],
                             y_encoded[fit_rows], seed, None if weights is None else weights[fit_rows])
        if held_out_rows is None:
            self.acceptance_threshold_ = 0.0 if self.acceptance_threshold == "auto" else self.acceptance_threshold
            self.__dict__.pop("calibration_accuracy_", None)  # from an earlier fit with a held-out part
            return
        # Calibrate with the recoverer that never saw the held-out rows, then refit it on all.
        held_out = {name: array[held_out_rows] for name, array in arrays.items()}
        self.acceptance_threshold_, self.calibration_accuracy_ = calibrate_threshold(
            self, held_out, y_encoded[held_out_rows], np.random.default_rng(seed))
        self.recoverer_ = fit_recoverer(self._recoverer(), arrays)

    def _fit_statistics(self, arrays, present, y_encoded, seed, weights=None):
        warn_about_small_classes(y_encoded, weights, self.classes_)
        network = self.net_.module_.eval()
        codes = choose_subsets(len(self.modalities_), self.max_subsets,
                               subset_codes(torch.as_tensor(present)).numpy(), seed)
        batches = encoded_batches(network, arrays, y_encoded, weights, self.predict_batch_size, self.net_.device)
        statistics = fit_subset_statistics(network, batches, len(self.classes_), codes, self.distance)
        self.subset_codes_ = statistics.codes
        self.subset_prototypes_ = statistics.subset_prototypes
        self.ics_sigma_ = statistics.sigma

    # ------------------------------------------------------------- inference
    def _threshold(self):
        return self.acceptance_threshold_ if self.acceptance_threshold == "auto" else self.acceptance_threshold

    def _check_predict_params(self):
        super()._check_predict_params()
        constraints = {name: self._parameter_constraints[name] for name in _PREDICT_TIME_PARAMETERS}
        validate_parameter_constraints(constraints, {name: getattr(self, name) for name in _PREDICT_TIME_PARAMETERS},
                                       caller_name=type(self).__name__)
        _refuse_booleans(self, constraints)
        if self.distance != self.net_.distance:
            raise ValueError(
                f"distance was changed to {self.distance!r} after fitting with {self.net_.distance!r}; the "
                "prototypes and ICS statistics belong to the fitted distance: refit, or set it back.")

    def _prediction_context(self, module, device, recovered=None, thresholds=None, selection=None):
        """One prediction's settings: statistics on the device, the runs to make on each batch.

        ``thresholds`` runs the selection once per threshold on the same encodings (their logits
        come out as ``threshold_logits``); the ``none`` mode's logits are ``logits_observed_only``.
        """
        statistics = SubsetStatistics(
            self.subset_codes_, self.subset_prototypes_, self.ics_sigma_, self.subset_prototypes_[-1]).to_torch(device)
        return _Context(statistics=statistics, recovered=recovered, selection=selection or self.selection,
                        thresholds=tuple(thresholds) if thresholds is not None else (self._threshold(),),
                        device=device)

    def _predict_batch(self, module, context, rows, batch, outputs):
        device = context.device
        inputs = to_device(batch, device)
        recovered = None
        if context.selection != "none":  # "none" uses nothing recovered: never call the recoverer
            recovered_arrays = ({name: array[rows] for name, array in context.recovered.items()}
                                if context.recovered is not None else recover(self.recoverer_, batch))
            recovered = to_device(recovered_arrays, device)
        fusion = CandidateFusion(module, *module.encode_versions(inputs, recovered))
        run = functools.partial(select, fusion, context.statistics, reward_form=self.reward,
                                distance=self.distance, temperature=self.temperature)
        results = [run(selection=context.selection, threshold=threshold) for threshold in context.thresholds]
        result = results[0]
        found = {
            "logits": lambda: module.heads(result.hidden)[0].float(),
            "threshold_logits": lambda: torch.stack([module.heads(r.hidden)[0].float() for r in results], dim=1),
            "logits_observed_only": lambda: (
                module.heads(run(selection="none").hidden)[0].float() if context.selection != "none"
                else module.heads(result.hidden)[0].float()),
            "selected": lambda: result.selected, "order": lambda: result.order,
            "rewards": lambda: result.rewards.float(), "evaluations": lambda: result.evaluations,
            "candidates": lambda: fusion.candidates,
        }
        return {key: found[key]() for key in outputs}

    def _run(self, X, selection=None):
        """Every per-sample selection output for ``X``, as numpy arrays (``selection`` overrides)."""
        return self._predict_arrays(self._validated(X), _SELECTION_OUTPUTS, selection=selection)

    def explain(self, X):
        """Which recovered modalities each sample used, in which order, with their rewards.

        Runs batch by batch, each batch recovered and encoded once for both the selection and
        the observed-only prediction, so memory stays bounded by ``predict_batch_size``.

        Returns
        -------
        pandas.DataFrame, one row per sample, with columns
            ``observed`` (modalities with observed entries), ``candidates`` (modalities with a
            recovered part), ``selected`` (accepted candidates in acceptance order),
            ``reward_<m>`` (reward of candidate m when last evaluated; NaN if never evaluated),
            ``step_<m>`` (1-based step at which m was accepted, 0 if not), ``prediction`` and
            ``prediction_observed_only`` (the ``none`` mode's prediction).
        """
        arrays = self._validated(X)
        run = self._predict_arrays(arrays, (*_SELECTION_OUTPUTS, "logits_observed_only"))
        for key in ("logits", "logits_observed_only"):
            check_finite_outputs(run[key], arrays)
        present, _ = observed_modalities(arrays)
        return explanation_frame(run, present, self.modalities_, self.classes_)


_RECOVERY_FOLDS = 2
_PREDICT_TIME_PARAMETERS = ("selection", "reward", "distance", "temperature", "acceptance_threshold")
_SELECTION_OUTPUTS = ("logits", "selected", "order", "rewards", "evaluations", "candidates")


@dataclass
class _Context:
    statistics: object
    recovered: dict | None
    selection: str
    thresholds: tuple
    device: object

