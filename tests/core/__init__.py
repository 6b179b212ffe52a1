"""Tests of generator/core/ (the core: files, validation, escaping, HTTP)."""
