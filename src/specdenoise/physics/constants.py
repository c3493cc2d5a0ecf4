"""Physical and instrumental constants shared by the universe, the fitters and the DESI transform."""

C_KMS = 299_792.458
#: SDSS spectrograph instrumental dispersion, km/s (R ~ 2000).
SIGMA_INST_KMS = 65.0
#: Flux unit of every spectrum and line flux: 1e-17 erg/s/cm^2(/A).
FLUX_UNIT = 1e-17
#: Solar 12 + log(O/H) (Asplund et al. 2009).
SOLAR_OH = 8.69
