"""DyMoClassifier: recover missing modalities, then select per sample which ones to use."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import KNNImputer
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset, ValidSplit
from skorch.helper import predefined_split
from tqdm.auto import tqdm

from ._base import SHARED_PARAMETER_CONSTRAINTS, MultimodalEstimatorMixin
from ._base import resolve_device as _resolve_device
from ._calibration import best_threshold, candidate_thresholds, hide_modalities
from ._input import check_some_modality_observed, observed_modalities
from ._prototypes import (
    SubsetStatistics,
    choose_subsets,
    fit_subset_statistics,
    subset_codes,
)
from ._selection import REWARDS, SELECTIONS, CandidateFusion, select
from ._training import build_net
from .nn.distances import DISTANCES
from .recovery import fit_recoverer, recover


class DyMoClassifier(MultimodalEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Incomplete multimodal classifier with inference-time dynamic modality selection (DyMo).

    Missing modalities (all entries NaN) and missing entries (some NaN) are recovered by
    ``recoverer``; then, per sample, recovered modalities are added one at a time while a
    prototype-based reward says they add task-relevant information (Du et al., ICLR 2026).
    Training fuses random modality subsets through a masked transformer, with a prototype loss.

    Parameters
    ----------
    recoverer : scikit-learn imputer or None, default=None
        Fills missing entries from the flattened, concatenated modalities; cloned into
        ``recoverer_`` at fit. None means ``KNNImputer(n_neighbors=5)``: it recovers a missing
        modality from training samples that resemble the observed ones, so a recovery tends to
        carry class information (mean imputation never does), it needs no model of the data and
        works for images and tables alike. ``IterativeImputer`` is often better on small tables
        but scales poorly with the number of columns. Observed entries are never changed.
    selection : {"dymo", "iterative", "simultaneous", "all", "none"}, default="dymo"
        ``dymo``: iterative selection with the calibrated reward; ``iterative``: uncalibrated;
        ``simultaneous``: accept every candidate with a positive calibrated reward at once;
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
        benchmarked default (safe with the default KNN recoverer; with mean imputation of images
        it ends 4–6 points below discarding at high missing rates, see docs/benchmarks.md).
        "auto" holds out ``calibration_fraction`` of the training samples (also used for early
        stopping), hides modalities of theirs at random, recovers them with a recoverer fitted
        without them, and scores thresholds from -inf (accept all) through reward quantiles and
        0 to +inf (accept none); the paper's 0 is kept unless another is more accurate there by
        more than one standard error. The recoverer is then refitted on all samples. Measured,
        it rarely moves and the network's smaller training set costs more than it gains, so it
        is not the default. Read at predict time: a number set after fitting is used as is.
    calibration_fraction : float, default=0.2
        Held-out share of the training samples when ``acceptance_threshold="auto"``.
    encoders : dict of str to {"vector", "image"} or callable, default=None
        Encoder of each modality; unlisted ones are inferred from the shape ((C, H, W) with
        C <= 4 and H, W >= 4 is an image, anything else is flattened). A callable
        ``f(input_shape, d_model)`` returns a module mapping ``(values, observed)`` to
        ``(batch, tokens, d_model)``.
    column_groups : dict of str to list of int or str, default=None
        For 2-D input: the columns of each tabular modality. None: one modality ``"x"``.
    d_model, n_heads, n_layers, projection_dim, dropout : network size
        Token width, attention heads, transformer blocks, width of the prototype space, dropout.
    n_subsets : int, default=4
        Random modality subsets fused per training batch.
    aux_weight : float, default=1.0
        Weight of the prototype loss; ``aux_warmup`` epochs pass before it starts.
    aux_warmup : int, default=2
    entry_dropout : float, default=0.2
        During training each sample hides a random fraction U(0, entry_dropout) of its observed
        entries, so the encoders learn partially observed inputs.
    max_subsets : int, default=256
        Most subsets whose prototypes and ICS statistics are fitted (all 2^M - 1 when they fit).
    max_epochs, batch_size, lr, weight_decay : training (AdamW)
    early_stopping : bool or "auto", default="auto"
        Hold out a stratified ``validation_fraction`` and stop after ``patience`` epochs without
        improvement, restoring the best weights. "auto": on when there are at least 500 samples.
    validation_fraction : float, default=0.1
    patience : int, default=5
    predict_batch_size : int, default=1024
        Samples per batch at predict time; memory stays bounded whatever the input size.
    device : {"auto", "cpu", "cuda"}, default="auto"
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
        When positive: training progress (skorch's epoch table and progress bar) and a progress
        bar over the batches of a long prediction.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    modalities_ : list of str
    modality_shapes_ : dict of str to tuple
    recoverer_ : fitted imputer
    net_ : skorch.NeuralNet holding the trained ``DyMoNetwork``
    prototypes_ : ndarray of shape (n_classes, projection_dim)
        Overall class prototypes (mean over subsets).
    subset_codes_ : ndarray of int64, shape (n_fitted_subsets,)
        Fitted subsets as bit masks (bit m = ``modalities_[m]``).
    subset_prototypes_ : ndarray of shape (n_fitted_subsets + 1, n_classes, projection_dim)
        c_{s,k}; the last row is the pooled fallback for subsets not fitted.
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
        "aux_weight": [Interval(Real, 0, None, closed="left")],
        "aux_warmup": [Interval(Integral, 0, None, closed="left")],
        "entry_dropout": [Interval(Real, 0, 1, closed="left")],
        "max_subsets": [Interval(Integral, 1, None, closed="left")],
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
        encoders=None,
        column_groups=None,
        d_model=64,
        n_heads=4,
        n_layers=2,
        projection_dim=32,
        dropout=0.1,
        n_subsets=4,
        aux_weight=1.0,
        aux_warmup=2,
        entry_dropout=0.2,
        max_subsets=256,
        max_epochs=50,
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-4,
        early_stopping="auto",
        validation_fraction=0.1,
        patience=5,
        predict_batch_size=1024,
        device="auto",
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
        self.encoders = encoders
        self.column_groups = column_groups
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.n_subsets = n_subsets
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
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------- fit
    def fit(self, X, y):
        """Fit the recoverer, train the network, and fit prototypes and ICS statistics.

        Parameters
        ----------
        X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
            Modalities of shape (n_samples, ...); NaN marks missing entries.
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : DyMoClassifier
        """
        arrays, present, y_encoded, specs = self._start_fit(X, y)

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        torch.manual_seed(seed)
        device = _resolve_device(self.device)
        fit_rows, calibration_rows = self._calibration_split(y_encoded, seed)
        fit_arrays = {name: array[fit_rows] for name, array in arrays.items()}
        recoverer = fit_recoverer(self._recoverer(), fit_arrays)
        self.net_ = build_net(
            self._module_kwargs(specs),
            **self._net_kwargs(self._train_split(arrays, y_encoded[fit_rows], calibration_rows, y_encoded, seed), device),
        )
        self.net_.fit(fit_arrays, y_encoded[fit_rows])
        self._fit_statistics(fit_arrays, present[fit_rows], y_encoded[fit_rows], seed)
        self.recoverer_ = recoverer
        if calibration_rows is None:
            self.acceptance_threshold_ = 0.0 if self.acceptance_threshold == "auto" else self.acceptance_threshold
        else:
            # Calibrate with the recoverer that never saw the held-out rows, then refit on all.
            held_out = {name: array[calibration_rows] for name, array in arrays.items()}
            self.acceptance_threshold_, self.calibration_accuracy_ = self._calibrate_threshold(
                held_out, y_encoded[calibration_rows], np.random.default_rng(seed))
            self.recoverer_ = fit_recoverer(self._recoverer(), arrays)
        return self

    def _module_kwargs(self, specs=None):
        """Keyword arguments of the DyMoNetwork for the fitted modalities."""
        return dict(
            modality_names=self.modalities_, modality_shapes=list(self.modality_shapes_.values()),
            encoder_specs=self._encoder_specs(self.modalities_) if specs is None else specs,
            n_classes=len(self.classes_), d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers,
            projection_dim=self.projection_dim, dropout=self.dropout, n_subsets=self.n_subsets,
            entry_dropout=self.entry_dropout,
        )

    def _net_kwargs(self, train_split, device):
        """Keyword arguments of build_net besides the module's."""
        return dict(
            n_classes=len(self.classes_), distance=self.distance, temperature=self.temperature,
            aux_weight=self.aux_weight, aux_warmup=self.aux_warmup, max_epochs=self.max_epochs,
            batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay, train_split=train_split,
            patience=self.patience, device=device, verbose=self.verbose,
        )

    def save(self, path):
        """Save the fitted model to the directory ``path`` in a format that runs no code on load.

        JSON config, safetensors weights, numpy arrays (no pickle) and the recoverer through
        skops with only scikit-learn and numpy types trusted. Read it back with :meth:`load`.
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

    def _calibration_split(self, y_encoded, seed):
        """(fit rows, held-out rows or None) for ``acceptance_threshold="auto"``."""
        rows = np.arange(len(y_encoded))
        if self.acceptance_threshold != "auto" or not self._stratifiable(y_encoded, self.calibration_fraction):
            return rows, None
        fit_rows, calibration_rows = train_test_split(
            rows, test_size=self.calibration_fraction, stratify=y_encoded, random_state=seed)
        return np.sort(fit_rows), np.sort(calibration_rows)

    def _train_split(self, arrays, y_fit, calibration_rows, y_encoded, seed):
        """skorch's validation split: the calibration rows when there are some, else a stratified one."""
        if not self._use_validation(y_fit):
            return None
        if calibration_rows is not None:
            held_out = {name: array[calibration_rows] for name, array in arrays.items()}
            return predefined_split(Dataset(held_out, y_encoded[calibration_rows]))
        return ValidSplit(self.validation_fraction, stratified=True, random_state=seed)

    def _calibrate_threshold(self, held_out, y_held_out, rng):
        """Acceptance threshold with the best accuracy on held-out samples with hidden modalities."""
        hidden = hide_modalities(held_out, rng)
        recovered = recover(self.recoverer_, hidden)
        paper = self._select_all(hidden, recovered, self.selection, 0.0)
        accuracy = {}
        for threshold in candidate_thresholds(paper["rewards"]):
            run = paper if threshold == 0.0 else self._select_all(hidden, recovered, self.selection, threshold)
            accuracy[threshold] = float(np.mean(run["logits"].argmax(1) == y_held_out))
        return best_threshold(accuracy, len(y_held_out)), accuracy

    def _recoverer(self):
        return KNNImputer(n_neighbors=5) if self.recoverer is None else self.recoverer

    def _fit_statistics(self, arrays, present, y_encoded, seed):
        network = self.net_.module_.eval()
        device = self.net_.device
        present_codes = subset_codes(torch.as_tensor(present)).numpy()
        codes = choose_subsets(len(self.modalities_), self.max_subsets, present_codes, seed)

        def batches():
            for start in range(0, len(y_encoded), self.predict_batch_size):
                stop = start + self.predict_batch_size
                batch = {name: array[start:stop] for name, array in arrays.items()}
                tokens, present_batch = self._encode_observed(network, batch, device)
                yield tokens, present_batch, torch.as_tensor(y_encoded[start:stop], device=device)

        statistics = fit_subset_statistics(network, batches, len(self.classes_), codes, self.distance)
        self.subset_codes_ = statistics.codes
        self.subset_prototypes_ = statistics.subset_prototypes
        self.ics_sigma_ = statistics.sigma
        self.prototypes_ = statistics.prototypes

    # ------------------------------------------------------------- inference
    @staticmethod
    def _encode_observed(network, batch, device):
        """Tokens of the observed entries (B, L, d) and modality presence (B, M)."""
        tokens, present = [], []
        with torch.no_grad():
            for index, array in enumerate(batch.values()):
                values = torch.as_tensor(array, device=device)
                observed = ~torch.isnan(values)
                tokens.append(network.encode_modality(index, torch.nan_to_num(values, nan=0.0), observed))
                present.append(observed.flatten(1).any(dim=1))
        return torch.cat(tokens, dim=1), torch.stack(present, dim=1)

    @staticmethod
    def _encode_versions(network, observed_batch, recovered_batch, device):
        """Tokens of each modality as observed and as recovered, each encoded once per sample.

        Fully observed modalities are encoded once (both versions equal); fully missing ones only
        in their recovered version; partially observed ones in both.
        """
        token_counts = torch.bincount(network.fusion.token_modality, minlength=network.n_modalities).tolist()
        observed_tokens, recovered_tokens, present, candidates = [], [], [], []
        for index, name in enumerate(observed_batch):
            values = torch.as_tensor(observed_batch[name], device=device)
            observed = ~torch.isnan(values)
            has_any = observed.flatten(1).any(dim=1)
            complete = observed.flatten(1).all(dim=1)
            base = values.new_zeros(values.shape[0], token_counts[index], network.fusion.cls.shape[-1])
            rows = has_any.nonzero(as_tuple=True)[0]
            if rows.numel():
                base[rows] = network.encode_modality(index, torch.nan_to_num(values[rows], nan=0.0), observed[rows])
            filled = base.clone()
            rows = (~complete).nonzero(as_tuple=True)[0]
            if rows.numel():
                recovered = torch.as_tensor(recovered_batch[name][rows.cpu().numpy()], device=device)
                filled[rows] = network.encode_modality(index, recovered, torch.ones_like(recovered, dtype=torch.bool))
            observed_tokens.append(base)
            recovered_tokens.append(filled)
            present.append(has_any)
            candidates.append(~complete)
        return (torch.cat(observed_tokens, dim=1), torch.cat(recovered_tokens, dim=1),
                torch.stack(present, dim=1), torch.stack(candidates, dim=1))

    def _prepare(self, X):
        """Validated arrays and their recovered copies."""
        check_is_fitted(self)
        arrays = self._modalities(X, reset=False)
        present, _ = observed_modalities(arrays)
        check_some_modality_observed(present, self.modalities_)
        return arrays, recover(self.recoverer_, arrays)

    def _threshold(self):
        return self.acceptance_threshold_ if self.acceptance_threshold == "auto" else self.acceptance_threshold

    def _run(self, X, selection, keys=None):
        """Selection results for every sample of ``X``; a dict of numpy arrays.

        Recovery runs batch by batch, so its memory does not grow with the number of samples.
        """
        check_is_fitted(self)
        arrays = self._modalities(X, reset=False)
        present, _ = observed_modalities(arrays)
        check_some_modality_observed(present, self.modalities_)
        return self._select_all(arrays, None, selection, self._threshold(), keys)

    def _select_all(self, arrays, recovered, selection, threshold, keys=None):
        """Selection results for every sample, in batches of ``predict_batch_size``.

        ``recovered`` holds the recovered arrays, or None to recover each batch on the way;
        ``keys`` limits which per-sample results are kept (all by default).
        """
        network = self.net_.module_.eval()
        device = self.net_.device
        statistics = SubsetStatistics(
            self.subset_codes_, self.subset_prototypes_, self.ics_sigma_, self.prototypes_
        ).to_torch(device)
        n_samples = next(iter(arrays.values())).shape[0]
        keys = keys or ("logits", "selected", "order", "rewards", "evaluations", "candidates")
        outputs = {key: [] for key in keys}
        starts = range(0, n_samples, self.predict_batch_size)
        if self.verbose and len(starts) > 1:
            starts = tqdm(starts, desc=f"DyMo {selection}", unit="batch", leave=False)
        with torch.inference_mode():
            for start in starts:
                rows = slice(start, start + self.predict_batch_size)
                batch = {name: array[rows] for name, array in arrays.items()}
                recovered_batch = (recover(self.recoverer_, batch) if recovered is None
                                   else {name: array[rows] for name, array in recovered.items()})
                fusion = CandidateFusion(network, *self._encode_versions(network, batch, recovered_batch, device))
                result = select(
                    fusion, statistics, selection=selection, reward_form=self.reward, distance=self.distance,
                    temperature=self.temperature, threshold=threshold,
                )
                found = {"logits": network.heads(result.hidden)[0].float(), "selected": result.selected,
                         "order": result.order, "rewards": result.rewards.float(),
                         "evaluations": result.evaluations, "candidates": fusion.candidates}
                for key in outputs:
                    outputs[key].append(found[key].cpu())
        return {key: torch.cat(value).numpy() for key, value in outputs.items()}

    def _check_selection(self):
        check_is_fitted(self)
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}.")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}.")

    def predict_proba(self, X):
        """Class probabilities after recovery and per-sample selection.

        Parameters
        ----------
        X : dict of str to array-like, MultimodalDict, 2-D array or DataFrame
            A modality absent from a dict is missing for every sample.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        self._check_selection()
        logits = self._run(X, self.selection, keys=("logits",))["logits"].astype(np.float64)
        return softmax(logits, axis=1)

    def predict(self, X):
        """Predicted class labels; see :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def explain(self, X):
        """Which recovered modalities each sample used, in which order, with their rewards.

        Returns
        -------
        pandas.DataFrame, one row per sample, with columns
            ``observed`` (modalities with observed entries), ``candidates`` (modalities with a
            recovered part), ``selected`` (accepted candidates in acceptance order),
            ``reward_<m>`` (reward of candidate m when last evaluated; NaN if never evaluated),
            ``step_<m>`` (1-based step at which m was accepted, 0 if not), ``prediction`` and
            ``prediction_observed_only`` (the ``none`` mode's prediction).
        """
        self._check_selection()
        arrays, recovered = self._prepare(X)
        run = self._select_all(arrays, recovered, self.selection, self._threshold())
        baseline = self._select_all(arrays, recovered, "none", 0.0)["logits"]
        present, _ = observed_modalities(arrays)
        names = np.asarray(self.modalities_, dtype=object)
        ranked = np.where(run["selected"], run["order"], np.iinfo(np.int64).max)
        frame = pd.DataFrame({
            "observed": [names[row].tolist() for row in present],
            "candidates": [names[row].tolist() for row in run["candidates"]],
            "selected": [names[np.argsort(r, kind="stable")[: int(s.sum())]].tolist()
                         for r, s in zip(ranked, run["selected"])],
        })
        for index, name in enumerate(self.modalities_):
            frame[f"reward_{name}"] = run["rewards"][:, index]
            frame[f"step_{name}"] = np.where(run["selected"][:, index], run["order"][:, index], 0)
        frame["prediction"] = self.classes_[run["logits"].argmax(axis=1)]
        frame["prediction_observed_only"] = self.classes_[baseline.argmax(axis=1)]
        return frame
