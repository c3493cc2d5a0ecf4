"""Tests of specdenoise.cli: the command tree and commands run in-process."""
