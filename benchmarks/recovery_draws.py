"""Multiple imputation: average DyMo over several recoveries drawn from the nearest neighbours.

The default recoverer fills a missing modality with the mean of its five nearest training
neighbours: one blurred guess. Classic multiple imputation instead marginalises over the
missing part, p(y | observed) ~ mean over draws of p(y | observed, draw). Here a draw is one
neighbour's own modality (the k-th nearest, k = 1 .. K, by the recoverer's nan-Euclidean
distance over the observed modalities): a real image of the training set, not an average. This
benchmark fits ``DyMoClassifier()`` as shipped on the dilemma run's splits and missing test
sets and scores, without labels:

- ``none``, ``all`` and ``dymo`` as shipped (one recovery, the neighbours' mean);
- ``all`` and ``dymo`` run once per draw, their class probabilities averaged over K draws;
- ``none`` and the averaged ``all`` of the draws, half each.

    python -m benchmarks.recovery_draws          # docs/recovery_draws.md and .json
    python -m benchmarks.recovery_draws --quick  # smoke run into build/benchmarks/
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import softmax

from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.recovery import recover
from dymo_sklearn.recovery._imputer import _flatten, _unflatten
from dymo_sklearn.recovery._knn import KNNRecoverer, nan_euclidean_distances

from .common import benchmark_main, load_split, percent_frame, rule_table
from .dilemma import DATASETS, shipped

N_DRAWS = 10
NONE, ALL, DYMO, ALL_DRAWS, DYMO_DRAWS, NONE_AND_DRAWS = RULES = (
    "none (discard)", "all (neighbours' mean)", "dymo (shipped)",
    "all, averaged over the neighbour draws", "dymo, averaged over the neighbour draws",
    "none and all over the draws, half each")


def neighbour_draws(recoverer, arrays, n_draws):
    """``n_draws`` recovered copies of ``arrays``: in copy k every missing entry takes the value
    of the k-th nearest training row among those that observe it (the rows ``recoverer``, a
    fitted :class:`KNNRecoverer`, averages over), observed entries untouched. Distances are
    computed on the CPU in the recoverer's own batches and precision, so that nearly tied
    neighbours rank as they do when it recovers on the CPU (exactly tied ones may not)."""
    if not isinstance(recoverer, KNNRecoverer):
        raise TypeError(f"neighbour draws need a fitted KNNRecoverer, not {type(recoverer).__name__}")
    if not recoverer.valid_features_.all():
        raise ValueError("neighbour draws need training data that observes every feature at least once")
    if any(len(donors) < n_draws for donors, _ in recoverer.donor_groups_):
        raise ValueError(f"{n_draws} draws need at least {n_draws} training rows observing each feature")
    matrix = _flatten(arrays).astype(np.float64)
    dtype = torch.float64 if recoverer.dtype == "float64" else torch.float32
    fit_X = torch.as_tensor(recoverer.fit_X_, dtype=dtype)
    missing = np.isnan(matrix)
    draws = [matrix.copy() for _ in range(n_draws)]
    needing = np.flatnonzero(missing.any(axis=1))
    for start in range(0, len(needing), recoverer.batch_size):
        batch = needing[start:start + recoverer.batch_size]
        distances = nan_euclidean_distances(torch.as_tensor(matrix[batch], dtype=dtype), fit_X)
        for donors, features in recoverer.donor_groups_:
            receiving = missing[batch][:, features].any(axis=1)
            if not receiving.any():
                continue
            found = torch.topk(distances[torch.as_tensor(receiving)][:, torch.as_tensor(donors)], n_draws, largest=False)
            if not torch.isfinite(found.values).all():  # KNNRecoverer would fall back to the feature mean
                raise ValueError(f"a row shares no observed feature with {n_draws} training rows that can fill it")
            nearest = found.indices.numpy()
            cells = np.ix_(batch[receiving], features)
            for k, draw in enumerate(draws):
                block = draw[cells]
                gaps = np.isnan(block)
                block[gaps] = recoverer.fit_X_[donors[nearest[:, k]]][:, features][gaps]
                draw[cells] = block
    return [{name: np.asarray(values, dtype=np.float32).reshape(arrays[name].shape)
             for name, values in _unflatten(draw, arrays).items()} for draw in draws]


def probabilities(model, arrays, recovered, selection):
    logits = model._predict_arrays(arrays, ("logits",), recovered=recovered, selection=selection)["logits"]
    return softmax(logits.astype(np.float64), axis=1)


def rule_probabilities(model, arrays, n_draws):
    """Class probabilities of every rule of :data:`RULES` for one test set."""
    mean_recovery = recover(model.recoverer_, arrays)
    found = {rule: probabilities(model, arrays, mean_recovery, selection)
             for rule, selection in ((NONE, "none"), (ALL, "all"), (DYMO, "dymo"))}
    draws = neighbour_draws(model.recoverer_, arrays, n_draws)
    # The recoverer's own result is the mean of its first n_neighbors draws: the draws are its neighbours.
    first = model.recoverer_.n_neighbors
    for name, recovered in (mean_recovery.items() if model.recoverer_.weights == "uniform" and first <= n_draws else ()):
        if not np.allclose(np.mean([draw[name] for draw in draws[:first]], axis=0), recovered, atol=1e-4):
            raise AssertionError(f"the first {first} draws of {name!r} do not average to the recoverer's result")
    found[ALL_DRAWS] = np.mean([probabilities(model, arrays, draw, "all") for draw in draws], axis=0)
    found[DYMO_DRAWS] = np.mean([probabilities(model, arrays, draw, "dymo") for draw in draws], axis=0)
    found[NONE_AND_DRAWS] = (found[NONE] + found[ALL_DRAWS]) / 2
    return found


def run_seed(dataset, seed, quick):
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    model = shipped(None, seed, quick).fit(X_train, y_train)
    n_draws = 5 if quick else N_DRAWS  # a smoke run still draws the recoverer's five neighbours
    rows = []
    for i, rate in enumerate(rates):
        X_missing = apply_missing(X_test, rate, random_state=1000 * seed + i)  # the dilemma run's
        found = rule_probabilities(model, model._validated(X_missing), n_draws)
        for rule, selection in ((NONE, "none"), (ALL, "all"), (DYMO, "dymo")):  # as the estimator predicts
            if not np.array_equal(model.classes_[found[rule].argmax(1)], model.set_params(selection=selection).predict(X_missing)):
                raise AssertionError(f"{dataset} seed {seed} η={rate}: {rule!r} differs from predict")
        rows += [{"dataset": dataset, "seed": seed, "quick": quick, "threads": torch.get_num_threads(),
                  "n_draws": n_draws, "rate": float(rate), "rule": rule,
                  "accuracy": float(np.mean(model.classes_[probabilities_.argmax(1)] == y_test))}
                 for rule, probabilities_ in found.items()]
    print(f"[{dataset}] seed {seed} done", flush=True)
    return rows


def report(records, command):
    frame, seeds = percent_frame(records)
    draws = sorted(frame.n_draws.unique().tolist())
    lines = ["# Multiple imputation by neighbour draws", "",
             f"Produced by `{command}` ({', '.join(str(t) for t in sorted(frame.threads.unique()))} torch thread(s)): "
             f"`DyMoClassifier()` as shipped (default recoverer) on the dilemma run's splits and missing test sets, "
             f"seeds {seeds}. A draw fills each missing modality with one training neighbour's own values (the k-th "
             f"nearest, k = 1 .. {', '.join(map(str, draws))}); the rows averaged over draws run the network once per "
             "draw and average the class probabilities. No rule sees a label. Accuracy in %, mean ± sd over seeds; "
             "the last column is the rule minus `none` at the highest η."]
    for dataset, part in frame.groupby("dataset", sort=False):
        lines += ["", f"## {dataset}", "", *rule_table(part, RULES, NONE)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    benchmark_main("recovery_draws", run_seed, report, argv, datasets=DATASETS)


if __name__ == "__main__":
    main()
