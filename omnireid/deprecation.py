"""Old names that still work for a while: each use warns with the new name
(``DeprecationWarning``), so that code and configs written against them keep running."""

from __future__ import annotations

import warnings
from typing import TypeVar

from omnireid.errors import UsageError

T = TypeVar("T")


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is now called ``new`` (``stacklevel`` 3: the caller's caller)."""
    warnings.warn(
        f"{old} is deprecated: it is now called {new}", DeprecationWarning, stacklevel=stacklevel
    )


def renamed_argument(new_value: T | None, old_value: T | None, old: str, new: str) -> T | None:
    """The value of argument ``new`` when the caller may still give it under its old name
    ``old`` (with a warning); both at once is refused."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise UsageError(f"give {new} only ({old} is its deprecated name)")
    warn_renamed(old, new, stacklevel=4)
    return old_value
