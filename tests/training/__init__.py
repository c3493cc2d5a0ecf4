"""Tests of specdenoise.training: the splits and what a trained model records."""
