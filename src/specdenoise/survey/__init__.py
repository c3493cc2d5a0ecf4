"""Real survey spectra: readers (SDSS, DESI, MPA-JHU), downloads, the ``Denoiser`` API and batch de-noising."""
