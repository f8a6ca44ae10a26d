"""The project's error classes: what the command line reports as one line and a non-zero exit.

Every error the library raises for bad input (a file, a dataset, a config value, an option)
derives from ``OmniReIDError``; the CLI catches these and ``OSError`` and nothing else, so a
programming bug keeps its traceback. Each class also derives from the builtin it refines
(``ValueError``, ``RuntimeError``), so code catching the builtin keeps working.
"""

from __future__ import annotations

# What reading a JSON text can raise for bad input: JSONDecodeError and UnicodeDecodeError are
# ValueErrors, and a text nested deeper than Python's recursion limit (``[[[[...``, a few KB)
# raises RecursionError from the decoder. Every reader of a file given to omnireid catches these.
JSON_ERRORS = (ValueError, RecursionError)


class OmniReIDError(Exception):
    """Base class of the errors that describe a problem with the user's input or environment."""


class UsageError(OmniReIDError, ValueError):
    """An option or argument with a value that cannot work (names the option and the fix)."""


class ConfigError(OmniReIDError, ValueError):
    """An unknown key, a value of the wrong type, or an unreadable config file."""


class CheckpointError(OmniReIDError, ValueError):
    """A checkpoint that cannot be read, or does not match the model."""


class DatasetLayoutError(OmniReIDError, ValueError):
    """A dataset folder that does not have the expected layout; says what was expected."""


class IndexFileError(OmniReIDError, ValueError):
    """An index file that cannot be used: corrupt, of a newer format, or built for another model."""


class ExportError(OmniReIDError, ValueError):
    """An exported model (ONNX, OpenVINO) that cannot be used as asked: no preprocessing
    contract, a newer contract version, another input size; or an export that failed its
    verification against PyTorch (nothing is written then)."""


class TrainingError(OmniReIDError, RuntimeError):
    """Training cannot go on (a non-finite loss, a collapsed embedding); the last good
    checkpoint is kept."""


class NonFiniteLossError(TrainingError):
    """A NaN or infinite loss or statistic: training stops; the last good checkpoint is kept."""


class NonFiniteFeaturesError(OmniReIDError, ValueError):
    """A model produced NaN or infinite features (its weights are damaged): results would lie."""


def non_finite_rows(count: int, total: int, what: str = "images") -> NonFiniteFeaturesError:
    """The error for ``count`` of ``total`` feature rows that are not finite."""
    return NonFiniteFeaturesError(
        f"{count} of {total} {what} gave NaN or infinite features: the model's weights are "
        "damaged (e.g. a training run that diverged); no result was computed from them"
    )


class DegenerateFeaturesError(OmniReIDError, ValueError):
    """A model gave every one of several different images the same feature (all-zero,
    collapsed or damaged weights): every ranking would be a tie, results would lie."""


class RequestError(OmniReIDError, ValueError):
    """A request the gallery service refuses (bad input, unknown id, missing key): ``status``
    is the HTTP status it is answered with (4xx), the message the reason."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class ServiceError(OmniReIDError, RuntimeError):
    """The gallery service cannot be reached, or failed on its side (5xx)."""
