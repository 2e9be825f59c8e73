"""Fit time of DyMoClassifier on a chosen device, next to the dilemma run's CPU figures.

Issue 11 asks for the Fashion-MNIST set's fit time on 2 cores and on a GPU. The CPU figures are
the dilemma run's (``benchmarks/results/dilemma_fashion.json``; for a device run made before single
passes and teachers became the defaults, whose rows do not record ``single_passes``, the shipped
model's are those of ``earlier_default.json``). This benchmark fits the same two models on
the same data and seed on ``--device``: ``DyMoClassifier()`` as shipped (default recoverer) and
the paper's training (``recovery_aware=False``). It times each fit and each model's ``predict``
at the highest missing rate, and scores ``none``, ``all`` and ``dymo`` on the same missing test
sets, so that the accuracies can be set beside the CPU run's. A GPU does not give the CPU's
numbers bit for bit, so the accuracies are expected to agree within seed noise, not exactly.

    python -m benchmarks.device_fit --device cuda --datasets polymnist_fashion --seeds 0 --threads 8 \\
        --name device_fit_fashion                  # benchmarks/results/device_fit_fashion.md and .json
    python -m benchmarks.device_fit --quick        # smoke run on the CPU into build/benchmarks/
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dymo_sklearn.datasets import apply_missing

from .common import benchmark_main, load_split
from .dilemma import PAPER_TRAINING, SHIPPED, shipped
from .late_fusion import EARLIER_DEFAULT

MODES = ("none", "all", "dymo")
CPU_RECORDS = (Path("benchmarks/results/dilemma.json"), Path("benchmarks/results/dilemma_fashion.json"))


def _synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_seed(dataset, seed, quick, device="cpu"):
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    tests = {float(rate): apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} torch thread(s)"
    rows = []
    for label, params in ((SHIPPED, {}), (PAPER_TRAINING, {"recovery_aware": False})):
        model = shipped(None, seed, quick, **params).set_params(device=device)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        _synchronize(device)
        fit_s = time.perf_counter() - start
        for rate, X_missing in tests.items():
            for mode in MODES:
                model.set_params(selection=mode)
                start = time.perf_counter()
                predicted = model.predict(X_missing)
                _synchronize(device)
                rows.append({"dataset": dataset, "seed": seed, "quick": quick, "device": device, "where": where,
                             "torch": torch.__version__, "model": label, "single_passes": model.single_passes,
                             "fit_s": fit_s,
                             "n_epochs": len(model.net_.history), "rate": rate, "method": mode,
                             "predict_s": time.perf_counter() - start,
                             "accuracy": float(np.mean(predicted == y_test))})
        print(f"[{dataset}] seed {seed} {label} on {where}: fit {fit_s:.1f} s", flush=True)
    return rows


def cpu_runs(paths=CPU_RECORDS, earlier_default=False):
    """Accuracy records and fit times of the dilemma runs on the CPU (the default recoverer's rows);
    with ``earlier_default``, the shipped model's are those of the defaults before single passes."""
    runs = [json.loads(path.read_text()) for path in paths if path.exists()]
    if earlier_default:  # the earlier default's shipped rows in place of the records' own
        runs = [{key: [row for row in run[key] if row["model"] != SHIPPED] for key in ("records", "fits")}
                for run in runs] + [json.loads(EARLIER_DEFAULT.read_text())]
    records, fits = [], []
    for run in runs:
        on_cpu = [row for row in run["records"] if row.get("device", "cpu") == "cpu"]
        records += [row for row in on_cpu if row["recoverer"] == "knn"]
        fits += [row for row in run["fits"]
                 if row["recoverer"] in ("knn", "default (knn)") and row.get("device", "cpu") == "cpu"]
    return pd.DataFrame(records), pd.DataFrame(fits)


def _same_seeds(cpu_rows, seeds):
    """Only a CPU figure over exactly the device run's seeds stands beside it."""
    return len(cpu_rows) > 0 and sorted(cpu_rows.seed.unique().tolist()) == seeds


def report(records, command):
    frame = pd.DataFrame(records)
    earlier = "single_passes" not in frame  # a run from before single passes became the default
    cpu, cpu_fits = (cpu_runs(earlier_default=earlier) if not frame.quick.any()
                     else (pd.DataFrame(), pd.DataFrame()))  # other splits
    where = ", ".join(sorted(frame["where"].unique()))
    lines = ["# DyMoClassifier's fit time on a device", "",
             f"Produced by `{command}` on {where} (torch {', '.join(sorted(frame.torch.unique()))}): "
             "`DyMoClassifier()` as shipped (default recoverer) and the paper's training, fitted on the data "
             "and seeds of the dilemma run, beside that run's CPU figures (`benchmarks/results/dilemma*.json`, the default "
             "recoverer's rows over the same seeds, else -; their thread count is on the dilemma pages). `predict` "
             "is timed once on the test "
             "set at the highest η, recovery included. Accuracy in %."]
    for dataset, part in frame.groupby("dataset", sort=False):
        seeds = sorted(part.seed.unique().tolist())
        top = part.rate.max()
        lines += ["", f"## {dataset} (seeds {seeds})", "",
                  "| model | fit here (s) | epochs here | fit on the CPU run (s) | epochs there | "
                  f"predict dymo, η = {top:.2f} (s) |", "|---|---|---|---|---|---|"]
        for label, fits in part.groupby("model", sort=False):
            there = (cpu_fits[(cpu_fits.dataset == dataset) & (cpu_fits.model == label)
                              & cpu_fits.seed.isin(seeds)] if len(cpu_fits) else cpu_fits)
            dymo = fits[(fits.rate == top) & (fits.method == "dymo")]
            cpu_cells = (f"{there.fit_s.mean():.1f} | {there.n_epochs.mean():.0f}" if _same_seeds(there, seeds)
                         else "- | -")
            lines.append(f"| {label} | {fits.groupby('seed').fit_s.first().mean():.1f} | "
                         f"{fits.groupby('seed').n_epochs.first().mean():.0f} | {cpu_cells} | "
                         f"{dymo.predict_s.mean():.2f} |")
        rates = sorted(part.rate.unique())
        lines += ["", "| model | method | " + " | ".join(f"η = {rate:.2f} here / CPU run" for rate in rates) + " |",
                  "|---|---|" + "---|" * len(rates)]
        for (label, mode), rows in part.groupby(["model", "method"], sort=False):
            cells = []
            for rate in rates:
                here = 100 * rows[rows.rate == rate].accuracy.mean()
                there = (cpu[(cpu.dataset == dataset) & (cpu.model == label) & (cpu.method == mode)
                             & (cpu.rate.round(6) == round(rate, 6)) & cpu.seed.isin(seeds)] if len(cpu) else cpu)
                cells.append(f"{here:.1f} / {100 * there.accuracy.mean():.1f}" if _same_seeds(there, seeds)
                             else f"{here:.1f} / -")
            lines.append(f"| {label} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    benchmark_main("device_fit", run_seed, report, argv, datasets=("polymnist_digits",), seeds=(0,),
                   options={"--device": dict(default="cpu", choices=["cpu", "cuda"])})


if __name__ == "__main__":
    main()
