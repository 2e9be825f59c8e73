"""dymo_sklearn: inference-time dynamic modality selection (DyMo) for scikit-learn."""

from ._classifier import DyMoClassifier
from ._input import MultimodalDict

__all__ = ["DyMoClassifier", "MultimodalDict"]
__version__ = "0.1.0"
