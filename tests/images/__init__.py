"""Tests of generator/images/ (runtime images)."""
