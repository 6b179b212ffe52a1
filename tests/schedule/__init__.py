"""Tests of generator/schedule/ (the schedule)."""
