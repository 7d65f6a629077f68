"""Model deployers for Clipper in Python."""

__version__ = "0.5.0"
