"""Tests of specdenoise.sources: the embedded universe, observing it, the SDSS source."""
