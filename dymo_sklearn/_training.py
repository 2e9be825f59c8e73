"""Training through skorch, shared by both estimators: the seeded net, validation on
sub-patterns, sample weights in the loss, the finite-loss guard and the one net builder.
Each estimator's own net (its loss) lives beside the estimator."""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, PassthroughScoring, PrintLog, ProgressBar
from skorch.dataset import unpack_data

from ._random import attach_generator, device_generator, random_present_subset, seeded_construction

# Key of the per-sample weights in a training batch: they travel with the samples through
# skorch's shuffling and validation split; the networks read only their modalities' keys.
SAMPLE_WEIGHT = "sample_weight"


def batch_weights(X, device):
    """The batch's sample weights on ``device``, or None when training is unweighted."""
    if isinstance(X, dict) and SAMPLE_WEIGHT in X:
        return X[SAMPLE_WEIGHT].to(device)
    return None


def weighted_loss(loss, inputs, targets, weights):
    """``loss`` (F.cross_entropy or F.nll_loss) of (A * B, K) inputs, each of the A passes
    weighted by the (B,) weights; the plain mean without weights."""
    if weights is None:
        return loss(inputs, targets)
    return (loss(inputs, targets, reduction="none").view(-1, len(weights)) * weights).mean()


def is_terminal(stream):
    """Whether ``stream`` is a terminal (False for None, as under pythonw, and for notebooks)."""
    return bool(getattr(stream, "isatty", lambda: False)())


class EpochTable(PrintLog):
    """skorch's epoch table, with its colour codes only when standard output is a terminal:
    escape sequences in a log file or a CI log are noise."""

    def format_row(self, row, key, color):
        if not is_terminal(sys.stdout):
            row = {**row, f"{key}_best": False}  # the best-value highlight is the only colour
        return super().format_row(row, key, color)


class SeededNet(NeuralNet):
    """skorch net whose every random draw comes from generators seeded with ``random_seed``.

    Parameters are initialised under :func:`~dymo_sklearn._random.seeded_construction`;
    minibatch order comes from a loader generator; the module's stochastic parts (dropout,
    sampled subsets and patterns, noise) draw from a generator on the net's device. Both are
    dropped when training ends, so a fitted net pickles without them.
    """

    def __init__(self, *args, random_seed=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.random_seed = random_seed

    def initialize_module(self):
        with seeded_construction(self.random_seed):
            return super().initialize_module()

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # Separate streams: the loader's on the CPU, the module's on its device.
        self.loader_generator_ = device_generator(self.random_seed, "cpu")
        attach_generator(self.module_, device_generator(self.random_seed + 1, self.device))

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs)
        # Validation draws (random sub-patterns) have their own stream, restarted every epoch:
        # the same sub-patterns score every epoch, and the training draws are the same with or
        # without a validation split.
        self.validation_generator_ = device_generator(self.random_seed + 2, self.device)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.loader_generator_ = None
        self.validation_generator_ = None
        attach_generator(self.module_, None)

    # Batch-level scores the net records, averaged per epoch into the history and the table:
    # (name, lower is better, recorded in training).
    epoch_scores = ()

    def get_default_callbacks(self):
        callbacks = [(name, EpochTable() if name == "print_log" else callback)
                     for name, callback in super().get_default_callbacks()]
        scores = [(name, PassthroughScoring(name, lower_is_better=lower, on_train=on_train))
                  for name, lower, on_train in self.epoch_scores]
        return callbacks[:-1] + scores + callbacks[-1:]  # the table prints last

    def get_iterator(self, dataset, training=False):
        # A DataLoader without a generator draws its shuffling and base seed from torch's
        # global stream, even when it does not shuffle.
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        kwargs.setdefault("generator", getattr(self, "loader_generator_", None) or device_generator(0, "cpu"))
        return getattr(self, prefix)(dataset, **kwargs)


