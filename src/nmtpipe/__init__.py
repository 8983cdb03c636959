"""nmtpipe: a reproducible neural machine translation pipeline."""

__version__ = "0.1.0"
