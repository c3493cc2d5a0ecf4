"""``train.posterior``: the settings of the posterior family (:mod:`.posterior`), validated."""

from __future__ import annotations

from pydantic import Field, model_validator

from specdenoise.models.base import FamilySettings


class PosteriorConfig(FamilySettings):
    """``train.posterior``: the prior's size and how many clean universe spectra fit it."""

    n_prior: int = Field(
        30_000,
        gt=0,
        description="clean universe spectra drawn to fit the prior (30,000: 37 CPU s; 100,000: 176 CPU s for "
        "the same sigma = 0.04 loss within 0.2 % and the same coverage)",
    )
    n_kmeans: int = Field(20_000, gt=0, description="spectra the k-means partition is fitted on")
    n_components: int = Field(16, gt=0, description="mixture components")
    halpha_levels: tuple[float, ...] = Field(
        (-2.9, -2.5, -2.1, -1.5),
        description="edges in log10 of a clean unit-norm spectrum's H-alpha excess over its running median "
        "(posterior_fit.halpha_level) splitting the prior's k-means partition into line-strength levels; "
        "() = one k-means over all spectra (line strengths are near log-normal: a component spanning a "
        "decade gives weak-line galaxies intervals 3-5x too wide)",
    )
    level_min: int = Field(2, gt=0, description="components at least per populated H-alpha level")
    line_rank: int = Field(
        4,
        ge=0,
        description="line loadings per component below the strongest H-alpha level: top eigenvectors of the "
        "residual covariance (after the latent_dim loadings) on the emission-line windows, so a line's pixels "
        "vary together (posterior_fit.line_loadings); 0 = none (line variance left to the per-pixel D)",
    )
    line_half: int = Field(2, ge=0, description="half-width (bins) of each emission-line window of the line loadings")
    n_scale: int = Field(5, gt=0, description="grid points of the marginalised amplitude")
    rel_floor: float = Field(
        0.0, ge=0, description="model-mismatch floor: per-pixel prior sd added in quadrature, fraction of the mean"
    )
    mismatch: tuple[float, ...] = Field(
        (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        description="grid of the per-spectrum model-mismatch floor f (prior sd of the structured mismatch "
        "basis, see posterior_infer.mismatch_basis), chosen per spectrum by its evidence; must start with 0",
    )
    mismatch_kind: str = Field(
        "basis", pattern="^(basis|diag|both)$", description="mismatch model: structured basis, per-pixel, or both"
    )
    mismatch_p0: float = Field(
        0.9, gt=0, le=1, description="prior probability of f = 0 (the rest shared equally by the other grid points)"
    )
    fixed_scale: float | None = Field(
        None, gt=0, description="known amplitude of the clean spectrum (None: marginalise it, noisy-norm inputs)"
    )
    n_calib: int = Field(12000, ge=0, description="validation spectra for the coverage calibration")
    n_interval_calib: int = Field(
        6000,
        ge=0,
        description="of the validation spectra, those whose draws' line fluxes and O3N2 fit the interval factors "
        "per continuum S/N (posterior_intervals; needs the training's line measure, the templates); 0 = none",
    )
    interval_draws: int = Field(30, gt=1, description="posterior draws per spectrum for the interval factors")
    chunk: int = Field(5000, gt=0, description="spectra synthesised per chunk (memory bound)")

    @model_validator(mode="after")
    def _levels(self) -> PosteriorConfig:
        lv = self.halpha_levels
        if any(b <= a for a, b in zip(lv, lv[1:], strict=False)):
            raise ValueError(f"halpha_levels must be strictly increasing, got {list(lv)}")
        if lv and self.n_components < self.level_min * (len(lv) + 1):
            raise ValueError(
                f"n_components {self.n_components} is below level_min {self.level_min} x {len(lv) + 1} H-alpha "
                "levels: raise n_components, lower level_min or set halpha_levels: [] (one k-means partition)"
            )
        return self
