"""Reproducible image generator for the App Engine flexible environment's Python runtime."""

__version__ = "0.1.0"
