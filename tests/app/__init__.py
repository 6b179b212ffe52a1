"""Tests of generator/app/ (apps on a runtime)."""
