"""Tests of omnireid.losses."""
