"""Neural building blocks: per-modality encoders, the masked fusion transformer, distances."""

from .distances import DISTANCES, paired_distance, pairwise_distance, prototype_log_probabilities
from .encoders import ENCODER_KINDS, ImageEncoder, SequenceEncoder, VectorEncoder, build_encoder, infer_kind
from .network import DyMoNetwork, FusionTransformer

__all__ = [
    "DISTANCES",
    "ENCODER_KINDS",
    "DyMoNetwork",
    "FusionTransformer",
    "ImageEncoder",
    "SequenceEncoder",
    "VectorEncoder",
    "build_encoder",
    "infer_kind",
    "paired_distance",
    "pairwise_distance",
    "prototype_log_probabilities",
]
