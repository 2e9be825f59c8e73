"""Every figure of the README's results table and fit times comes from a committed record.

The README rounds as the benchmark pages do (mean over seeds 0-2, in %, one decimal): each
displayed figure must equal the record's, rounded the same way.
"""

import re

import numpy as np
import pytest

from ._records import ROOT, best_late_fusion, best_peer, load, mean_accuracy, shipped_fit_seconds, table, top_rate

README = (ROOT / "README.md").read_text()
DOCS_PAGE = (ROOT / "docs" / "benchmarks.md").read_text()

DATASETS = {"digits": "polymnist_digits", "MNIST": "polymnist_mnist", "breast cancer": "breast_cancer",
            "Fashion-MNIST": "polymnist_fashion"}


def dataset_of(label):
    names = [key for key in DATASETS if label == key or label.startswith(f"{key},")]
    assert len(names) == 1, label
    return DATASETS[names[0]]


def expected(dataset, column):
    if column.startswith("discard"):
        return mean_accuracy(dataset, "shipped", "knn", "none")
    if column.startswith("fuse all"):
        return mean_accuracy(dataset, "shipped", "knn", "all")
    if column == "DyMo":
        return mean_accuracy(dataset, "shipped", "knn", "dymo")
    if column == "best simple pipeline":
        return best_peer(dataset)[1]
    raise AssertionError(f"a column the test does not know: {column!r}")


@pytest.mark.parametrize("text, heading", [(README, "## Results"),
                                           (DOCS_PAGE, "## DyMo against discarding, fusing and the simple pipelines")])
def test_results_table_matches_the_records(text, heading):
    header, rows = table(text, heading)
    assert header[:2] == ["data set", "η"], header
    assert {dataset_of(row[0]) for row in rows} == set(DATASETS.values()), "a data set is missing"
    checked = 0
    for row in rows:
        dataset = dataset_of(row[0])
        assert row[1] == f"{top_rate(dataset):.2f}", (row, "not the highest missing rate")
        for column, cell in zip(header[2:], row[2:]):
            if column == "late fusion":
                late = best_late_fusion(dataset)
                if late is None:  # not measured yet: the cell must not pretend otherwise
                    assert cell == "not run", (dataset, cell)
                    continue
                assert cell.startswith(f"{late[1]:.1f}") and late[0] in cell, (dataset, cell, late)
                checked += 1
                continue
            number = re.match(r"\d+\.\d", cell)
            assert number, (column, cell)
            assert number.group() == f"{expected(dataset, column):.1f}", (dataset, column, cell)
            if column == "best simple pipeline" and "(" in cell:
                assert best_peer(dataset)[0] in cell, (dataset, cell)
            checked += 1
    assert checked >= 16


def test_readme_fit_times_match_the_records():
    section = README[README.index("**Threads and fit time.**"):README.index("## An image and a table")]
    times = dict(re.findall(r"^- (digits|MNIST|breast cancer|Fashion-MNIST),.*?: (\d+) s", section, re.M))
    assert set(times) == set(DATASETS), times
    for label, seconds in times.items():
        assert int(seconds) == round(shipped_fit_seconds(DATASETS[label])), (label, seconds)
    gpu = re.search(r"(\d+) s on one (NVIDIA \w+) GPU", section)
    rows = [row for row in load("device_fit_fashion.json") if row["model"] == "shipped"]
    assert gpu and {round(row["fit_s"]) for row in rows} == {int(gpu.group(1))}, gpu
    assert {row["where"] for row in rows} == {gpu.group(2)}


def test_readme_fit_time_ratios_match_the_side_by_side_record():
    """The range of the defaults' fit time against the earlier defaults' is the record's."""
    section = README[README.index("**Threads and fit time.**"):README.index("## An image and a table")]
    low, high = re.search(r"take\s+(\d+\.\d)× to\s+(\d+\.\d)×", section).groups()
    rows = load("default_cost.json")
    ratios = []
    for dataset in {row["dataset"] for row in rows}:
        fit = {model: np.mean([row["fit_s"] for row in rows if (row["dataset"], row["model"]) == (dataset, model)])
               for model in ("shipped", "earlier default")}
        ratios.append(fit["shipped"] / fit["earlier default"])
    assert (low, high) == (f"{min(ratios):.1f}", f"{max(ratios):.1f}"), ratios


def test_readme_is_short_and_keeps_its_two_commands():
    assert len(README.splitlines()) <= 100
    section = README[README.index("## The two commands"):]
    section = section[:section.index("\n## ", 1)]
    assert section.count("```bash\n") == 2
    assert "python -m pytest -q -n 2" in section
    assert "python examples/quickstart.py" in section


def test_readme_quotes_the_quickstart_in_its_printed_format():
    block = re.search(r"```text\n(== results ==\n.*?== end ==)\n```", README, re.S)
    assert block, "the quickstart's printed results are not quoted"
    names = [line.split()[0] for line in block.group(1).splitlines()[1:-1]]
    assert names[:3] == ["accuracy_none", "accuracy_all", "accuracy_dymo"], names
