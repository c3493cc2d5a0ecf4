"""Tests of specdenoise.data: selection, preprocessing, noise, validation, DESI-like spectra."""
