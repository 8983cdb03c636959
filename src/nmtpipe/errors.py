"""The error hierarchy: every user mistake is one of these, reported in one line."""


class NmtpipeError(Exception):
    """Base class of errors that are reported to the user without a traceback."""


class ConfigError(NmtpipeError):
    """An unknown, missing or invalid value in params.yaml or on the command line."""


class DataError(NmtpipeError):
    """A missing, corrupt, misaligned or unusable input file."""


class ModelError(NmtpipeError):
    """A missing or incompatible trained model."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (library messages can span many)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
