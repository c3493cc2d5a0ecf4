"""The data products between the stages (``artefacts``) and the stages that make them:
select, preprocess, noise, validate, summary, DESI-like spectra."""
