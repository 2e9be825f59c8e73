"""Candidate training rules (issue 33): the shipped model against the candidate.

The shipped training fuses 8 distinct random subsets of the 2^M - 1 per batch; the candidates
are ``DyMoResearchClassifier(single_passes=True)``, which fuses every modality alone and random
subsets of two or more, 8 passes in all where the subsets allow, and that with per-modality
teachers (``teacher_weight=1.0``). This script reads runs of ``benchmarks.dilemma`` in its
record format, the shipped model's and the candidate's, on the same splits and masks, and sets
DyMo, its own ``none`` and ``all`` side by side per data set, recoverer and missing rate, with
the best late fusion of ``late_fusion.json``. A (data set, recoverer) comes from the first
``--after`` run that has it.

    python -m benchmarks.dilemma --params '{"single_passes": true}' --parts shipped   # a candidate's runs
    python -m benchmarks.single_passes --before benchmarks/results/dilemma.json \
        benchmarks/results/dilemma_features.json --after benchmarks/results/single_passes_runs.json
    python -m benchmarks.single_passes --name candidate --before benchmarks/results/dilemma.json \
        benchmarks/results/dilemma_fashion.json benchmarks/results/dilemma_features.json \
        --after benchmarks/results/teachers_runs.json benchmarks/results/single_passes_runs.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from . import late_fusion
from .common import write_report

METHODS = ("dymo", "none", "all")


def _shipped(paths):
    """The shipped rows and fits of the runs; a (data set, recoverer) comes wholly from the first
    run that has it, so a later run's other setting never mixes in."""
    records, fits, claimed = [], [], set()
    for path in paths:
        run = json.loads(Path(path).read_text())
        rows = [row for row in run["records"] if row["model"] == "shipped"]
        mine = {(row["dataset"], row["recoverer"]) for row in rows} - claimed
        records += [row for row in rows if (row["dataset"], row["recoverer"]) in mine]
        fits += [fit for fit in run["fits"] if fit["model"] == "shipped" and (fit["dataset"], fit["recoverer"]) in mine]
        claimed |= mine
    frame = pd.DataFrame(records).drop_duplicates(["dataset", "seed", "recoverer", "rate", "method"])
    return frame[frame.method.isin(METHODS)], pd.DataFrame(fits)


def compare(before_paths, after_paths):
    """Rows of (data set, recoverer, rate, method, seeds, before, after) over the seeds both runs
    have, and (data set, recoverer, before fit s, after fit s)."""
    before, before_fits = _shipped(before_paths)
    after, after_fits = _shipped(after_paths)
    key = ["dataset", "recoverer", "rate", "method"]
    rows, fits = [], []
    for (dataset, recoverer), part in after.groupby(["dataset", "recoverer"], sort=False):
        old = before[(before.dataset == dataset) & (before.recoverer == recoverer)]
        seeds = sorted(set(part.seed) & set(old.seed))
        if not seeds:
            continue
        means = {name: frame[frame.seed.isin(seeds)].groupby(key).accuracy.mean()
                 for name, frame in (("before", old), ("after", part))}
        for index in means["after"].index:
            rows.append(dict(zip(key, index), seeds=[int(seed) for seed in seeds],
                             before=float(means["before"][index]), after=float(means["after"][index])))
        timed = [frame[(frame.dataset == dataset) & (frame.recoverer == recoverer)
                       & frame.seed.isin(seeds)].fit_s.mean() for frame in (before_fits, after_fits)]
        settings = {json.dumps(params, sort_keys=True) for params in after_fits[(after_fits.dataset == dataset)
                    & (after_fits.recoverer == recoverer)].params}
        fits.append(dict(dataset=dataset, recoverer=recoverer, before_s=float(timed[0]), after_s=float(timed[1]),
                         params=[json.loads(setting) for setting in sorted(settings)]))
    return dict(rows=rows, fits=fits)


def report(run, command):
    rows = pd.DataFrame(run["rows"])
    lines = ["# Candidate training rules: the shipped model (before) against the candidate (after)",
             "", f"`{command}`", "",
             ("Accuracy (%), mean over the seeds both runs have, on the same splits and masks: `before` is "
              "`DyMoClassifier()` as shipped, fusing 8 random subsets per training batch; `after` the candidate "
              "whose `DyMoResearchClassifier` parameters each section names. `single_passes=True` fuses every "
              "modality alone and random larger subsets, 8 passes in all where the subsets allow (with 3 "
              "modalities both fuse all 7 subsets, so breast cancer differs only by the random draws); "
              "`teacher_weight=1.0` adds the per-modality teachers, which only vector modalities get (a fit "
              "without them is unchanged, so image sets need no run of their own). `best late fusion`: the best "
              "of `late_fusion.json` at that rate."), ""]
    fits = pd.DataFrame(run["fits"])
    for (dataset, recoverer), part in rows.groupby(["dataset", "recoverer"], sort=False):
        rates = sorted(part.rate.unique())
        seeds = part.seeds.iloc[0]
        params = fits[(fits.dataset == dataset) & (fits.recoverer == recoverer)].params
        after = ("; ".join(", ".join(f"{k}={v!r}" for k, v in p.items()) for p in params.iloc[0])
                 if "params" in fits and len(params) else "")
        lines += [f"## {dataset}, {recoverer} (seeds {', '.join(map(str, seeds))})", "",
                  *([f"`after`: {after}.", ""] if after else []),
                  "| method | " + " | ".join(f"η = {rate:.2f}" for rate in rates) + " |",
                  "|---|" + "---|" * len(rates)]
        for method in METHODS:
            cells = part[part.method == method].set_index("rate")
            if cells.empty:
                continue
            lines.append(f"| {method} | " + " | ".join(
                f"{100 * cells.before[rate]:.1f} → {100 * cells.after[rate]:.1f} "
                f"({100 * (cells.after[rate] - cells.before[rate]):+.1f})" for rate in rates) + " |")
        best = [late_fusion.best_at(dataset, rate, seeds) for rate in rates]
        if all(found is not None for found in best):
            lines.append("| best late fusion | " + " | ".join(f"{100 * score:.1f} {method}" for method, score in best)
                         + " |")
        lines.append("")
    lines += ["## Fit time (s, mean over the seeds, as the two runs recorded them)", "",
              "| data set | recoverer | before | after |", "|---|---|---|---|"]
    lines += [f"| {fit.dataset} | {fit.recoverer} | {fit.before_s:.0f} | {fit.after_s:.0f} |"
              for fit in fits.itertuples()]
    lines += ["", "The two runs were made at other times, under other load on the machine, so these times do not "
              "compare; the same number of passes per batch costs the same. " + run.get("note", ""), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", nargs="+", required=True, metavar="JSON", help="the previous default's runs")
    parser.add_argument("--after", nargs="+", required=True, metavar="JSON", help="the new default's runs")
    parser.add_argument("--name", default="single_passes")
    parser.add_argument("--note", default="", help="a sentence for the page: a timing made in the same conditions")
    args = parser.parse_args(argv)
    write_report("single_passes", False, {**compare(args.before, args.after), "note": args.note},
                 lambda run, command: report(run, command), argv if argv is not None else sys.argv[1:],
                 stem=args.name)


if __name__ == "__main__":
    main()
