"""Neural building blocks: per-modality encoders, the shared backbone (encoders + masked fusion
transformer), DyMo's and MARS's networks on it, distances."""

from .distances import DISTANCES, paired_distance, pairwise_distance, prototype_log_probabilities
from .encoders import ENCODER_KINDS, ImageEncoder, SequenceEncoder, VectorEncoder, build_encoder, infer_kind
from .backbone import Backbone, FusionTransformer
from .dymo import DyMoNetwork
from .mars import MARSNetwork

__all__ = [
    "Backbone",
    "DISTANCES",
    "ENCODER_KINDS",
    "DyMoNetwork",
    "FusionTransformer",
    "ImageEncoder",
    "MARSNetwork",
    "SequenceEncoder",
    "VectorEncoder",
    "build_encoder",
    "infer_kind",
    "paired_distance",
    "pairwise_distance",
    "prototype_log_probabilities",
]
