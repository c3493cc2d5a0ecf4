"""End-to-end tests: the DVC pipeline, denoise on real files, a plug-in model family."""
