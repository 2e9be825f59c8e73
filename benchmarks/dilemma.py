"""The discarding-imputation dilemma, measured with DyMoClassifier exactly as shipped.

For every data set, seed, recoverer and missing rate: ``DyMoClassifier(recoverer=R)`` with every
other setting at its default (``shipped``), the same with the paper's training
(``recovery_aware=False``), the simple pipelines a user would pick instead, and a bank of
pattern specialists (one logistic regression per missing pattern, trained on exactly the
observed modalities: what a recovered modality cannot add information beyond).

    python -m benchmarks.dilemma --jobs 2            # benchmarks/results/dilemma.md and benchmarks/results/dilemma.json
    python -m benchmarks.dilemma --quick              # smoke run into build/benchmarks/
    python -m benchmarks.dilemma --datasets polymnist_fashion --seeds 0 --recoverers knn --jobs 1 \
        --threads 2 --name dilemma_fashion            # 10,000 Fashion-MNIST tuples (apt package)
    python -m benchmarks.dilemma --params '{"n_subsets": 8}' --jobs 2 --name dilemma_n_subsets
                                                      # a candidate default, in place of the default
    python -m benchmarks.dilemma --datasets polymnist_fashion --seeds 1 --recoverers knn --parts networks \
        --device cuda --name dilemma_fashion_networks_1  # one part of a run, here the networks on a GPU;
                                                      # merge the parts' JSON with --report-from
    python -m benchmarks.dilemma --datasets polymnist_fashion --seeds 0 --recoverers simple --parts shipped \
        --name dilemma_fashion_simple_0               # another recoverer for a run that has the rest
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dymo_sklearn.datasets import apply_missing
from dymo_sklearn.experimental import DyMoResearchClassifier
from dymo_sklearn.recovery import MultimodalVAERecoverer, fit_recoverer

from .accuracy import baselines, flat
from .common import (
    CachedRecovery,
    load_split,
    output_folder,
    recoverers,
    with_recoverer,
    write_run_files,
)
from .late_fusion import best_at as best_late_fusion_at

DATASETS = ("polymnist_digits", "polymnist_mnist", "breast_cancer")
MODES = ("none", "all", "simultaneous", "iterative", "dymo")
SHIPPED = "shipped"
PAPER_TRAINING = "recovery_aware=False"
# The paper's training whatever the candidate: no recovered inputs, uniform subsets, no teachers.
PAPER_PARAMS = dict(recovery_aware=False, single_passes=False, teacher_weight=0.0)
SPECIALISTS = "pattern specialists (LogReg)"
PARTS = ("networks", "peers")
SHIPPED_ONLY = "shipped"  # a part naming only the shipped networks: more recoverers for a run that has the rest
PER_FIT = ("random_state", "device", "recoverer", "selection")  # set by the run, or changed after the fit


def shipped(recoverer, seed, quick, **params):
    """DyMoClassifier's defaults; only the recoverer, seed and device are set (and, for a smoke run,
    fewer epochs). Built as ``DyMoResearchClassifier`` (the same defaults), whose ablation modes
    (``simultaneous``, ``iterative``) and paper's training (``recovery_aware=False``) the page shows."""
    extra = dict(max_epochs=3) if quick else {}
    return DyMoResearchClassifier(recoverer=recoverer, random_state=seed, device="cpu", **extra, **params)


def evaluate(model, tests, y_test, add, label, recoverer):
    for rate, X_missing in tests.items():
        for mode in MODES:
            model.set_params(selection=mode)
            add(model=label, recoverer=recoverer, rate=rate, method=mode,
                accuracy=float(np.mean(model.predict(X_missing) == y_test)))


def pattern_specialists(X_train, y_train, X_missing, seed, bank):
    """Per sample, the prediction of a logistic regression trained on exactly its observed
    modalities; ``bank`` keeps the fitted specialists across missing rates."""
    names = list(X_train)
    observed = np.stack([~np.isnan(np.asarray(X_missing[n]).reshape(len(X_missing[n]), -1)).all(1) for n in names], 1)
    predictions = np.empty(len(observed), dtype=np.asarray(y_train).dtype)
    for pattern in np.unique(observed, axis=0):
        rows = (observed == pattern).all(1)
        chosen = tuple(n for n, keep in zip(names, pattern) if keep)
        if chosen not in bank:
            bank[chosen] = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
            bank[chosen].fit(flat({n: X_train[n] for n in chosen}), y_train)
        predictions[rows] = bank[chosen].predict(flat({n: np.asarray(X_missing[n])[rows] for n in chosen}))
    return predictions


