"""Tests of specdenoise.physics: grids, templates."""
