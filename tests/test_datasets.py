"""The offline data sets: deterministic, in range, one background look per modality."""

import numpy as np
import pytest

from dymo_sklearn.datasets import _backgrounds, apply_missing, make_multiview_digits


def test_multiview_digits_is_deterministic_and_in_range():
    X_a, y_a = make_multiview_digits(3, n_samples=50, random_state=3)
    X_b, y_b = make_multiview_digits(3, n_samples=50, random_state=3)
    X_c, _ = make_multiview_digits(3, n_samples=50, random_state=4)
    np.testing.assert_array_equal(y_a, y_b)
    for name in ("m0", "m1", "m2"):
        assert X_a[name].shape == (50, 1, 8, 8) and X_a[name].dtype == np.float32
        np.testing.assert_array_equal(X_a[name], X_b[name])
        assert 0.0 <= X_a[name].min() and X_a[name].max() <= 1.0
        assert not np.array_equal(X_a[name], X_c[name])


def test_each_modality_has_its_own_smooth_background():
    """Catches textures that are all alike (modalities indistinguishable) or white noise (no
    structure to learn as a background), and any change that needs image files."""
    textures = _backgrounds(4)
    for texture in textures:
        assert texture.min() >= 0.0 and texture.max() <= 1.0
        # neighbouring pixels agree far more than distant ones: a smooth, photo-like field
        near = np.corrcoef(texture[:, :-1].ravel(), texture[:, 1:].ravel())[0, 1]
        far = np.corrcoef(texture[:, :-100].ravel(), texture[:, 100:].ravel())[0, 1]
        assert near > 0.9 and abs(far) < 0.5
    means = [texture.mean() for texture in textures]
    assert len({round(mean, 2) for mean in means}) == 4
    np.testing.assert_array_equal(_backgrounds(2)[1], textures[1])


def test_apply_missing_keeps_one_modality_and_hides_the_requested_share():
    X, _ = make_multiview_digits(5, n_samples=200, random_state=0)
    X_missing = apply_missing(X, 0.8, random_state=0)
    missing = np.stack([np.isnan(X_missing[n]).reshape(200, -1).all(1) for n in X_missing], axis=1)
    np.testing.assert_array_equal(missing.sum(1), np.full(200, 4))
    observed = ~missing
    for index, name in enumerate(X_missing):
        np.testing.assert_array_equal(X_missing[name][observed[:, index]], X[name][observed[:, index]])
    with pytest.raises(ValueError, match="missing_rate"):
        apply_missing(X, 1.5)


def _write_idx(path, array):
    import gzip

    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_tuples_come_from_the_idx_files(tmp_path):
    """Catches a misread IDX header (shifted pixels), labels out of step with images, or test tuples
    drawn from the training images."""
    from dymo_sklearn.datasets import make_multiview_fashion

    rng = np.random.default_rng(0)
    for prefix, n, offset in (("train", 30, 0), ("t10k", 20, 128)):
        labels = np.arange(n) % 3
        images = (labels[:, None, None] * 40 + offset + rng.integers(0, 20, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    X, y = make_multiview_fashion(2, 40, background=0.0, split="train", folder=tmp_path, random_state=1)
    assert X["m0"].shape == (40, 1, 28, 28) and set(y) == {0, 1, 2}
    for view in X.values():  # each view shows an image of the sample's own class, from the train file
        level = view[:, 0].mean(axis=(1, 2)) * 255
        np.testing.assert_array_less(np.abs(level - (y * 40 + 9.5)), 2.5)
    X_test, y_test = make_multiview_fashion(2, 10, background=0.0, split="test", folder=tmp_path, image_size=14)
    assert X_test["m1"].shape == (10, 1, 14, 14)
    assert (X_test["m1"].mean(axis=(1, 2, 3)) * 255 > 127).all()
    with pytest.raises(FileNotFoundError, match="DYMO_FASHION_MNIST.*dataset-fashion-mnist"):
        make_multiview_fashion(folder=tmp_path / "nowhere")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is not a gzipped IDX file"):
        make_multiview_fashion(folder=tmp_path)


def test_fashion_folder_comes_from_the_environment(tmp_path, monkeypatch):
    """Catches a folder= default that ignores DYMO_FASHION_MNIST (only Debian's path looked at)."""
    from dymo_sklearn.datasets import make_multiview_fashion

    labels = np.arange(12) % 2
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.full((12, 28, 28), 7))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    monkeypatch.setenv("DYMO_FASHION_MNIST", str(tmp_path))
    X, y = make_multiview_fashion(2, 6, background=0.0, random_state=0)
    assert set(y) <= {0, 1} and np.allclose(X["m0"], 7 / 255)
    monkeypatch.setenv("DYMO_FASHION_MNIST", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        make_multiview_fashion(2, 6)


def _write_ts(path, series, labels):
    lines = ["# written by the test", "@problemName BasicMotions", "@univariate false", "@dimensions 6",
             "@equalLength true", f"@classLabel true {' '.join(sorted(set(labels)))}", "@data"]
    for recording, label in zip(series, labels):
        lines.append(":".join(",".join(f"{v:g}" for v in channel) for channel in recording) + f":{label}")
    path.write_text("\n".join(lines) + "\n")


def test_basic_motions_split_into_accelerometer_and_gyroscope(tmp_path):
    from dymo_sklearn.datasets import load_basic_motions

    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(4, 6, 7)).round(3), rng.normal(size=(2, 6, 7)).round(3)
    _write_ts(tmp_path / "BasicMotions_TRAIN.ts", train, ["Walking", "Running", "Walking", "Standing"])
    _write_ts(tmp_path / "BasicMotions_TEST.ts", test, ["Badminton", "Running"])
    X, y = load_basic_motions(folder=tmp_path)
    np.testing.assert_allclose(X["accelerometer"], np.concatenate([train, test])[:, :3], rtol=1e-6)
    np.testing.assert_allclose(X["gyroscope"], np.concatenate([train, test])[:, 3:], rtol=1e-6)
    assert y.tolist() == ["Walking", "Running", "Walking", "Standing", "Badminton", "Running"]
    X_test, y_test = load_basic_motions("test", folder=tmp_path)
    assert X_test["gyroscope"].shape == (2, 3, 7) and y_test.tolist() == ["Badminton", "Running"]
    with pytest.raises(ValueError, match="split"):
        load_basic_motions("validation", folder=tmp_path)


def test_basic_motions_without_aeon_says_what_to_install(monkeypatch):
    import importlib.util

    from dymo_sklearn.datasets import load_basic_motions

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps aeon"):
        load_basic_motions()