def _recoverers(dataset, quick, seed):
    """The benchmark's imputers (benchmarks/common.py) and the multimodal VAE."""
    return {**recoverers(dataset, not quick),
            "mvae": MultimodalVAERecoverer(max_epochs=3 if quick else 60, random_state=seed, device="cpu")}


def run_seed(dataset, seed, quick, only_recoverers=None, params=None, device="cpu", parts=PARTS):
    """Every model of one (data set, seed); ``params`` changes DyMoClassifier's defaults in both
    the shipped model and the paper's training, as a new default would. ``device`` is where the
    networks run; ``parts`` chooses the networks, the peers and specialists, or both; ``"shipped"``
    names the shipped networks without the paper's training."""
    params = params or {}
    started = time.perf_counter()
    X_train, y_train, X_test, y_test, rates = load_split(dataset, seed, quick)
    tests = {float(rate): apply_missing(X_test, rate, random_state=1000 * seed + i) for i, rate in enumerate(rates)}
    records, fits = [], []

    def add(**row):
        records.append(dict(dataset=dataset, seed=seed, **row))

    def timed_fit(model, label, recoverer):
        start = time.perf_counter()
        model.set_params(device=device).fit(X_train, y_train)
        fits.append(dict(dataset=dataset, seed=seed, model=label, recoverer=recoverer, device=device,
                         threads=torch.get_num_threads(), fit_s=time.perf_counter() - start,
                         n_epochs=len(model.net_.history),
                         params={key: model.get_params()[key] for key in params}, settings=_settings(model)))
        return model

    if "networks" in parts or SHIPPED_ONLY in parts:
        _networks(dataset, seed, quick, only_recoverers, params, X_train, tests, y_test, timed_fit,
                  lambda **row: add(device=device, **row), with_paper="networks" in parts)
    if "peers" in parts:
        _peers(dataset, seed, quick, X_train, y_train, tests, y_test, add)
    print(f"[{dataset}] seed {seed}: {time.perf_counter() - started:.0f}s", flush=True)
    return records, fits


def _networks(dataset, seed, quick, only_recoverers, params, X_train, tests, y_test, timed_fit, add,
              with_paper=True):
    """The paper's training (unless ``with_paper`` is False) and the shipped model with every recoverer."""
    # The paper's training does not depend on the recoverer (complete training data): fit once, swap it.
    paper = None
    if with_paper:
        paper = timed_fit(shipped(None, seed, quick, **{**params, **PAPER_PARAMS}), PAPER_TRAINING,
                          "default (knn)")
    for name, recoverer in _recoverers(dataset, quick, seed).items():
        if only_recoverers and name not in only_recoverers:
            continue
        multimodal = getattr(recoverer, "accepts_multimodal_input", False)
        if paper is not None:
            if multimodal:  # CachedRecovery flattens its input: swap without the cache
                swapped = copy.copy(paper)
                swapped.recoverer, swapped.recoverer_ = recoverer, fit_recoverer(recoverer, X_train)
            else:
                swapped = with_recoverer(paper, recoverer, X_train)
            evaluate(swapped, tests, y_test, add, PAPER_TRAINING, name)
        # Shipped: recovery-aware training depends on the recoverer. "knn" is the default recoverer.
        model = timed_fit(shipped(None if name == "knn" else clone(recoverer), seed, quick, **params), SHIPPED, name)
        if not multimodal:
            model.recoverer_ = CachedRecovery(model.recoverer_)
        evaluate(model, tests, y_test, add, SHIPPED, name)


