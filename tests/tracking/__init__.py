"""Tests of specdenoise.tracking: the MLflow store, registry and champion alias."""
