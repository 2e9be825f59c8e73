"""Small estimators for fast tests."""

from sklearn.impute import SimpleImputer

from dymo_sklearn import DyMoClassifier

TINY = dict(d_model=16, n_heads=2, n_layers=1, projection_dim=8, max_epochs=3, batch_size=64)


def tiny_classifier(**params):
    """A DyMoClassifier small enough to fit in a fraction of a second."""
    return DyMoClassifier(**{**TINY, "recoverer": SimpleImputer(), "random_state": 0, **params})