def _peers(dataset, seed, quick, X_train, y_train, tests, y_test, add):
    """The simple pipelines and the bank of pattern specialists (scikit-learn, on the CPU)."""
    for name, baseline in baselines(dataset, not quick, seed).items():
        baseline.fit(flat(X_train), y_train)
        for rate, X_missing in tests.items():
            add(model="peer", recoverer="-", rate=rate, method=name,
                accuracy=float(np.mean(baseline.predict(flat(X_missing)) == y_test)))
    bank = {}
    for rate, X_missing in tests.items():
        add(model="reference", recoverer="-", rate=rate, method=SPECIALISTS,
            accuracy=float(np.mean(pattern_specialists(X_train, y_train, X_missing, seed, bank) == y_test)))


def _task(args):
    *task, threads = args
    torch.set_num_threads(threads)
    return run_seed(*task)


def _call_args(params):
    return "".join(f", {key}={value!r}" for key, value in (params or {}).items())


def _now_default(params):
    """A sentence naming the measured parameters that DyMoClassifier now has as defaults, or ''."""
    defaults = DyMoResearchClassifier().get_params()  # DyMoClassifier's defaults, research options included
    adopted = [f"`{key}={value!r}`" for key, value in (params or {}).items() if defaults.get(key) == value]
    return (f" {', '.join(adopted)} {'is' if len(adopted) == 1 else 'are'} the default now: this run measured "
            "it as a candidate before it became one, so these are the shipped model's figures.") if adopted else ""


def _settings(model):
    """The model's parameters that a JSON record can keep, less those a run sets per fit."""
    return {key: value for key, value in model.get_params().items()
            if isinstance(value, (bool, int, float, str, type(None))) and key not in PER_FIT}


def _run_params(runs):
    """The DyMoClassifier parameters of runs merged with --report-from.

    Runs without networks (``--parts peers``) have none. Runs that passed the same parameters
    merge. Runs that passed different ones merge only when every fit of every run recorded its
    settings and these agree model by model: a candidate that has since become the default and
    a run made after it did build the same networks. A run made before settings were recorded
    cannot show that, so it merges only with runs that passed exactly its parameters."""
    with_networks = [run for run in runs if run["fits"]] or runs
    passed = {json.dumps(run.get("params", {}), sort_keys=True) for run in with_networks}
    if len(passed) > 1:
        fits = [fit for run in with_networks for fit in run["fits"]]
        by_model = {}
        for fit in fits:
            by_model.setdefault(fit["model"], set()).add(json.dumps(fit.get("settings"), sort_keys=True))
        if any("settings" not in fit for fit in fits) or any(len(found) > 1 for found in by_model.values()):
            raise ValueError(f"These runs changed different parameters and cannot be merged: {sorted(passed)}.")
    return {key: value for run in with_networks for key, value in run.get("params", {}).items()}


def _first_fits(runs):
    """The fit times of merged runs; where several timed the same (data set, model, recoverer), the
    first run's only, since a run that adds seeds later may have shared the cores with other work."""
    def timed(fit):
        return fit["dataset"], fit["model"], fit["recoverer"], fit.get("device", "cpu")

    fits, seen = [], set()
    for run in runs:
        fits += [fit for fit in run["fits"] if timed(fit) not in seen]
        seen |= {timed(fit) for fit in run["fits"]}
    return fits


def _in_page_order(groups):
    """The networks by recoverer in the order of ``_recoverers`` (the paper's training before the shipped
    model), then the peers and the specialists: merged runs that add a recoverer keep one order."""
    # Breast cancer is the set that evaluates every recoverer, whatever the run's size.
    order = {name: rank for rank, name in enumerate(_recoverers("breast_cancer", quick=True, seed=0))}

    def rank(item):
        (model, recoverer, _), _rows = item
        if model not in (SHIPPED, PAPER_TRAINING):
            return (1, 0)
        return (0, order.get(recoverer, len(order)))
    return sorted(groups, key=rank)  # stable: the run's own order within a rank


def _seeds_by_row(part):
    """A sentence naming each network row's seeds where rows cover different seeds ([] otherwise)."""
    networks = part[part.model.isin([SHIPPED, PAPER_TRAINING])]
    seeds = networks.groupby(["model", "recoverer"], sort=False).seed.unique()
    if len({tuple(sorted(found)) for found in seeds}) <= 1:
        return []
    listed = "; ".join(f"{model} with {recoverer}: {sorted(int(seed) for seed in found)}"
                       for (model, recoverer), found in seeds.items())
    return ["", f"The rows cover different seeds, each mean ± sd and safety figure over its own ({listed})."]


