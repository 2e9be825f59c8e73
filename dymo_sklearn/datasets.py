"""Offline multimodal data sets and a missing-modality protocol."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_sample_images
from sklearn.utils import check_random_state

from ._input import MultimodalDict, validate_modalities

__all__ = ["make_multiview_digits", "load_breast_cancer_views", "apply_missing"]


def _backgrounds(side, n_modalities):
    """One grayscale texture per modality, cut from scikit-learn's sample photos, in [0, 1]."""
    photos = [image.mean(axis=2) / 255.0 for image in load_sample_images().images]
    textures = []
    for m in range(n_modalities):
        photo = photos[m % len(photos)]
        scale = 2 + m // len(photos)  # later modalities see the photo at a coarser scale
        height, width = (np.array(photo.shape) // scale) * scale
        small = photo[:height, :width].reshape(height // scale, scale, width // scale, scale).mean(axis=(1, 3))
        textures.append(small)
    return textures


def make_multiview_digits(n_modalities=3, n_samples=None, *, background=0.5, random_state=0):
    """PolyMNIST-like data from scikit-learn's 8x8 digits.

    Each sample is a tuple of ``n_modalities`` *different* real digit images of the *same* class,
    each pasted on a texture specific to its modality (random crops of the sample photos).

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
    textures = _backgrounds(8, n_modalities)
    views = {}
    for m in range(n_modalities):
        picks = np.array([rng.choice(by_class[k]) for k in y])
        texture = textures[m]
        rows = rng.randint(texture.shape[0] - 8, size=n_samples)
        cols = rng.randint(texture.shape[1] - 8, size=n_samples)
        crops = np.stack([texture[r:r + 8, c:c + 8] for r, c in zip(rows, cols)])
        views[f"m{m}"] = np.clip(images[picks] + background * crops, 0.0, 1.0)[:, None].astype(np.float32)
    return MultimodalDict(**views), y


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
