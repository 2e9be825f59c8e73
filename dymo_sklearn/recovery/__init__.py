"""Recovery of missing modalities: scikit-learn imputers on the flattened modalities, and neural
recoverers that understand modalities (a multimodal VAE, a TIP-style tabular model), and
KNNImputer's semantics computed with torch on the model's device."""

from ._diagnostics import recovery_report
from ._imputer import fit_recoverer, recover
from ._knn import KNNRecoverer
from ._mvae import MultimodalVAERecoverer
from ._tabular import TabularRecoverer

__all__ = ["KNNRecoverer", "MultimodalVAERecoverer", "TabularRecoverer", "fit_recoverer", "recover", "recovery_report"]