ROW_KEY = ["dataset", "seed", "model", "recoverer", "rate", "method"]


def one_row_each(records):
    """The records as a frame, one row per :data:`ROW_KEY`. Runs merged with --report-from repeat
    the peers and specialists of a seed, which must agree; two runs that disagree on a figure (a
    network fitted twice, on two devices or two machines) cannot both stand on the page."""
    frame = pd.DataFrame(records)
    spread = frame.groupby(ROW_KEY, sort=False).accuracy.agg(lambda found: found.max() - found.min())
    if (spread > 0).any():
        dataset, seed, model, recoverer, rate, method = spread[spread > 0].index[0]
        raise ValueError(f"The merged runs disagree on {dataset}, seed {seed}, {model} with {recoverer}, "
                         f"{method} at η={rate:.2f} ({(spread > 0).sum()} figure(s) in all): merge one run per "
                         "seed and model.")
    return frame.drop_duplicates(ROW_KEY)


def _means(frame, keys):
    """Mean accuracy per group, summed as :func:`_mean_sd` sums a cell (pandas' own mean can round
    a figure such as 74.85 the other way)."""
    return frame.groupby(keys).accuracy.agg(lambda found: np.mean(found.to_numpy()))


def _mean_sd(values):
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def report(records, fits, command=("--jobs", "2"), threads=1, params=None):
    frame = one_row_each(records)
    frame["device"] = frame["device"].fillna("cpu") if "device" in frame else "cpu"  # records before --device
    devices = frame[frame.model.isin([SHIPPED, PAPER_TRAINING])].groupby("device").seed.unique()
    lines = ["# The dilemma: DyMoClassifier as shipped, every recoverer, against the simple pipelines", "",
             f"Generated by `python -m benchmarks.dilemma {shlex.join(command)}`"
             + (" from the records of the runs listed in [figures.md](figures.md)" if "--report-from" in command else "")
             + f" ({frame.seed.nunique()} seed(s), "
             "mean ± sd, accuracy in %). "
             f"`{SHIPPED}`: `DyMoClassifier(recoverer=R, random_state=seed, device={_device_argument(devices)}"
             f"{_call_args(params)})`, every other setting at its default;{_now_default(params)} `{PAPER_TRAINING}`: "
             f"the same with the paper's training.{_devices_sentence(devices)} The `knn` rows "
             "of the shipped model use the default recoverer (`KNNRecoverer`, KNNImputer's result); the "
             "others pass the imputer listed in `benchmarks/common.py`. Hand-written reading: "
             "[benchmark_notes.md](benchmark_notes.md).", ""]
    for dataset, part in frame.groupby("dataset", sort=False):
        rates = sorted(part.rate.unique())
        header = "| model | recoverer | method | " + " | ".join(f"η={r:.2f}" for r in rates) + " |"
        lines += [f"## {dataset}", "", header, "|" + "---|" * (3 + len(rates))]
        groups = _in_page_order(part.groupby(["model", "recoverer", "method"], sort=False))
        for (model, recoverer, method), rows in groups:
            cells = [_mean_sd(rows[rows.rate == r].accuracy) for r in rates]
            lines.append(f"| {model} | {recoverer} | {method} | " + " | ".join(cells) + " |")
        if not (part.model == SHIPPED).any():  # a run of the peers only
            lines.append("")
            continue
        lines += ["", "Safety, dymo − none of the same model (worst η, points):", "",
                  "| model | " + " | ".join(sorted(part[part.model == SHIPPED].recoverer.unique())) + " |",
                  "|---|" + "---|" * part[part.model == SHIPPED].recoverer.nunique()]
        for model in (SHIPPED, PAPER_TRAINING):
            cells = []
            for recoverer in sorted(part[part.model == SHIPPED].recoverer.unique()):
                sub = part[(part.model == model) & (part.recoverer == recoverer)]
                if sub.empty:  # a run of the shipped networks only (--parts shipped)
                    cells.append("—")
                    continue
                mean = sub.groupby(["rate", "method"]).accuracy.mean().unstack()
                cells.append(f"{100 * (mean['dymo'] - mean['none']).min():+.1f}")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += _seeds_by_row(part)
        if not (((part.model == SHIPPED) & (part.recoverer == "knn")).any() and (part.model == "peer").any()
                and (part.model == "reference").any()):
            lines.append("")
            continue  # the comparisons below are for the default recoverer, against the peers
        seeds = {label: sorted(int(seed) for seed in rows.seed.unique()) for label, rows in
                 (("the shipped model", part[(part.model == SHIPPED) & (part.recoverer == "knn")]),
                  ("the paper's training", part[part.model == PAPER_TRAINING]),
                  ("the peers", part[part.model == "peer"]), ("the specialists", part[part.model == "reference"]))}
        if len({json.dumps(found) for found in seeds.values() if found}) > 1:
            lines += ["", "Comparisons left out: the models cover different seeds ("
                      + "; ".join(f"{label} {found}" for label, found in seeds.items() if found) + ").", ""]
            continue
        top = rates[-1]
        at_top = _means(part[part.rate == top], ["model", "recoverer", "method"])
        dymo = at_top[(SHIPPED, "knn", "dymo")]
        peers = {method: value for (model, _, method), value in at_top.items() if model == "peer"}
        peers["none"], peers["all"] = at_top[(SHIPPED, "knn", "none")], at_top[(SHIPPED, "knn", "all")]
        best = max(peers, key=peers.get)
        specialist = at_top[("reference", "-", SPECIALISTS)]
        lines += ["", f"At η = {top:.2f}: shipped dymo (default recoverer) {100 * dymo:.1f}; best of the peers and "
                  f"its own none/all: {best} {100 * peers[best]:.1f} (gap {100 * (dymo - peers[best]):+.1f}); "
                  f"pattern specialists {100 * specialist:.1f} (gap {100 * (dymo - specialist):+.1f}).", ""]
        late = best_late_fusion_at(dataset, top, seeds["the shipped model"])
        if late is not None:
            lines += [f"Best late fusion at η = {top:.2f} (`late_fusion.json`, the same splits and masks): "
                      f"{late[0]} {100 * late[1]:.1f} (gap {100 * (dymo - late[1]):+.1f}).", ""]
        means = _means(part, ["model", "recoverer", "method", "rate"])
        gaps = []
        for rate in rates:
            rivals = [means[("peer", "-", m, rate)] for m in part[part.model == "peer"].method.unique()]
            rivals += [means[(SHIPPED, "knn", "none", rate)], means[(SHIPPED, "knn", "all", rate)]]
            gaps.append((means[(SHIPPED, "knn", "dymo", rate)] - max(rivals), rate))
        worst, worst_rate = min(gaps, key=lambda gap: (round(gap[0], 9), gap[1]))  # a tie: the lowest η
        lines += [f"Worst gap of shipped dymo to the best of those over every η: {100 * worst:+.1f} (η = "
                  f"{worst_rate:.2f}).", "",
                  f"Ablation at η = {top:.2f} with the default recoverer (none / all / S / I / I+C):", ""]
        for model in (SHIPPED, PAPER_TRAINING):
            if (model, "knn", "none", top) not in means:  # a run without the paper's training
                continue
            values = " / ".join(f"{100 * means[(model, 'knn', m, top)]:.1f}" for m in MODES)
            lines.append(f"- {model}: {values}")
        lines.append("")
    if not fits:  # a run of the peers only
        return "\n".join(lines) + "\n"
    fit_frame = pd.DataFrame(fits)
    fit_frame["device"] = fit_frame["device"].fillna("cpu") if "device" in fit_frame else "cpu"
    # Fits from before threads were recorded ran with the thread count the report is given.
    fit_frame["threads"] = fit_frame["threads"].fillna(threads).astype(int) if "threads" in fit_frame else threads
    off_cpu = (fit_frame.device != "cpu").any()  # a device column only where some fit ran elsewhere
    mixed = fit_frame.threads.nunique() > 1  # a threads column only where fits used different counts
    fit_frame = fit_frame.groupby(["dataset", "model", "recoverer", "device", "threads"]).agg(
        fit_s=("fit_s", "mean"), n_epochs=("n_epochs", "mean"), n_fits=("fit_s", "size"))
    per_fit = "" if mixed else f"{int(fit_frame.index.get_level_values('threads')[0])} torch thread(s) per fit, "
    lines += [f"## Fit time ({per_fit}mean over seeds)", "",
              "The paper's training is fitted once per seed and run (with the default recoverer) and shares its "
              "network across recoverers; the shipped model is fitted per recoverer, its time including the "
              "recoverer's cross-fitted and final fits.", "",
              "| data set | model | recoverer | " + ("device | " if off_cpu else "") + ("threads | " if mixed else "")
              + "fit (s) | epochs | fits |",
              "|---|---|---|" + ("---|" if off_cpu else "") + ("---|" if mixed else "") + "---|---|---|"]
    lines += [f"| {d} | {m} | {r} | " + (f"{device} | " if off_cpu else "") + (f"{n_threads} | " if mixed else "")
              + f"{row.fit_s:.1f} | {row.n_epochs:.1f} | {row.n_fits} |"
              for (d, m, r, device, n_threads), row in fit_frame.iterrows()]
    return "\n".join(lines) + "\n"


