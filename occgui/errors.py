"""User-facing errors: each carries one clear line for the CLI, the GUI and the batch report."""


class OccguiError(Exception):
    """Base class of every error the product reports to a user as one line (no traceback)."""


class ImageLoadError(OccguiError):
    """The file is missing, not an image, truncated, or too small/unsupported."""


class NoFaceError(OccguiError):
    """No face was found in the photo, or the requested face index does not exist."""


class Cancelled(OccguiError):
    """The run was cancelled between two stages."""


class CheckpointError(OccguiError):
    """A model checkpoint is missing or does not match the network it should load into."""


class ExportError(OccguiError):
    """Writing the results failed; nothing partial was left behind."""
