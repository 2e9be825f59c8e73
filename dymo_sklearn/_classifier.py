"""DyMoClassifier: recover missing modalities, then select per sample which ones to use."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import log_softmax
from skorch.callbacks import Callback
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_parameter_constraints

from ._base import SHARED_PARAMETER_CONSTRAINTS, MultimodalClassifier, _refuse_booleans, check_finite_outputs
from ._devices import to_device
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
from ._selection import CandidateFusion, select
from ._teachers import TEACHER, distillation_loss, fit_teachers, teacher_log_proba
from ._training import SeededNet, SubPatternValidation, batch_weights, build_net, weighted_loss
from .nn.distances import prototype_log_probabilities
from .nn.dymo import HIDDEN, MAX_ENUMERATED_MODALITIES, RECOVERED, DyMoNetwork
from .recovery import KNNRecoverer, fit_recoverer, recover
from .recovery._cross_fit import cross_fitted_recoveries

# The modes a user picks from; the paper's "iterative" and "simultaneous" ablations are in
# dymo_sklearn.experimental.
USER_SELECTIONS = ("dymo", "all", "none")


class DyMoClassifier(MultimodalClassifier):
    """Incomplete multimodal classifier with inference-time dynamic modality selection (DyMo).

    Missing modalities (all entries NaN) and missing entries (some NaN) are recovered by
    ``recoverer``; then, per sample, recovered modalities are added one at a time while a
    prototype-based reward says they add task-relevant information (Du et al., ICLR 2026).
    Training fuses every modality alone and random larger subsets through a masked transformer,
    with a prototype loss, plus one pass on recoveries made out of fold, so the network learns how
    far to trust them. Each table (vector) modality also learns from a teacher: an RBF SVC fitted
    on that modality alone, whose cross-fitted probabilities the passes fusing only tables are
    distilled towards, so the network is as good on one table as a tuned classical model.
    The research options (the paper's ablations, its training, reward forms) are parameters of
    :class:`dymo_sklearn.experimental.DyMoResearchClassifier`.

    Parameters
    ----------
    recoverer : scikit-learn imputer or None, default=None
        Fills missing entries from the flattened, concatenated modalities; cloned into
        ``recoverer_`` at fit. None means ``KNNRecoverer(n_neighbors=5)`` (``KNNImputer``'s
        result, computed with torch on ``device``): it recovers a missing modality from training
        samples that resemble the observed ones, needs no model of the data and works for images
        and tables alike. ``IterativeImputer`` suits small tables but scales poorly with the
        number of columns. Observed entries are never changed. A recoverer fitted beforehand
        (on a larger or unlabeled pool) is used as it is when wrapped in
        ``sklearn.frozen.FrozenEstimator``: then it also recovers the training rows of the
        recovery-aware pass, which is honest only if it was fitted on other rows than these.
    selection : {"dymo", "all", "none"}, default="dymo"
        ``dymo``: add recovered modalities one at a time while the calibrated reward is above
        ``acceptance_threshold`` (Algorithm 1); ``all``: fuse every recovered modality;
        ``none``: observed entries only (discard). Read at predict time, so it can be changed
        after fitting with ``set_params`` to compare the three on the same model.
    temperature : float, default=0.1
        Temperature of the prototype softmax, in the training loss and in the reward.
    acceptance_threshold : float, default=0.0
        A candidate is accepted only if its reward exceeds this; 0 is the paper's rule. Higher
        values accept fewer recoveries. Read at predict time.
    encoders : dict of str to {"vector", "image", "sequence"} or callable, default=None
        Encoder of each modality; unlisted ones are inferred from the shape ((C, H, W) with
        C <= 4 and H, W >= 4 is an image, anything else is flattened). "sequence" runs temporal
        convolutions over a (channels, time) recording. A callable ``f(input_shape, d_model)``
        returns a module mapping ``(values, observed)`` to ``(batch, tokens, d_model)``.
    column_groups : dict of str to list of int or str, default=None
        For 2-D input: the columns of each tabular modality. None: one modality ``"x"``.
    standardize : bool, default=True
        Standardise each modality inside the network with the mean and standard deviation of
        its observed training entries: per channel for images and sequences, per entry otherwise
        (a custom encoder factory gets its values as given). Recovered values pass through the
        same transform; a missing entry enters the encoder as 0, the training mean. False feeds
        values as given.
    d_model, n_heads, n_layers, projection_dim, dropout : network size
        Token width, attention heads, transformer blocks, width of the prototype space, dropout.
    n_subsets : int or "auto", default="auto"
        Distinct random subsets of two or more modalities fused per training batch, beside the
        M modalities each fused alone; at most 2^M - 1 - M (a larger value is capped, with a
        warning). "auto" makes 8 passes in all where the subsets allow: max(8 - M, 1) random
        subsets, capped. More subsets train each missing pattern more often, at a higher cost
        per epoch. Beyond 20 modalities every pass is a random subset.
    max_epochs, batch_size, lr, weight_decay : training (AdamW)
    early_stopping : bool or "auto", default="auto"
        Hold out a stratified ``validation_fraction`` and stop after ``patience`` epochs without
        a lower validation loss, restoring the best weights. "auto": on from 500 samples.
    validation_fraction : float, default=0.1
    patience : int, default=10
    predict_batch_size : int, default=1024
        Samples per batch at predict time; memory stays bounded whatever the input size.
    device : {"auto", "cpu", "cuda"}, default="auto"
    class_weight : dict, "balanced" or None, default=None
        Weight of each class (keyed by label), multiplied into ``sample_weight`` at fit;
        "balanced" weighs classes inversely to their frequency, ``n_samples / (n_classes *
        count)``, as in scikit-learn.
    random_state : int, RandomState or None, default=None
        Seeds every random draw of the fit through local generators; the caller's global
        random state is never touched.
    verbose : int, default=0
        When positive, skorch's epoch table: ``train_ce`` (classification loss),
        ``train_prototype_loss`` (0 during the first epochs), ``train_loss`` (their sum), and
        with a validation split ``valid_loss`` (cross-entropy), ``valid_acc`` (everything
        present fused), ``valid_acc_subsets`` and ``valid_loss_subsets`` (a random subset of
        each sample's present modalities, the same every epoch); on a terminal also progress bars.

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

    See Also
    --------
    MARSClassifier : recovery-free mixture of experts on the same backbone.
    dymo_sklearn.experimental.DyMoResearchClassifier : the same model with its research options.

    Examples
    --------
    >>> from sklearn.impute import SimpleImputer
    >>> clf = DyMoClassifier(recoverer=SimpleImputer(), max_epochs=2, random_state=0)
    >>> clf.fit({"a": X_a, "b": X_b}, y).predict({"a": X_a})  # doctest: +SKIP
    """

    _parameter_constraints = {
        **SHARED_PARAMETER_CONSTRAINTS,
        "recoverer": [HasMethods(["fit", "transform"]), None],
        "selection": [StrOptions(set(USER_SELECTIONS))],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "acceptance_threshold": [Real],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "n_subsets": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    }

    # Research settings, fixed here at the benchmarked values; DyMoResearchClassifier makes
    # them parameters (see its docstring for what each does).
    reward = "log"
    distance = "cosine"
    recovery_aware = True
    aux_weight = 1.0
    aux_warmup = 2
    entry_dropout = 0.2
    max_subsets = 256
    single_passes = True
    teacher_weight = 1.0
    teacher_fusion = False

    def __init__(
        self,
        recoverer=None,
        *,
        selection="dymo",
        temperature=0.1,
        acceptance_threshold=0.0,
        encoders=None,
        column_groups=None,
        standardize=True,
        d_model=64,
        n_heads=4,
        n_layers=2,
        projection_dim=32,
        dropout=0.1,
        n_subsets="auto",
        max_epochs=100,
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-4,
        early_stopping="auto",
        validation_fraction=0.1,
        patience=10,
        predict_batch_size=1024,
        device="auto",
        class_weight=None,
        random_state=None,
        verbose=0,
    ):
        self.recoverer = recoverer
        self.selection = selection
        self.temperature = temperature
        self.acceptance_threshold = acceptance_threshold
        self.encoders = encoders
        self.column_groups = column_groups
        self.standardize = standardize
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.n_subsets = n_subsets
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Fit the recoverer, train the network, and fit prototypes and ICS statistics.

        Rows labelled -1 are unlabeled, as in ``sklearn.semi_supervised`` (with string labels,
        pass an object array holding -1 for them): they train the recoverer, its out-of-fold
        clones and the input standardisation, never the classification loss, the prototypes or
        the ICS statistics. Cross-validate with
        :class:`~dymo_sklearn.model_selection.SemiSupervisedSplit`, which keeps them out of
        every test set.

        Parameters
        ----------
        X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
            Modalities of shape (n_samples, ...); NaN marks missing entries.
        y : array-like of shape (n_samples,)
            Class labels; -1 marks an unlabeled row.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-sample weights, multiplied by ``class_weight`` and rescaled to mean
            1: they weigh the losses, the prototypes and the subset statistics (prototypes and
            ICS scales are weighted means). The recoverer is fitted unweighted.

        Returns
        -------
        self : DyMoClassifier
        """
        return super().fit(X, y, sample_weight=sample_weight)

    _saved_arrays = ("subset_codes_", "subset_prototypes_", "ics_sigma_")
    _saved_estimator = ("recoverer", "recoverer_")
    _reserved_prefixes = (HIDDEN, RECOVERED, TEACHER)

    @property
    def prototypes_(self):
        """Overall class prototypes (n_classes, projection_dim): the pooled row of ``subset_prototypes_``."""
        return self.subset_prototypes_[-1]

    def _recoverer(self):
        if self.recoverer is not None:
            return self.recoverer
        # "auto", not "cuda": a model fitted on a GPU must still recover after loading on a CPU.
        return KNNRecoverer(n_neighbors=5, device="cpu" if self.device == "cpu" else "auto")

    def _prepare_fit(self, arrays, seed, labeled=None, y_encoded=None, weights=None):
        # The recoverer learns from every row, labeled or not; the network from the labeled ones.
        self.recoverer_ = fit_recoverer(self._recoverer(), arrays)
        train = super()._prepare_fit(arrays, seed, labeled, y_encoded, weights)
        self.teachers_ = (fit_teachers(train, self._taught_modalities(), y_encoded, len(self.classes_), seed, weights)
                          if self.teacher_fusion else {})
        train = self._with_teacher_targets(train, y_encoded, seed, weights)
        if not self.recovery_aware:
            return train
        hidden, recovered = cross_fitted_recoveries(self._recoverer(), arrays, _RECOVERY_FOLDS,
                                                    np.random.default_rng(seed), rows=labeled)
        return {**train, **{f"{HIDDEN}{name}": array for name, array in hidden.items()},
                **{f"{RECOVERED}{name}": array for name, array in recovered.items()}}

    def _output_logits(self, logits, arrays):
        # Teacher fusion: late fusion of the observed vector modalities' teachers, by product.
        teachers = getattr(self, "teachers_", None)
        if not teachers:
            return logits
        return log_softmax(logits, axis=1) + teacher_log_proba(teachers, arrays, len(self.classes_))

    def _build_net(self, specs, train_split, device, seed, input_scaling=None):
        module_kwargs = {**self._module_kwargs(specs, input_scaling), "projection_dim": self.projection_dim,
                         "n_subsets": self._n_subsets(warn=specs is not None), "entry_dropout": self.entry_dropout,
                         "single_passes": bool(self.single_passes),
                         "recovered_embedding": bool(self.recovery_aware)}
        tracker = PrototypeTracker(len(self.classes_), self.distance, self.aux_warmup)
        return build_net(SubsetSamplingNet, DyMoNetwork, module_kwargs, callbacks=[("prototypes", tracker)],
                         distance=self.distance, temperature=self.temperature, aux_weight=self.aux_weight,
                         teacher_weight=float(self.teacher_weight), **self._training_kwargs(train_split, device, seed))

    def _n_subsets(self, warn):
        """Random subsets per batch: ``n_subsets`` capped at the 2^M - 1 there are, with a warning
        when capped at fit. With ``single_passes`` (research option) they are the subsets of two
        or more, 2^M - 1 - M, beside the M single modalities, and "auto" makes 8 passes in all."""
        n_modalities = len(self.modalities_)
        n_all = 2 ** n_modalities - 1 if n_modalities <= MAX_ENUMERATED_MODALITIES else None
        single = self.single_passes and n_all is not None
        n_drawn = n_all - n_modalities if single else n_all
        if self.n_subsets == "auto":
            if n_drawn is None:
                return _AUTO_SUBSETS
            return min(max(_AUTO_SUBSETS - n_modalities, 1) if single else _AUTO_SUBSETS, n_drawn)
        if warn and n_drawn is not None and self.n_subsets > n_drawn:
            drawn = "subsets of two or more of" if single else "non-empty subsets of"
            warnings.warn(f"n_subsets={self.n_subsets} exceeds the {n_drawn} {drawn} {n_modalities} modalities; "
                          f"each batch fuses all {n_drawn}.", UserWarning, stacklevel=5)
        return int(self.n_subsets)

    def _after_fit(self, arrays, present, y_encoded, seed, weights=None):
        self._fit_statistics(arrays, present, y_encoded, seed, weights)

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
    def _check_predict_params(self):
        super()._check_predict_params()
        constraints = {name: self._parameter_constraints[name] for name in _PREDICT_TIME_PARAMETERS
                       if name in self._parameter_constraints}
        validate_parameter_constraints(constraints, {name: getattr(self, name) for name in constraints},
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
                        thresholds=tuple(thresholds) if thresholds is not None else (self.acceptance_threshold,),
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
            ``observed`` (modalities with some observed entry), ``missing`` (modalities with
            no observed entry: wholly recovered), ``partial`` (observed modalities with some
            entries recovered), ``candidates`` (``missing`` and ``partial``: every modality with
            a recovered version), ``selected`` (accepted candidates in acceptance order; a
            partial modality not selected contributes its observed entries only),
            ``reward_<m>`` (reward of candidate m when last evaluated; NaN if never evaluated),
            ``step_<m>`` (1-based step at which m was accepted, 0 if not), ``prediction`` and
            ``prediction_observed_only`` (the ``none`` mode's prediction).

        Notes
        -----
        A candidate is accepted when its reward exceeds ``acceptance_threshold`` (0, the
        paper's rule): a reward of 1e-5 is a tiny but real gain in the prototype confidence.
        Raise the threshold to accept only clearer gains. The plotting functions label a
        missing pattern by its candidates, a ``*`` marking a partial one (``labs*``: the labs
        were measured, some of their entries recovered).
        """
        arrays = self._validated(X)
        run = self._predict_arrays(arrays, (*_SELECTION_OUTPUTS, "logits_observed_only"))
        for key in ("logits", "logits_observed_only"):
            check_finite_outputs(run[key], arrays)
        present, _ = observed_modalities(arrays)
        return explanation_frame(run, present, self.modalities_, self.classes_)


_RECOVERY_FOLDS = 2
_AUTO_SUBSETS = 8
_PREDICT_TIME_PARAMETERS = ("selection", "reward", "distance", "temperature", "acceptance_threshold")
_SELECTION_OUTPUTS = ("logits", "selected", "order", "rewards", "evaluations", "candidates")


@dataclass
class _Context:
    statistics: object
    recovered: dict | None
    selection: str
    thresholds: tuple
    device: object


class SubsetSamplingNet(SubPatternValidation, SeededNet):
    """skorch net whose module returns (logits, z) for A subset passes.

    Loss = mean cross-entropy over the passes + ``aux_weight`` * cross-entropy of the prototype
    softmax ``softmax_k(-d(z, c_k) / t)`` once the prototypes of a previous epoch exist
    + ``teacher_weight`` * the distillation term of :func:`~dymo_sklearn._teachers.distillation_loss`
    when the batch carries teachers, each sample's terms scaled by its weight when the batch
    carries ``SAMPLE_WEIGHT``. The validation loss is the cross-entropy alone.
    """

    epoch_scores = (("train_ce", True, True), ("train_prototype_loss", True, True), ("valid_acc", False, False),
                    ("valid_acc_subsets", False, False), ("valid_loss_subsets", True, False))

    def __init__(self, *args, distance="cosine", temperature=0.1, aux_weight=1.0, teacher_weight=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.distance = distance
        self.temperature = temperature
        self.aux_weight = aux_weight
        self.teacher_weight = teacher_weight

    def validation_outputs(self, module, tokens, present, subsets, labels, inputs):
        """The loss of everything present (the module's evaluation forward and ``get_loss``, as
        skorch's step computes it), its outputs, and the logits of everything present and of
        ``subsets``."""
        logits, z = module.heads(module.fuse(tokens, present))
        y_pred = (logits[None], z[None])
        subset_logits = module.heads(module.fuse(tokens, subsets))[0]
        return self.get_loss(y_pred, labels, X=inputs, training=False), y_pred, logits, subset_logits

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, z = y_pred[:2]
        n_passes = logits.shape[0]
        targets = y_true.to(logits.device).long().repeat(n_passes)
        weights = batch_weights(X, logits.device)
        loss = weighted_loss(F.cross_entropy, logits.reshape(-1, logits.shape[-1]), targets, weights)
        if not training:
            # Validation loss stays plain cross-entropy, so early stopping compares like with
            # like before and after the prototype term starts.
            return loss
        self.history.record_batch("train_ce", loss.item())
        module = self.module_
        prototype_loss = torch.zeros((), device=loss.device)
        if module.aux_active and self.aux_weight > 0:
            log_p = prototype_log_probabilities(
                z.reshape(-1, z.shape[-1]), module.prototypes, self.distance, self.temperature
            )
            prototype_loss = weighted_loss(F.nll_loss, log_p, targets, weights)
            loss = loss + self.aux_weight * prototype_loss
        self.history.record_batch("train_prototype_loss", prototype_loss.item())
        if self.teacher_weight > 0 and len(y_pred) > 2:
            passes = y_pred[2]
            distillation = distillation_loss(logits[: passes.shape[0]], passes, X, module.modality_names, weights)
            if distillation is not None:
                loss = loss + self.teacher_weight * distillation
        return loss


class PrototypeTracker(Callback):
    """Class means of the projected z over an epoch's training passes become the next prototypes.

    For the cosine distance the means are taken of L2-normalised z; weighted means when the
    batches carry sample weights. The auxiliary loss starts after ``warmup`` epochs.
    """

    def __init__(self, n_classes, distance, warmup):
        self.n_classes = n_classes
        self.distance = distance
        self.warmup = warmup

    def initialize(self):
        self.sums_ = None
        self.counts_ = None
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.sums_ = None
        self.counts_ = torch.zeros(self.n_classes, dtype=torch.float64)

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if not training:
            return
        z = y_pred[1].detach()
        z = z.reshape(-1, z.shape[-1]).double()
        if self.distance == "cosine":
            z = F.normalize(z, dim=-1)
        n_passes = y_pred[0].shape[0]
        labels = batch[1].to(z.device).long().repeat(n_passes)
        if self.sums_ is None:
            self.sums_ = torch.zeros(self.n_classes, z.shape[1], dtype=torch.float64, device=z.device)
        # A one-hot product rather than index_add_, whose atomic adds are not deterministic on CUDA.
        one_hot = F.one_hot(labels, self.n_classes).double()
        weights = batch_weights(batch[0], z.device)
        if weights is not None:
            one_hot = one_hot * weights.double().repeat(n_passes)[:, None]
        self.sums_ += one_hot.T @ z
        self.counts_ += one_hot.sum(0).cpu()

    def on_train_end(self, net, **kwargs):
        # Device tensors must not outlive training: a pickled CUDA tensor cannot load on a CPU.
        self.sums_ = None
        self.counts_ = None

    def on_epoch_end(self, net, **kwargs):
        module = net.module_
        seen = self.counts_ > 0
        if self.sums_ is None or not seen.any():
            return
        means = (self.sums_.cpu() / torch.where(seen, self.counts_, 1.0)[:, None]).to(module.prototypes.dtype)
        with torch.no_grad():
            module.prototypes[seen] = means[seen].to(module.prototypes.device)
        if len(net.history) >= self.warmup:
            module.aux_active = True
