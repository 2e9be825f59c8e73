"""Research options of DyMo and MARS, for reproducing the paper's ablations and the benchmarks.

:class:`DyMoResearchClassifier` and :class:`MARSResearchClassifier` are the package's two
estimators with the options a user does not need exposed as parameters: the paper's Table 2
ablations, its training, the reward forms, the loss weights, MARS's ablations. With default
values they are exactly :class:`~dymo_sklearn.DyMoClassifier` and
:class:`~dymo_sklearn.MARSClassifier`. Nothing here is covered by the compatibility promise of
the main estimators: options may change or go when the benchmarks say so.

:func:`selection_outputs` is the one internal entry point the benchmarks use: every per-sample
output of DyMo's prediction path, with optional precomputed recoveries and several thresholds
run on the same encodings.
"""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from ._classifier import DyMoClassifier
from ._mars import MARSClassifier
from ._selection import REWARDS, SELECTIONS
from .nn.distances import DISTANCES

__all__ = ["DyMoResearchClassifier", "MARSResearchClassifier", "selection_outputs"]

_DYMO_OUTPUTS = ("logits", "selected", "order", "rewards", "evaluations", "candidates", "threshold_logits",
                 "logits_observed_only")


class DyMoResearchClassifier(DyMoClassifier):
    """:class:`~dymo_sklearn.DyMoClassifier` with its research options as parameters.

    Every parameter of DyMoClassifier, with the same defaults, plus:

    Parameters
    ----------
    selection : {"dymo", "iterative", "simultaneous", "all", "none"}, default="dymo"
        Adds the paper's Table 2 ablations: ``iterative`` (I) is Algorithm 1 with the
        uncalibrated reward; ``simultaneous`` (S) accepts at once every candidate whose
        uncalibrated reward, against the observed representation, exceeds the threshold.
        ``dymo`` is I+C.
    reward : {"log", "prob"}, default="log"
        ``log``: log-confidence gain plus a non-positive log-ICS penalty (what the paper's
        Eq. 7 means); ``prob``: the authors' released code, confidence gain scaled by an ICS
        ratio. Read at predict time.
    distance : {"cosine", "sqeuclidean"}, default="cosine"
        Distance between projected representations and prototypes.
    recovery_aware : bool, default=True
        False is the paper's training: the network never sees a recovery, so it does not
        depend on the recoverer. True adds one pass per minibatch on training samples whose
        modalities are hidden and recovered out of fold (2-fold cross-fitting), with a learned
        embedding marking recovered tokens.
    aux_weight : float, default=1.0
        Weight of the prototype loss.
    aux_warmup : int, default=2
        Epochs before the prototype loss starts.
    entry_dropout : float, default=0.2
        In training each sample hides a random fraction U(0, entry_dropout) of its observed
        entries.
    max_subsets : int, default=256
        Most subsets whose prototypes and ICS statistics are fitted (all 2^M - 1 when they fit).
    single_passes : bool, default=True
        True fuses every single modality in each training batch, beside ``n_subsets`` random
        subsets of two or more (capped at the 2^M - 1 - M there are); "auto" then makes 8
        passes in all where the subsets allow, max(8 - M, 1) larger ones. False is the paper's
        training: ``n_subsets`` random non-empty subsets ("auto": min(8, 2^M - 1)).
    teacher_weight : float, default=1.0
        Weight of the per-modality teachers' distillation term; 0 trains without teachers.
        Each vector modality gets an RBF SVC (C = 10, standardised, Platt-scaled) whose
        probabilities on the labeled training rows are cross-fitted (5 folds); every training
        pass that fuses only taught modalities adds ``teacher_weight`` times the KL divergence
        from the product of their teachers' probabilities to the pass's prediction. Image,
        sequence and custom modalities get no teacher. Skipped with a warning when a class
        has fewer than 5 labeled rows of positive weight. The teachers are cross-fitted over
        every labeled row, the validation split of early stopping included.
    teacher_fusion : bool, default=False
        True keeps one such teacher per vector modality, fitted on every labeled row, and
        multiplies the prediction by the teachers of the modalities each sample observes
        (``predict``, ``predict_proba`` and ``decision_function``; the selection itself and
        :func:`selection_outputs` are unchanged, and so is the ``prediction`` column of
        :func:`~dymo_sklearn.explain`, the network's own). Saved with the model.
    """

    _parameter_constraints = {
        **DyMoClassifier._parameter_constraints,
        "selection": [StrOptions(set(SELECTIONS))],
        "reward": [StrOptions(set(REWARDS))],
        "distance": [StrOptions(set(DISTANCES))],
        "recovery_aware": ["boolean"],
        "aux_weight": [Interval(Real, 0, None, closed="left")],
        "aux_warmup": [Interval(Integral, 0, None, closed="left")],
        "entry_dropout": [Interval(Real, 0, 1, closed="left")],
        "max_subsets": [Interval(Integral, 1, None, closed="left")],
        "single_passes": ["boolean"],
        "teacher_weight": [Interval(Real, 0, None, closed="left")],
        "teacher_fusion": ["boolean"],
    }

    def __init__(self, recoverer=None, *, selection="dymo", reward="log", distance="cosine", temperature=0.1,
                 acceptance_threshold=0.0, recovery_aware=True, encoders=None, column_groups=None, standardize=True,
                 d_model=64, n_heads=4, n_layers=2, projection_dim=32, dropout=0.1, n_subsets="auto", aux_weight=1.0,
                 aux_warmup=2, entry_dropout=0.2, max_subsets=256, single_passes=True, teacher_weight=1.0,
                 teacher_fusion=False, max_epochs=100,
                 batch_size=128, lr=1e-3, weight_decay=1e-4, early_stopping="auto", validation_fraction=0.1, patience=10,
                 predict_batch_size=1024, device="auto", class_weight=None, random_state=None, verbose=0):
        super().__init__(
            recoverer, selection=selection, temperature=temperature, acceptance_threshold=acceptance_threshold,
            encoders=encoders, column_groups=column_groups, standardize=standardize, d_model=d_model,
            n_heads=n_heads, n_layers=n_layers, projection_dim=projection_dim, dropout=dropout,
            n_subsets=n_subsets, max_epochs=max_epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            early_stopping=early_stopping, validation_fraction=validation_fraction, patience=patience,
            predict_batch_size=predict_batch_size, device=device, class_weight=class_weight,
            random_state=random_state, verbose=verbose)
        self.reward = reward
        self.distance = distance
        self.recovery_aware = recovery_aware
        self.aux_weight = aux_weight
        self.aux_warmup = aux_warmup
        self.entry_dropout = entry_dropout
        self.max_subsets = max_subsets
        self.single_passes = single_passes
        self.teacher_weight = teacher_weight
        self.teacher_fusion = teacher_fusion


