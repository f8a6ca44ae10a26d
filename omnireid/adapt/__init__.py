"""Adapting a re-ID model to a new site's cameras without labels.

- ``adapt_batchnorm`` (AdaBN): re-estimate BatchNorm statistics on target images, no training.
- Clustering-based self-training (Cluster Contrast, Dai et al. 2021): each round clusters the
  target images' features (k-reciprocal Jaccard distance + DBSCAN) into pseudo-identities and
  trains with a contrastive loss against momentum-updated cluster centroids, P x K batches.

``adapt(model, images, ...)`` runs it on a list of image files; ``omnireid adapt`` (and
``train.task: adapt`` in a config) is the same with checkpoints, resume, logs and evaluation.
"""

from omnireid.adapt.adabn import adapt_batchnorm
from omnireid.adapt.api import adapt, samples_of
from omnireid.adapt.clustering import cluster_statistics, dbscan, pseudo_labels
from omnireid.adapt.memory import ClusterMemory

__all__ = [
    "ClusterMemory",
    "adapt",
    "adapt_batchnorm",
    "cluster_statistics",
    "dbscan",
    "pseudo_labels",
    "samples_of",
]
