"""Tests of omnireid.engine."""
