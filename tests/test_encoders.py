"""Per-modality encoders: shapes, refusals, and what the sequence encoder can see."""

import numpy as np
import pytest
import torch

from dymo_sklearn.nn import SequenceEncoder, build_encoder
from dymo_sklearn.nn.standardize import input_statistics

from helpers import tiny_classifier


def test_sequence_encoder_gives_tokens_of_the_model_width():
    encoder = build_encoder("sequence", (3, 50), 16)
    assert isinstance(encoder, SequenceEncoder)
    values = torch.randn(5, 3, 50)
    assert encoder(values, torch.ones_like(values, dtype=torch.bool)).shape == (5, 2, 16)


@pytest.mark.parametrize("shape", [(50,), (1, 8, 8)])
def test_sequence_encoder_needs_channels_and_time(shape):
    with pytest.raises(ValueError, match=r"sequence encoder needs per-sample shape \(channels, time\)"):
        build_encoder("sequence", shape, 16)


def test_sequences_are_standardised_per_channel():
    rng = np.random.default_rng(0)
    recordings = rng.normal(size=(40, 2, 30)) * np.array([[1.0], [50.0]]) + np.array([[0.0], [9.0]])
    shift, scale = input_statistics(recordings, "sequence")
    assert shift.shape == scale.shape == (2, 1)
    np.testing.assert_allclose(scale.ravel(), recordings.std(axis=(0, 2)), rtol=1e-5)


def _bumps(n_samples, seed):
    """Class = a rise then a fall, or a fall then a rise, at a random time of a 128-step recording:
    a shape that moves, which convolutions see anywhere and a flattening MLP must learn at every
    position (both classes have the same values, only their order differs)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_samples)
    time = np.arange(128)
    start = rng.integers(4, 116, n_samples)[:, None]
    sign = np.where(y == 1, 1.0, -1.0)[:, None]
    signal = sign * (np.exp(-0.5 * (time - start) ** 2) - np.exp(-0.5 * (time - start - 6) ** 2))
    recording = signal[:, None, :] + rng.normal(0, 0.05, (n_samples, 2, 128))
    return {"motion": recording.astype(np.float32), "other": rng.normal(size=(n_samples, 4)).astype(np.float32)}, y


def test_sequence_encoder_recognises_a_shape_wherever_it_occurs():
    X, y = _bumps(200, 0)
    X_test, y_test = _bumps(200, 1)
    settings = dict(max_epochs=25, lr=3e-3, early_stopping=False)
    sequence = tiny_classifier(encoders={"motion": "sequence"}, **settings).fit(X, y).score(X_test, y_test)
    flattened = tiny_classifier(**settings).fit(X, y).score(X_test, y_test)
    assert sequence > 0.9 and sequence > flattened + 0.15, (sequence, flattened)