class MARSResearchClassifier(MARSClassifier):
    """:class:`~dymo_sklearn.MARSClassifier` with its research options as parameters.

    Every parameter of MARSClassifier, with the same defaults, plus:

    Parameters
    ----------
    residual_router : bool, default=True
        False is the "no residual router" ablation: the feature router routes in training too.
    noise : bool, default=True
        Discrepancy-aware routing noise in training (False: the "no noise" ablation).
    noise_scale : float, default=5.0
        Standard deviation of that noise per unit of router gap: each sample's residual routing
        logits get Gaussian noise of standard deviation ``noise_scale`` x (total variation
        between the two routers' distributions) x (spread of its logits).
    distillation_weight : float, default=1.0
        Weight of the KL term by which the feature router imitates the residual router.
    load_balance_weight : float, default=0.01
        Weight of the load-balancing term (coefficient of variation squared); 0 is that ablation.
    single_passes : bool, default=True
        True routes, beside the one random sub-pattern of each training sample, every modality
        alone (1 + M routed passes a batch instead of 1). False is the paper's training, the
        random sub-pattern only, which reaches a single modality of M in M of 2^M draws
        (``benchmarks/results/mars_passes.md``: 3 to 9 points lower where one modality is left).
    entry_dropout : float, default=0.0
        In training each sample hides a random fraction U(0, entry_dropout) of its observed
        entries, as DyMo's training does (0.2 there).
    teacher_weight : float, default=1.0
        Weight of the per-modality teachers' distillation term, as in DyMo: each vector modality
        gets a cross-fitted RBF SVC, and the full and routed training passes that fuse only
        taught modalities are distilled towards the product of their teachers. 0 trains without
        teachers (the paper's training also has none).
    """

    _parameter_constraints = {
        **MARSClassifier._parameter_constraints,
        "residual_router": ["boolean"],
        "noise": ["boolean"],
        "noise_scale": [Interval(Real, 0, None, closed="left")],
        "distillation_weight": [Interval(Real, 0, None, closed="left")],
        "load_balance_weight": [Interval(Real, 0, None, closed="left")],
        "single_passes": ["boolean"],
        "entry_dropout": [Interval(Real, 0, 1, closed="left")],
        "teacher_weight": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, *, n_experts=4, top_k=2, residual_router=True, noise=True, noise_scale=5.0,
                 distillation_weight=1.0, load_balance_weight=0.01, single_passes=True, entry_dropout=0.0,
                 teacher_weight=1.0, expert_hidden=128, encoders=None,
                 column_groups=None, standardize=True, d_model=64, n_heads=4, n_layers=2, dropout=0.1, max_epochs=50,
                 batch_size=128, lr=1e-3, weight_decay=1e-4, early_stopping="auto", validation_fraction=0.1,
                 patience=10, predict_batch_size=1024, device="auto", class_weight=None, random_state=None,
                 verbose=0):
        super().__init__(
            n_experts=n_experts, top_k=top_k, expert_hidden=expert_hidden, encoders=encoders,
            column_groups=column_groups, standardize=standardize, d_model=d_model, n_heads=n_heads,
            n_layers=n_layers, dropout=dropout, max_epochs=max_epochs, batch_size=batch_size, lr=lr,
            weight_decay=weight_decay, early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, predict_batch_size=predict_batch_size, device=device, class_weight=class_weight,
            random_state=random_state, verbose=verbose)
        self.residual_router = residual_router
        self.noise = noise
        self.noise_scale = noise_scale
        self.distillation_weight = distillation_weight
        self.load_balance_weight = load_balance_weight
        self.single_passes = single_passes
        self.entry_dropout = entry_dropout
        self.teacher_weight = teacher_weight


