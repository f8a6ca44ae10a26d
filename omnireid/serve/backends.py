"""Deprecated: the vector stores are opened by ``serve.stores`` (``open_store``, ``STORES``);
"backend" names the inference runners (``deploy.backends``)."""

from __future__ import annotations

import warnings

from omnireid.serve.stores import STORES, open_store

BACKENDS = STORES

warnings.warn(
    "omnireid.serve.backends is deprecated: it is now omnireid.serve.stores (STORES, open_store)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["BACKENDS", "STORES", "open_store"]
