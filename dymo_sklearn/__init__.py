"""dymo_sklearn: inference-time dynamic modality selection (DyMo) for scikit-learn."""

from ._classifier import DyMoClassifier
from ._input import MultimodalDict
from ._mars import MARSClassifier
from ._preprocessing import ModalityTransformer

__all__ = ["DyMoClassifier", "MARSClassifier", "ModalityTransformer", "MultimodalDict"]
__version__ = "0.1.0"
