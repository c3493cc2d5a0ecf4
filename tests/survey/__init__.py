"""Tests of specdenoise.survey: readers, downloader, the Denoiser (helpers: survey_fixtures)."""