class SubPatternValidation:
    """Validation of a net whose module classifies incomplete inputs: skorch's step with each
    modality encoded once, plus the accuracy of everything each held-out sample observes
    (``valid_acc``) and of a random subset of it (``valid_acc_subsets``, with its cross-entropy
    ``valid_loss_subsets``, weighted like the training loss), how the network does on the
    incomplete inputs it will meet. The subsets come from ``validation_generator_``; the net says
    in :meth:`validation_outputs` what it scores and what ``valid_loss`` is."""

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        inputs, labels = unpack_data(batch)
        module = self.module_
        labels = labels.to(self.device)
        with torch.no_grad():
            tokens, present = module.encode({name: inputs[name].to(self.device) for name in module.modality_names})
            subsets = random_present_subset(present, self.validation_generator_)
            loss, y_pred, observed, sub_pattern = self.validation_outputs(module, tokens, present, subsets, labels,
                                                                          inputs)
        self.history.record_batch("valid_acc", (observed.argmax(-1) == labels).float().mean().item())
        self.history.record_batch("valid_acc_subsets", (sub_pattern.argmax(-1) == labels).float().mean().item())
        self.history.record_batch("valid_loss_subsets", weighted_loss(
            F.cross_entropy, sub_pattern, labels.long(), batch_weights(inputs, sub_pattern.device)).item())
        return {"loss": loss, "y_pred": y_pred}

    def validation_outputs(self, module, tokens, present, subsets, labels, inputs):
        """(loss, y_pred, logits of everything present, logits of ``subsets``) of one batch."""
        raise NotImplementedError


class FiniteLossGuard(Callback):
    """Stop training with a clear error as soon as a training loss is not finite.

    Without it a single huge input or a too large learning rate trains the network to NaN
    silently, and every later prediction is NaN.
    """

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if training and loss is not None and not torch.isfinite(loss).all():
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            largest = ", ".join(f"{name} {float(value.detach().abs().nan_to_num(nan=0.0).max()):.3g}"
                                for name, value in inputs.items()) if isinstance(inputs, dict) else "unknown"
            raise ValueError(
                f"The training loss became {loss.item()} in epoch {len(net.history)}: training diverged. "
                f"Lower `lr` (now {net.lr}) or `weight_decay`, or rescale a modality with very large "
                f"values (largest absolute value per modality in this batch: {largest}).")


def build_net(net_class, module_class, module_kwargs, *, callbacks=(), train_split=None, patience=5,
              max_epochs, batch_size, lr, weight_decay=0.01, device, random_seed, verbose=0, **net_kwargs):
    """Construct a skorch net of ``net_class`` around ``module_class(**module_kwargs)``.

    AdamW, shuffled minibatches, the given ``callbacks``, a guard that stops on a non-finite
    training loss, then early stopping on the validation loss (restoring the best weights) when there is a
    ``train_split`` and a progress bar when ``verbose``. The module is
    given as a class plus keyword arguments, so skorch builds it on the device and the pickled
    net holds no raw device tensors outside its device-aware state. ``net_class`` is a
    :class:`SeededNet`: every random draw of training comes from ``random_seed``.
    """
    callbacks = [*callbacks, ("finite_loss", FiniteLossGuard())]
    if train_split is not None:
        callbacks.append(("early_stopping", EarlyStopping(monitor="valid_loss", patience=patience,
                                                          load_best=True)))
    if verbose and is_terminal(sys.stderr):  # a progress bar redrawn with carriage returns clutters a log file
        callbacks.append(("progress", ProgressBar()))
    return net_class(
        module_class,
        **{f"module__{key}": value for key, value in module_kwargs.items()},
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__weight_decay=weight_decay,
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        iterator_train__shuffle=True,
        train_split=train_split,
        callbacks=callbacks,
        device=device,
        random_seed=int(random_seed),
        verbose=int(verbose),
        **net_kwargs,
    )