def _device_argument(devices):
    """The ``device`` argument the networks got: ``"cpu"``, or the devices in use when runs differ."""
    return " or ".join(f'"{device}"' for device in sorted(devices.index)) if len(devices) else '"cpu"'


def _devices_sentence(devices):
    """Which seeds' networks ran where, when some ran off the CPU ('' otherwise)."""
    if set(devices.index) <= {"cpu"}:
        return ""
    where = "; ".join(f"seeds {sorted(int(seed) for seed in seeds)} on {device}" for device, seeds in devices.items())
    return (f" Networks by device: {where}. A network fitted on a GPU is not the CPU's bit for bit (its "
            "floating-point sums run in another order), so the seeds differ by more than their split.")


def _write_run(name, quick, run, command, threads, merged=False):
    """``<name>.json`` (records, fits, params) and its page ``<name>.md``, by :func:`write_run_files`."""
    folder = output_folder(quick)
    write_run_files(folder, name, json.dumps(run, separators=(",", ":")),
                    lambda: report(run["records"], run["fits"], command, threads, run["params"]), merged)
    print(f"wrote {folder / name}.md")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, small data, 3 epochs")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (0 when --quick)")
    parser.add_argument("--recoverers", nargs="+", default=None, help="default: every one of the data set")
    parser.add_argument("--name", default=None, help="output name (default: dilemma, or dilemma_quick)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the networks run")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=(*PARTS, SHIPPED_ONLY),
                        help="networks, peers (the simple pipelines and the pattern specialists), or both; "
                             "shipped: only the shipped networks (no paper's training)")
    parser.add_argument("--params", type=json.loads, default={},
                        help="JSON of DyMoClassifier parameters that replace its defaults (a candidate default)")
    parser.add_argument("--report-from", nargs="+", default=None, metavar="JSON",
                        help="run nothing: write benchmarks/results/<name>.md and .json from the records of these runs (fit times: "
                             "the first run that timed a data set, model and recoverer)")
    args = parser.parse_args(argv)
    if args.report_from:
        runs = [json.loads(open(path).read()) for path in args.report_from]
        records = [row for run in runs for row in run["records"]]
        fits = _first_fits(runs)
        params = _run_params(runs)
        _write_run(args.name or "dilemma", args.quick, dict(records=records, fits=fits, params=params),
                   ["--report-from", *args.report_from], args.threads, merged=True)
        return
    seeds = args.seeds or ((0,) if args.quick else (0, 1, 2))
    tasks = [(dataset, seed, args.quick, args.recoverers, args.params, args.device, tuple(args.parts), args.threads)
             for dataset in args.datasets for seed in seeds]
    tasks.sort(key=lambda task: task[0] != "polymnist_mnist")  # the longest first
    if args.jobs == 1:  # in this process: a forked worker cannot use CUDA once the parent has touched it
        results = [_task(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_task, tasks))
    records = [row for result in results for row in result[0]]
    fits = [row for result in results for row in result[1]]
    name = args.name or ("dilemma_quick" if args.quick else "dilemma")
    _write_run(name, args.quick, dict(records=records, fits=fits, params=args.params),
               argv if argv is not None else sys.argv[1:], args.threads)


if __name__ == "__main__":
    main()
