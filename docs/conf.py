"""Sphinx configuration. Build with one command, from the repository root:

    python -m sphinx -W --keep-going -b html docs docs/_build/html

It runs the ``examples/plot_*.py`` gallery and the clinical-style notebook (``.ci/run`` prints
how long that takes) and needs no network (no intersphinx).
"""

import shutil
from pathlib import Path

import matplotlib  # noqa: E402
import torch  # noqa: E402

matplotlib.use("Agg")  # in this process only: the notebook's kernel draws inline

import dymo_sklearn  # noqa: E402
# The gallery links names to their modules even when it does not run the examples (a quick build
# with plot_gallery=0), and IterativeImputer resolves only once this is imported.
import sklearn.experimental.enable_iterative_imputer  # noqa: E402, F401

# Tiny example networks gain nothing from intra-op threads; CI machines are small.
torch.set_num_threads(1)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The notebook lives in examples/; Sphinx only reads its source folder, so copy it in.
shutil.copyfile(ROOT / "examples" / "clinical_style.ipynb", HERE / "clinical_style.ipynb")

project = "dymo_sklearn"
author = "dymo_sklearn contributors"
copyright = "2026, dymo_sklearn contributors"
release = dymo_sklearn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",  # Markdown pages (myst) and executed notebooks
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "auto_examples/*.ipynb",  # sphinx-gallery's downloadable notebooks are not pages
    "auto_examples/*.py",
    "auto_examples/*.zip",
]

# Markdown and notebooks.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # the notebook runs at every build: a broken notebook fails it
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_excludepatterns = ["auto_examples/*"]

# API reference.
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# Example gallery: only the quick plot_* examples run; quickstart.py is shown, not run.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "ignore_pattern": r"(__init__|conftest|quickstart)\.py",  # quickstart: its own page, not run
    "abort_on_example_error": True,
    "download_all_examples": False,
    "reset_modules": ("matplotlib",),
    "remove_config_comments": True,
}

html_theme = "alabaster"
html_theme_options = {"description": "Inference-time dynamic modality selection for scikit-learn",
                      "fixed_sidebar": True}
html_static_path = []