def selection_outputs(model, X, outputs=("logits",), *, recovered=None, selection=None, thresholds=None):
    """Per-sample outputs of a fitted DyMo model's prediction path, as numpy arrays.

    Parameters
    ----------
    model : fitted DyMoClassifier (or DyMoResearchClassifier)
    X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
        As for ``predict``.
    outputs : tuple of str, default=("logits",)
        Any of "logits", "selected", "order", "rewards", "evaluations", "candidates",
        "threshold_logits" (one set of logits per threshold, (n, T, K)) and
        "logits_observed_only" (the ``none`` mode's logits).
    recovered : dict of str to ndarray, optional
        Recovered versions of ``X`` (every missing entry filled), used instead of the model's
        recoverer, e.g. one draw of multiple imputation.
    selection : str, optional
        Overrides ``model.selection`` for this call.
    thresholds : sequence of float, optional
        Acceptance thresholds to run on the same encodings (default: the model's).

    Returns
    -------
    dict of str to ndarray
    """
    unknown = sorted(set(outputs) - set(_DYMO_OUTPUTS))
    if unknown:
        raise ValueError(f"Unknown outputs {unknown}; choose from {list(_DYMO_OUTPUTS)}.")
    if not isinstance(model, DyMoClassifier):
        raise TypeError(f"selection_outputs needs a fitted DyMoClassifier, got {type(model).__name__}.")
    arrays = model._validated(X)
    return model._predict_arrays(arrays, tuple(outputs), recovered=recovered, selection=selection,
                                 thresholds=thresholds)
