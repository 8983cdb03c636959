"""The error hierarchy: every user mistake is one of these, reported in one line."""


class NmtpipeError(Exception):
    """Base class of errors that are reported to the user without a traceback."""


class ConfigError(NmtpipeError):
    """An unknown, missing or invalid value in params.yaml or on the command line."""


class DataError(NmtpipeError):
    """A missing, corrupt, misaligned or unusable input file."""


class ModelError(NmtpipeError):
    """A missing or incompatible trained model."""
