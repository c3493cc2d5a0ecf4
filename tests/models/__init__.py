"""Tests of specdenoise.models: the family interface, the built-in families and the plug-in mechanism."""
