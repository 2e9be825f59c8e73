"""MARSClassifier: missingness-aware, residual-guided mixture of experts (Baek et al.,
arXiv 2606.30355), recovery-free, on the same backbone and input handling as DyMoClassifier.

Two flaws of the public reference code are avoided on purpose: model selection uses a
validation split of the training data (never the test set), and prediction uses the feature
router only (never the residual router, which needs full modalities).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, validate_parameter_constraints

from ._base import SHARED_PARAMETER_CONSTRAINTS, MultimodalClassifier, check_finite_outputs
from ._devices import to_device
from ._input import observed_modalities
from ._random import device_generator, random_present_subset
from ._teachers import TEACHER, distillation_loss
from ._training import SeededNet, SubPatternValidation, batch_weights, build_net, weighted_loss
from .nn.mars import MARSNetwork, top_k_sets


class _MARSNet(SubPatternValidation, SeededNet):
    """Loss = CE(full) + CE(partial, routed) + weighted imitation and load-balancing terms
    + ``teacher_weight`` * the distillation term of :func:`~dymo_sklearn._teachers.distillation_loss`
    over the full and routed passes when the batch carries teachers; the cross-entropies and the
    distillation weigh each sample by its weight when the batch carries ``SAMPLE_WEIGHT``.

    The validation loss is the cross-entropy of the inference path (feature router only), the
    mean of two passes: everything the sample observes, and a random sub-pattern of it. Early
    stopping thus watches the incomplete inputs MARS is for, not only complete ones.
    """

    epoch_scores = (("valid_acc", False, False), ("valid_acc_subsets", False, False), ("valid_loss_subsets", True, False))

    def __init__(self, *args, weights=None, teacher_weight=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights = weights or {}
        self.teacher_weight = teacher_weight

    def validation_outputs(self, module, tokens, present, subsets, labels, inputs):
        batch_size = len(labels)
        logits, _ = module.route(torch.cat([tokens, tokens]), torch.cat([present, subsets]))
        observed, sub_pattern = logits[:batch_size], logits[batch_size:]
        loss = 0.5 * (self.get_loss((observed, None, None), labels, X=inputs)
                      + self.get_loss((sub_pattern, None, None), labels, X=inputs))
        return loss, observed, observed, sub_pattern

    def get_loss(self, y_pred, y_true, X=None, training=False):
        full_logits, partial_logits, auxiliary = y_pred[:3]
        y_true = y_true.to(full_logits.device).long()
        sample_weights = batch_weights(X, full_logits.device)
        loss = weighted_loss(F.cross_entropy, full_logits, y_true, sample_weights)
        if partial_logits is None:
            return loss
        n_passes = partial_logits.shape[0] // len(y_true)
        loss = loss + weighted_loss(F.cross_entropy, partial_logits, y_true.repeat(n_passes), sample_weights)
        loss = loss + sum(self.weights[name] * value for name, value in auxiliary.items())
        if self.teacher_weight > 0 and len(y_pred) > 3:
            logits = torch.cat([full_logits[None], partial_logits.view(n_passes, *full_logits.shape)])
            distillation = distillation_loss(logits, y_pred[3], X, self.module_.modality_names, sample_weights)
            if distillation is not None:
                loss = loss + self.teacher_weight * distillation
        return loss


class MARSClassifier(MultimodalClassifier):
    """Incomplete multimodal classifier routing each sample to experts by its missingness.

    No recovery: missing modalities are masked in the fusion transformer. During training a
    residual router sees how a missing pattern shifts each sample's representation and routes
    to the top-k experts; a feature router, which sees only the partial representation, learns
    to imitate it and alone routes at prediction time. The patterns of each training batch are
    one random sub-pattern of what each sample observes and every observed modality alone, the
    pattern a sample with one modality brings at prediction. Each table (vector) modality is
    also taught by an RBF SVC fitted on it alone and cross-fitted inside ``fit``: the passes that
    fuse only tables are distilled towards the product of their teachers, as in DyMo. The
    paper's training, the random sub-pattern only and no teachers, is
    ``MARSResearchClassifier(single_passes=False, teacher_weight=0.0)``.

    Rows labelled -1 in ``fit`` are unlabeled (``sklearn.semi_supervised``'s convention). MARS
    recovers nothing and every part of it learns from labels, so they only enter the input
    standardisation statistics; use :class:`DyMoClassifier`, whose recoverer learns from them.

    The research options (the paper's ablations, the loss weights, the routing noise) are
    parameters of :class:`dymo_sklearn.experimental.MARSResearchClassifier`.

    Parameters
    ----------
    n_experts : int, default=4
        Experts of the mixture.
    top_k : int, default=2
        Experts each sample is routed to (at most ``n_experts``).
    expert_hidden : int, default=128
        Hidden width of each expert's MLP.
    encoders, column_groups, standardize, d_model, n_heads, n_layers, dropout
        As in :class:`DyMoClassifier`.
    max_epochs : int, default=50
    batch_size, lr, weight_decay, early_stopping, validation_fraction
        Training through skorch, as in :class:`DyMoClassifier`. The validation loss that early
        stopping watches is the mean of the inference path's cross-entropy on what each
        held-out sample observes and on a random sub-pattern of it.
    patience : int, default=10
        Epochs without a lower validation loss before training stops.
    predict_batch_size : int, default=1024
    device : {"auto", "cpu", "cuda"}, default="auto"
    class_weight : dict, "balanced" or None, default=None
        As in :class:`DyMoClassifier`: weighs the two cross-entropy terms.
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
        As in :class:`DyMoClassifier`, without the per-term columns.

    Attributes
    ----------
    classes_, modalities_, modality_shapes_, net_ : as in :class:`DyMoClassifier`

    See Also
    --------
    DyMoClassifier : recovers missing modalities and selects which to use, per sample.
    dymo_sklearn.experimental.MARSResearchClassifier : the same model with its research options.
    """

    _parameter_constraints = {
        **SHARED_PARAMETER_CONSTRAINTS,
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "top_k": [Interval(Integral, 1, None, closed="left")],
        "expert_hidden": [Interval(Integral, 1, None, closed="left")],
    }

    # Research settings, fixed here at the paper's values; MARSResearchClassifier makes them
    # parameters.
    residual_router = True
    noise = True
    noise_scale = 5.0
    distillation_weight = 1.0
    load_balance_weight = 0.01
    single_passes = True
    entry_dropout = 0.0
    teacher_weight = 1.0

    def __init__(self, *, n_experts=4, top_k=2, expert_hidden=128, encoders=None, column_groups=None,
                 standardize=True, d_model=64, n_heads=4, n_layers=2, dropout=0.1, max_epochs=50, batch_size=128,
                 lr=1e-3, weight_decay=1e-4, early_stopping="auto", validation_fraction=0.1, patience=10,
                 predict_batch_size=1024, device="auto", class_weight=None, random_state=None, verbose=0):
        self.n_experts = n_experts
        self.top_k = top_k
        self.expert_hidden = expert_hidden
        self.encoders = encoders
        self.column_groups = column_groups
        self.standardize = standardize
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dropout = dropout
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

    _reserved_prefixes = (TEACHER,)

    def _prepare_fit(self, arrays, seed, labeled=None, y_encoded=None, weights=None):
        train = super()._prepare_fit(arrays, seed, labeled, y_encoded, weights)
        return self._with_teacher_targets(train, y_encoded, seed, weights)

    def _build_net(self, specs, train_split, device, seed, input_scaling=None):
        module_kwargs = {**self._module_kwargs(specs, input_scaling), "n_experts": self.n_experts, "top_k": self.top_k,
                         "expert_hidden": self.expert_hidden, "noise": self.noise,
                         "noise_scale": float(self.noise_scale), "residual_router": self.residual_router,
                         "single_passes": bool(self.single_passes), "entry_dropout": float(self.entry_dropout)}
        weights = {"distillation": self.distillation_weight, "load_balance": self.load_balance_weight}
        return build_net(_MARSNet, MARSNetwork, module_kwargs, weights=weights,
                         teacher_weight=float(self.teacher_weight), **self._training_kwargs(train_split, device, seed))

    def _prediction_context(self, module, device, sub_patterns=None):
        return device, sub_patterns

    def _predict_batch(self, module, context, rows, batch, outputs):
        device, sub_patterns = context
        tokens, present = module.encode(to_device(batch, device))
        if sub_patterns is None:
            logits, gates = module.route(tokens, present)
            return {"logits": logits.float(), "gates": gates.float()}
        _, _, feature_logits, residual_logits = module.paired(tokens, present, sub_patterns[rows].to(device))
        return {"feature_logits": feature_logits.float(), "residual_logits": residual_logits.float()}

    def routing_agreement(self, X, random_state=0):
        """How closely the feature router imitates the residual router on ``X`` (held-out data).

        As in training, what each sample observes gives z_full and a random sub-pattern of it
        (each observed modality kept with probability 1/2, at least one) gives z_partial. The
        feature router sees z_partial and the sub-pattern; the residual router also sees
        z_full - z_partial. Complete samples show every kind of missingness.

        Parameters
        ----------
        X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
            Samples with the fitted modalities, NaN where missing, as for :meth:`predict`.
        random_state : int, default=0
            Seed of the sub-patterns, drawn on the CPU for all samples at once: the result does
            not depend on ``predict_batch_size`` or the device. The caller's random streams are
            not touched.

        Returns
        -------
        agreement : dict
            ``top1``: fraction of samples whose top expert is the same for both routers;
            ``top_k``: fraction whose set of ``top_k`` experts is the same; ``kl``: mean
            KL(p_residual || p_feature) of the two routing distributions; ``n_samples``.

        Raises
        ------
        ValueError
            If the model was fitted with ``residual_router=False``: its residual router was
            never trained, so there is nothing to imitate.
        """
        constraints = {"random_state": [Interval(Integral, 0, None, closed="left")]}
        validate_parameter_constraints(constraints, {"random_state": random_state}, caller_name="routing_agreement")
        if isinstance(random_state, (bool, np.bool_)):
            raise ValueError(f"random_state of routing_agreement must be an integer, got {random_state!r}.")
        arrays = self._validated(X)
        if not self.net_.module_.use_residual_router:
            raise ValueError("This MARSClassifier was fitted with residual_router=False: its residual router was "
                             "never trained, so routing agreement has no meaning.")
        present, _ = observed_modalities(arrays)
        sub_patterns = random_present_subset(torch.as_tensor(present), device_generator(random_state, "cpu"))
        run = self._predict_arrays(arrays, ("feature_logits", "residual_logits"), sub_patterns=sub_patterns)
        feature, residual = torch.as_tensor(run["feature_logits"]), torch.as_tensor(run["residual_logits"])
        k = self.net_.module_.top_k
        kl = F.kl_div(torch.log_softmax(feature, 1), torch.log_softmax(residual, 1), log_target=True,
                      reduction="batchmean")
        return {"top1": float((feature.argmax(1) == residual.argmax(1)).double().mean()),
                "top_k": float((top_k_sets(feature, k) == top_k_sets(residual, k)).all(1).double().mean()),
                "kl": float(kl), "n_samples": len(feature)}

    def explain(self, X):
        """Per sample: observed modalities, gate weight of every expert, top expert, prediction.

        Returns
        -------
        pandas.DataFrame with columns ``observed``, ``pattern`` (observed modalities joined by
        "+"), ``gate_<e>`` for each expert, ``top_expert`` and ``prediction``.
        """
        arrays = self._validated(X)
        run = self._predict_arrays(arrays, ("logits", "gates"))
        logits, gates = check_finite_outputs(run["logits"], arrays), run["gates"]
        present, _ = observed_modalities(arrays)
        names = np.asarray(self.modalities_, dtype=object)
        observed = [names[row].tolist() for row in present]
        frame = pd.DataFrame({"observed": observed, "pattern": ["+".join(o) for o in observed]})
        for expert in range(gates.shape[1]):
            frame[f"gate_{expert}"] = gates[:, expert]
        frame["top_expert"] = gates.argmax(axis=1)
        frame["prediction"] = self.classes_[logits.argmax(axis=1)]
        return frame

    def expert_usage(self, X):
        """Mean gate weight of each expert per missing pattern (rows) — what the plot shows."""
        frame = self.explain(X)
        return frame.groupby("pattern")[[c for c in frame if c.startswith("gate_")]].mean()
