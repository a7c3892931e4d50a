"""lookalike: find the catalogue products that look like a photo."""

__version__ = "0.1.0"
