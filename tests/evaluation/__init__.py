"""Tests of specdenoise.evaluation: line fitting, the mass-metallicity test."""
