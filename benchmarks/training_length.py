"""The shipped DyMoClassifier against a change of its parameters: its training length first.

Fits ``DyMoClassifier()`` with the ``--params`` given (by default ``max_epochs=100,
patience=10``, the schedule measured here against the 50 / 5 one before it became the default)
on the dilemma benchmark's splits and missing test sets (``benchmarks.dilemma``: same seeds,
default recoverer) and sets it beside the shipped model's figures in ``benchmarks/results/dilemma.json`` (the
same fits when the code and seeds are unchanged). Those figures are copied into the run's own
records when it is made, so that a page re-rendered later still compares against the defaults
of its day. Accuracy of ``none``, ``all`` and ``dymo`` per η, epochs run and fit time.

    python -m benchmarks.training_length          # benchmarks/results/training_length.md and .json
    python -m benchmarks.training_length --quick  # smoke run into build/benchmarks/
    python -m benchmarks.training_length --params '{"n_subsets": 8}' --name n_subsets
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dymo_sklearn.datasets import apply_missing

from .common import benchmark_main, load_split, params_label
from .dilemma import DATASETS, SHIPPED, shipped

LONGER = {"max_epochs": 100, "patience": 10}
LONGER_LABEL = params_label(LONGER)
METHODS = ("none", "all", "dymo")


def run_seed(dataset, seed, quick, params=None):
    params = LONGER if params is None else params
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    tests = {float(rate): apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    start = time.perf_counter()
    quick_params = {key: value for key, value in params.items() if key not in LONGER}
    model = shipped(None, seed, quick, **(quick_params if quick else params)).fit(X_train, y_train)
    label = f"smoke run (max_epochs=3{', ' if quick_params else ''}{params_label(quick_params)})" if quick \
        else params_label(params)
    fit_s, n_epochs = time.perf_counter() - start, len(model.net_.history)
    rows = [] if quick else shipped_records(dataset, seed)  # a smoke run has other splits
    for rate, X_missing in tests.items():
        for method in METHODS:
            model.set_params(selection=method)
            rows.append({"dataset": dataset, "seed": seed, "quick": quick, "rate": rate, "method": method,
                         "model": label, "accuracy": float(np.mean(model.predict(X_missing) == y_test)),
                         "fit_s": fit_s, "n_epochs": n_epochs})
    print(f"[{dataset}] seed {seed}: {n_epochs} epochs, {fit_s:.0f}s", flush=True)
    return rows


def shipped_records(dataset, seed, path=Path("benchmarks/results/dilemma.json")):
    """The shipped model (default recoverer) of one (data set, seed) in the dilemma run, as rows
    of this benchmark; [] when that run is absent."""
    if not path.is_file():
        return []
    run = json.loads(path.read_text())

    def shipped_here(row):
        return (row["model"], row["recoverer"], row["dataset"], row["seed"]) == (SHIPPED, "knn", dataset, seed)

    fit = next((f for f in run["fits"] if shipped_here(f)), None)
    if fit is None:
        return []
    return [{**{key: r[key] for key in ("dataset", "seed", "rate", "method", "accuracy")}, "quick": False,
             "model": "shipped", "fit_s": fit["fit_s"], "n_epochs": fit["n_epochs"]}
            for r in run["records"] if shipped_here(r) and r["method"] in METHODS]


def report(records, command):
    frame = pd.DataFrame(records)
    quick = bool(frame["quick"].any())
    seeds = sorted(frame.seed.unique().tolist())
    models = list(dict.fromkeys(frame.model))
    variant = models[-1]
    title = ("Training length of the shipped model" if variant == LONGER_LABEL or quick
             else f"The shipped model against {variant}")
    lines = [f"# {title}", "",
             f"Produced by `{command}` ({torch.get_num_threads()} torch thread(s)): `DyMoClassifier()` as shipped "
             f"(copied from benchmarks/results/dilemma.json when the run was made: same splits, seeds {seeds} and missing test "
             f"sets) against the same "
             f"model with `{variant}`. Default recoverer; accuracy in %, mean ± sd over seeds.", "",
             "| data set | η | method | " + " | ".join(models) + " | difference |",
             "|---|---|---|" + "---|" * (len(models) + 1)]
    for (dataset, rate, method), part in frame.groupby(["dataset", "rate", "method"], sort=False):
        by_model = {m: part[part.model == m].accuracy.to_numpy() * 100 for m in models}
        cells = [f"{v.mean():.1f} ± {v.std():.1f}" if len(v) else "–" for v in by_model.values()]
        difference = (f"{by_model[models[-1]].mean() - by_model[models[0]].mean():+.1f}"
                      if len(models) > 1 and all(len(v) for v in by_model.values()) else "–")
        lines.append(f"| {dataset} | {rate:.2f} | {method} | " + " | ".join(cells) + f" | {difference} |")
    fits = frame.drop_duplicates(["dataset", "seed", "model"]).groupby(["dataset", "model"], sort=False)
    lines += ["", "| data set | model | epochs per seed | mean fit (s) |", "|---|---|---|---|"]
    lines += [f"| {dataset} | {model} | {', '.join(str(int(e)) for e in part.n_epochs)} | {part.fit_s.mean():.1f} |"
              for (dataset, model), part in fits]
    return "\n".join(lines) + "\n"


def main(argv=None):
    options = {"--params": {"type": json.loads, "default": None,
                            "help": "JSON of the DyMoClassifier parameters to change (default: "
                                    f"{json.dumps(LONGER)}); --quick keeps only those that are not epochs"}}
    benchmark_main("training_length", run_seed, report, argv, datasets=DATASETS, options=options)


if __name__ == "__main__":
    main()
