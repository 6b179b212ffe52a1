"""Tests of generator/locking/ (locks)."""
