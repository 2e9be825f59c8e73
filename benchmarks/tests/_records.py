"""Reading the committed benchmark records (no fitting): shared by the tests of this folder."""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
DILEMMA = ("dilemma.json", "dilemma_fashion.json")
SEEDS = (0, 1, 2)


@lru_cache(maxsize=None)
def load(name):
    return json.loads((RESULTS / name).read_text())


def dilemma_records():
    return [row for name in DILEMMA for row in load(name)["records"]]


def dilemma_fits():
    return [row for name in DILEMMA for row in load(name)["fits"]]


def top_rate(dataset):
    return max(row["rate"] for row in dilemma_records() if row["dataset"] == dataset)


def mean_accuracy(dataset, model, recoverer, method, rate=None):
    """Mean accuracy in % over seeds 0-2 at ``rate`` (default: the data set's highest), as the
    pages compute it; fails unless exactly those three seeds are recorded."""
    rate = top_rate(dataset) if rate is None else rate
    rows = [row for row in dilemma_records()
            if (row["dataset"], row["model"], row["recoverer"], row["method"]) == (dataset, model, recoverer, method)
            and row["rate"] == rate and row["seed"] in SEEDS]
    assert sorted(row["seed"] for row in rows) == list(SEEDS), (dataset, model, recoverer, method, rows)
    return float(np.mean([100 * row["accuracy"] for row in rows]))


PEERS = ("KNNImputer + LogReg", "IterativeImputer + LogReg", "HGB (native NaN)")


def best_peer(dataset):
    """(name, mean accuracy in %) of the best simple pipeline at the highest missing rate."""
    means = {peer: mean_accuracy(dataset, "peer", "-", peer) for peer in PEERS}
    best = max(PEERS, key=means.get)
    return best, means[best]


def shipped_fit_seconds(dataset):
    """Mean fit time (s) of the shipped model with the default recoverer, over the fits recorded."""
    times = [fit["fit_s"] for fit in dilemma_fits()
             if (fit["dataset"], fit["model"], fit["recoverer"]) == (dataset, "shipped", "knn")]
    assert times, dataset
    return float(np.mean(times))


def table(text, heading):
    """The first Markdown table under ``heading``: a list of rows, each a list of stripped cells."""
    lines = text.splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table under {heading!r}"
    return rows[0], rows[2:]


def best_late_fusion(dataset):
    """(method, mean accuracy in %) of the best late fusion at the highest missing rate, over
    seeds 0-2 of ``late_fusion.json``; None where the data set was not run."""
    rows = [row for row in load("late_fusion.json")["records"] if row["dataset"] == dataset]
    if not rows:
        return None
    rate = max(row["rate"] for row in rows)
    means = {}
    for method in sorted({row["method"] for row in rows}):
        seeds = [row for row in rows if row["method"] == method and row["rate"] == rate and row["seed"] in SEEDS]
        assert sorted(row["seed"] for row in seeds) == list(SEEDS), (dataset, method)
        means[method] = float(np.mean([100 * row["accuracy"] for row in seeds]))
    best = max(means, key=means.get)
    return best, means[best]
