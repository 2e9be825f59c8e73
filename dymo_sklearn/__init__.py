"""dymo_sklearn: inference-time dynamic modality selection (DyMo) for scikit-learn."""

from ._classifier import DyMoClassifier
from ._input import MultimodalDict
from ._mars import MARSClassifier

__all__ = ["DyMoClassifier", "MARSClassifier", "MultimodalDict"]
__version__ = "0.1.0"
