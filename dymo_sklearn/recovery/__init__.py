"""Recovery of missing modalities: scikit-learn imputers on the flattened modalities."""

from ._imputer import fit_recoverer, recover

__all__ = ["fit_recoverer", "recover"]
