"""Tests of generator/refresh/ (the scheduled refresh)."""
