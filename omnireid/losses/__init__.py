"""Re-ID losses: label-smoothed cross-entropy, batch-hard triplet, entropy, mutual learning.

``compute_losses`` returns the weighted terms of one network as a dict (``mutual_losses`` those
of a deep-mutual-learning pair); the training step sums the values and logs each key.
"""

from omnireid.losses.combined import ReIDLoss, compute_losses
from omnireid.losses.cross_entropy import cross_entropy_label_smooth
from omnireid.losses.entropy import prediction_entropy
from omnireid.losses.mutual import kl_divergence, mutual_learning_loss, mutual_losses
from omnireid.losses.triplet import (
    batch_hard_triplet_loss,
    embedding_statistics,
    pairwise_euclidean,
)

__all__ = [
    "ReIDLoss",
    "batch_hard_triplet_loss",
    "compute_losses",
    "cross_entropy_label_smooth",
    "embedding_statistics",
    "kl_divergence",
    "mutual_learning_loss",
    "mutual_losses",
    "pairwise_euclidean",
    "prediction_entropy",
]
