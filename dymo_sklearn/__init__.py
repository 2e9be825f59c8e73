"""dymo_sklearn: inference-time dynamic modality selection (DyMo) for scikit-learn."""

from ._classifier import DyMoClassifier
from ._input import MultimodalDict
from ._mars import MARSClassifier
from ._model_io import explain, load, save
from ._preprocessing import ModalityTransformer

__all__ = ["DyMoClassifier", "MARSClassifier", "ModalityTransformer", "MultimodalDict", "explain", "load", "save"]
__version__ = "0.1.0"
