"""Typed, validated configuration: ``params.yaml`` -> pydantic models -> code.

Every section forbids unknown keys, so a typo in ``params.yaml`` is an error that names the
key, never a silently ignored setting. Every random choice in the pipeline takes its seed
from here.

The pydantic defaults are the default profile (``profiles/default.yaml``): ``Params()`` and
``load_params("profiles/default.yaml")`` are equal, and :func:`resolve_params` is the one way
commands and the API find their parameters.

Model families own their settings: a family class declares ``settings_model``, and
:class:`TrainConfig` accepts a ``train.<family>`` section for every registered family with one
(:mod:`specdenoise.models.base`, which imports nothing from here). A new family is one module
plus its params section; this file needs no edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from specdenoise.errors import ConfigError
from specdenoise.io import deep_merge, load_yaml
from specdenoise.models.sections import FamilyName, FamilySections

DEFAULT_PARAMS = Path("params.yaml")


def _distinct(values: list[float]) -> list[float]:
    if len(set(values)) != len(values):
        raise ValueError(f"values must be distinct, got {values}")
    return values


#: Distinct positive numbers (noise levels) and distinct factors >= 1 (S/N scales).
Positives = Annotated[list[Annotated[float, Field(gt=0.0)]], pydantic.AfterValidator(_distinct)]
Factors = Annotated[list[Annotated[float, Field(ge=1.0)]], pydantic.AfterValidator(_distinct)]


def _not_one(n: int) -> int:
    if n == 1:
        raise ValueError("one refit has no spread: use 0 (none) or at least 2")
    return n


class _Section(BaseModel):
    # allow_inf_nan=False: every float parameter must be finite (``.inf`` / ``.nan`` are errors)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


class UniverseConfig(_Section):
    """The embedded synthetic galaxy population (see :mod:`specdenoise.sources.universe`)."""

    n_galaxies: int = Field(100_000, gt=0, description="galaxies in the parent pool")
    seed: int = Field(1, ge=0)
    z_min: float = Field(0.024, gt=0.0)
    z_max: float = Field(0.05, gt=0.0, le=0.2)
    r_mag_limit: float = Field(17.77, description="SDSS main-sample Petrosian r limit")
    log_mass_min: float = Field(8.0, ge=6.0)
    log_mass_max: float = Field(12.0, le=13.0)
    sfms_scatter: float = Field(0.3, ge=0.0, description="dex, star-forming main sequence")
    mzr_scatter: float = Field(0.05, ge=0.0, description="dex, intrinsic MZR scatter at fixed M, SFR")
    mzr_sfr_slope: float = Field(0.25, ge=0.0, description="d log(O/H) / d Delta log SFR (the FMR)")
    agn_fraction: float = Field(0.08, ge=0.0, le=1.0, description="NLAGN fraction among massive hosts")
    blagn_fraction: float = Field(3e-4, ge=0.0, le=0.05, description="broad-line AGN fraction")
    sky_sigma: float = Field(1.0, gt=0.0, description="per-pixel sigma at the median sky, 1e-17 erg/s/cm2/A")
    poisson_coeff: float = Field(0.055, ge=0.0, description="object Poisson variance per unit flux (ppxf SDSS fit)")
    calibration_error: float = Field(0.04, ge=0.0, le=0.5, description="rms flux-calibration residual (Legendre 1-3)")
    bad_pixel_fraction: float = Field(0.002, ge=0.0, lt=0.5)
    chunk_size: int = Field(2000, gt=0, description="spectra synthesised per chunk (memory bound)")

    @model_validator(mode="after")
    def _ranges(self) -> UniverseConfig:
        if self.z_min >= self.z_max:
            raise ValueError(f"z_min ({self.z_min}) must be below z_max ({self.z_max})")
        if self.log_mass_min >= self.log_mass_max:
            raise ValueError("log_mass_min must be below log_mass_max")
        return self


class SelectConfig(_Section):
    """Selection in bins of H-alpha flux (paper section 2)."""

    n_bins: int = Field(10, gt=0)
    log_flux_min: float = Field(0.2, description="log10 H-alpha flux / 1e-17 erg/s/cm2, lower edge")
    log_flux_max: float = Field(3.4)
    per_bin: int = Field(1000, gt=0)
    n_test: int = Field(2000, gt=0, description="fixed test set size (the rest is training)")
    classes: list[str] | None = Field(None, description="restrict to these classes (None = all)")
    seed: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> SelectConfig:
        if self.log_flux_min >= self.log_flux_max:
            raise ValueError("log_flux_min must be below log_flux_max")
        if self.n_test >= self.n_bins * self.per_bin:
            raise ValueError(f"n_test ({self.n_test}) must be below n_bins*per_bin ({self.n_bins * self.per_bin})")
        return self


class PreprocessConfig(_Section):
    """Rest-frame shift, flux-conserving resampling and normalisation (paper section 2)."""

    n_pix: int = Field(825, gt=10)
    wave_min: float = Field(3700.0, gt=0.0, description="Angstrom, rest frame")
    wave_max: float = Field(7900.0, gt=0.0)
    norm: Literal["l2", "sum", "median"] = Field(
        "l2",
        description="unit L2 norm reproduces the paper's Tables 2-3; 'sum' is the text's literal unit total flux",
    )
    min_coverage: float = Field(0.5, gt=0.0, le=1.0, description="a bin with less good-pixel coverage is masked")

    @model_validator(mode="after")
    def _ranges(self) -> PreprocessConfig:
        if self.wave_min >= self.wave_max:
            raise ValueError("wave_min must be below wave_max")
        return self


class NoiseConfig(_Section):
    """Noise-added spectra (paper section 2): Gaussian sigma in normalised units, renormalised."""

    model: Literal["gaussian"] = "gaussian"
    sigma: float = Field(0.04, gt=0.0)
    n_realisations: int = Field(3, gt=0)
    renormalise: Literal["debiased", "naive", "none"] = Field(
        "debiased",
        description=(
            "normalise again after adding noise: 'debiased' divides by the noise-corrected norm "
            "sqrt(||x||^2 - sum sigma^2) (unit signal norm, keeps the flux scale of the target); "
            "'naive' by the plain norm (shrinks the signal by sqrt(1 + n sigma^2)); 'none' skips it"
        ),
    )
    seed: int = Field(3, ge=0)
    levels: Positives = Field([0.01, 0.04], min_length=1, description="noise-level axis, sigma always added")

    @property
    def all_levels(self) -> list[float]:  # ``levels`` with ``sigma`` (the paper level), ascending
        return sorted({float(lv) for lv in self.levels} | {float(self.sigma)})


class ValidateConfig(_Section):
    """Tolerances of the great-expectations suites."""

    noise_tolerance: float = Field(0.05, gt=0.0, description="relative, std(noisy - clean) vs sigma")
    norm_tolerance: float = Field(1e-4, gt=0.0)
    max_masked_fraction: float = Field(0.2, gt=0.0, le=1.0)


class TrainConfig(_Section, FamilySections):
    """Model training (paper section 3): families, latent dimensions and the optimiser; plus one
    ``train.<family>`` section per registered family with settings (``ae``, ``vae``:
    :class:`~specdenoise.models.neural_config.NetConfig`), see :class:`~specdenoise.models.sections.FamilySections`.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=False)  # extras: family sections only

    families: list[FamilyName] = ["mean", "pca", "wiener", "ae", "vae"]
    latent_dims: list[int] = Field([2, 4, 6, 10], min_length=1)
    realisation: int = Field(0, ge=0, description="noise realisation used as the model input")
    val_size: int = Field(2000, gt=0, description="validation spectra drawn from the training split")
    seed: int = Field(4, ge=0)
    weight_softening: float = Field(2e-6, ge=0.0, description="w = 1 / (sigma^2 + softening), normalised (eq. 3)")
    batch_size: int = Field(64, gt=0)
    learning_rate: float = Field(1e-4, gt=0.0)
    max_epochs: int = Field(60, gt=0, description="paper: 200")
    patience: int = Field(5, gt=0, description="epochs allowed without a min_rel_drop improvement")
    min_rel_drop: float = Field(0.01, ge=0.0, lt=1.0, description="paper: 0.1")
    lr_factor: float = Field(0.1, gt=0.0, lt=1.0)
    monitor: Literal["loss", "val_loss"] = "val_loss"
    fresh_noise: bool = Field(False, description="draw new noise every epoch instead of one realisation")
    kl_weight: float = Field(1.0, ge=0.0, description="weight of the KL term of the VAE loss (paper: 1)")
    seeds: int = Field(3, ge=1, description="training seeds per model at the paper level (axis_dims only)")
    level_seeds: int = Field(1, ge=1, description="training seeds per model at the other noise.levels")
    axis_dims: list[int] = Field([4, 6], description="latent dims with the seed and level axes (within latent_dims)")
    extra: dict[FamilyName, Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: {"posterior": 6},
        description="family -> latent dim of models outside the paper matrix (stages train_extra, train_extra_axis)",
    )

    @model_validator(mode="after")
    def _dims(self) -> TrainConfig:
        if any(d <= 0 for d in self.latent_dims):
            raise ValueError("latent_dims must be positive")
        if extra := [d for d in self.axis_dims if d not in self.latent_dims]:
            raise ValueError(f"axis_dims {extra} are not in latent_dims {self.latent_dims}")
        return self

    @field_validator("extra")
    @classmethod
    def _extra(cls, extra: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        fams, dims = info.data.get("families") or [], info.data.get("latent_dims") or []
        if clash := [f for f, d in extra.items() if f in fams and d in dims]:
            raise ValueError(f"{clash[0]} {extra[clash[0]]}-D is already in the families x latent_dims matrix")
        return extra


class SearchConfig(_Section):
    """Random hyper-parameter search (paper section 3.2) with optuna's seeded random sampler."""

    trials: int = Field(0, ge=0, description="trials per family and latent dimension (paper: 100; 0: the fixed nets)")
    include_baseline: bool = Field(True, description="first trial = the fixed train.<family> net")
    epochs: int = Field(6, gt=0, description="epochs per trial (paper: 25)")
    seed: int = Field(5, ge=0)
    dropout_max: float = Field(0.9, ge=0.0, lt=1.0)
    dropout_step: float = Field(0.1, gt=0.0)
    min_layers: int = Field(2, gt=0)
    max_layers: int = Field(4, gt=0)
    min_units: int = Field(100, gt=0)
    max_units: int = Field(1000, gt=0)
    units_step: int = Field(100, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> SearchConfig:
        if self.min_layers > self.max_layers or self.min_units > self.max_units:
            raise ValueError("search ranges: min must not exceed max")
        return self


class TrackingConfig(_Section):
    """MLflow tracking and model registry."""

    uri: str | None = Field(None, description="tracking URI; default sqlite:///<cwd>/mlflow.db (absolute)")
    experiment: str = "specdenoise"
    registered_model: str = Field("specdenoise-vae", description="registered model of the paper families (AE, VAE)")
    default_model: str = Field("specdenoise-posterior", description="noise-aware families' model: the users' default")
    log_models: bool = True


class LinesConfig(_Section):
    """Emission-line fluxes (paper section 4.3)."""

    fitter: Literal["fast", "ppxf"] = Field("fast", description="fast vectorised fitter or pPXF")
    sigma_kms: float = Field(60.0, gt=0.0, description="fixed intrinsic line sigma of the fast fitter")
    n_components: int = Field(12, gt=0, description="E-MILES principal components in the continuum")
    n_bins: int = Field(10, gt=1, description="bins in reference flux for sigma_fill (paper: 10)")
    dims: list[int] | None = Field(None, description="latent dimensions to score (None = all trained)")
    ppxf_max_spectra: int = Field(100, ge=0, description="test spectra also fitted with pPXF (agreement check)")
    seed: int = Field(6, ge=0)


class EvaluateConfig(_Section):
    """Rankings: paired bootstrap over test spectra (see :mod:`specdenoise.evaluation.rankings`)."""

    n_bootstrap: int = Field(1000, ge=100, description="paired-bootstrap resamples of the test spectra")
    seed: int = Field(8, ge=0)
    sd_factor: float = Field(2.0, ge=0.0, description="a rank gap must also exceed this x the seed sd")


class DownloadConfig(_Section):
    """Where ``specdenoise data download-sdss`` / ``download-mpajhu`` fetch from, and how."""

    sdss_base_url: str = Field(
        "https://data.sdss.org/sas/dr17/sdss/spectro/redux/26/spectra/lite",
        description="SAS spec-lite folder; files at {base}/PPPP/spec-PPPP-MMMMM-FFFF.fits",
    )
    mpajhu_base_url: str = Field("https://wwwmpa.mpa-garching.mpg.de/SDSS/DR7/Data", description="MPA-JHU DR7 files")
    workers: int = Field(4, ge=1, le=64, description="parallel downloads")
    retries: int = Field(3, ge=0, le=20, description="retries of a transient failure (404 is never retried)")
    backoff_s: float = Field(1.0, ge=0.0, description="wait before retry k: backoff_s * 2**k seconds")
    timeout_s: float = Field(60.0, gt=0.0, description="connect / read timeout")
    allowed_hosts: list[str] = Field([], description="hosts a download may be redirected to besides its own")


class DataConfig(_Section):
    """Where the data come from: the embedded universe or real SDSS spectra + MPA-JHU catalogues."""

    source: Literal["universe", "sdss"] = Field(
        "universe", description="'sdss': `data universe` / `data observe` read MPA-JHU + spec-lite files"
    )
    sdss_dir: str = Field("data/external/sdss/spectra", description="spec-lite files spec-PPPP-MMMMM-FFFF.fits")
    mpajhu_dir: str = Field("data/external/mpajhu", description="MPA-JHU DR7 catalogue files")
    z_min: float = Field(0.024, ge=0.0, description="parent pool redshift range (source sdss)")
    z_max: float = Field(0.05, gt=0.0, le=1.0)
    main_sample_only: bool = Field(True, description="keep SDSS main-galaxy targets only (PRIMTARGET bit 64)")
    require_spectra: bool = Field(False, description="keep only galaxies whose spec-lite file is in sdss_dir")
    download: DownloadConfig = DownloadConfig()

    @model_validator(mode="after")
    def _ranges(self) -> DataConfig:
        if self.z_min >= self.z_max:
            raise ValueError(f"z_min ({self.z_min}) must be below z_max ({self.z_max})")
        return self


class UncertaintyConfig(_Section):
    """Per-pixel predictive uncertainty and its calibration (see :mod:`specdenoise.evaluation.uncertainty`)."""

    n_samples: int = Field(50, ge=2, description="VAE posterior samples decoded per spectrum")
    seed: int = Field(7, ge=0, description="seed of the posterior samples")
    window: int = Field(5, ge=0, description="pixels pooled on each side when fitting the per-pixel scale")


class DesiConfig(_Section):
    """DESI-like spectra for the mass-metallicity test (paper section 5)."""

    z: float = Field(0.1, gt=0.0, lt=0.5, description="redshift every galaxy is moved to")
    package: str = Field("fastspecfit==3.6.1", description="PyPI package whose test data hold the real DESI coadds")
    coadds: list[str] = Field(
        ["coadd-4-80613-thru20210324.fits", "coadd-special-dark-27247.fits"],
        min_length=1,
        description="coadd files (fastspecfit/test/data/) whose sigma(lambda) shapes are averaged",
    )
    envelope: float = Field(0.04, gt=0.0, description="normalised noise upper envelope, median galaxy (paper sec. 2)")
    seed: int = Field(13, ge=0)


class MzrConfig(_Section):
    """The mass-metallicity test: star-forming sample, DESI-like spectra, O3N2 metallicities."""

    select: SelectConfig = SelectConfig(log_flux_min=1.4, log_flux_max=3.2, classes=["emission_line"], seed=12)
    desi: DesiConfig = DesiConfig()
    latent_dim: int = Field(6, gt=0, description="latent dimension of the re-trained VAE (paper: 6)")
    registered_model: str = Field("specdenoise-vae-desi", description="MLflow registered model of the DESI VAE")
    snr_min: float = Field(15.0, gt=0.0, description="H-alpha S/N needed for a metallicity (Scholte & Saintonge 2023)")
    n_mass_bins: int = Field(8, gt=1, description="mass bins for percentiles and the SFR trend at fixed mass")
    posterior_draws: int = Field(160, ge=0, description="posterior draws per galaxy of the default model; 0: none")
    posterior_snr_scales: Factors = Field([1.0, 3.0, 10.0], min_length=1, description="posterior MZR, noise / each")
    posterior_prior_draws: int = Field(100_000, ge=1000, description="its prior's draws for the interim O/H density")
    posterior_noise_realisations: int = Field(3, ge=0, description="posterior MZR at k = 1, more noise realisations")
    posterior_draw_bootstrap: Annotated[int, pydantic.AfterValidator(_not_one)] = Field(
        8, ge=0, description="refits of the posterior MZR on resampled draws, for its draw error (0: none)"
    )
    population_form: Literal["auto", "linear", "quadratic_mass", "spline_mass"] = Field(
        "quadratic_mass", description="SFR term of the re-weighted MZR's population (auto: lowest AIC; README)"
    )
    seed: int = Field(14, ge=0, description="seed of the posterior draws")


class Params(_Section):
    """The whole of ``params.yaml``."""

    data: DataConfig = DataConfig()
    universe: UniverseConfig = UniverseConfig()
    select: SelectConfig = SelectConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    noise: NoiseConfig = NoiseConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    train: TrainConfig = Field(default_factory=TrainConfig)  # sections of the families registered now
    search: SearchConfig = SearchConfig()
    tracking: TrackingConfig = TrackingConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    lines: LinesConfig = LinesConfig()
    uncertainty: UncertaintyConfig = UncertaintyConfig()
    mzr: MzrConfig = MzrConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<top level>"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{loc}'"
    msg = first["msg"]
    if "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def parse_params(data: dict[str, Any] | None, source: str = "params") -> Params:
    """Validate a parsed mapping; raise :class:`ConfigError` naming the bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


def resolve_params(path: str | Path | None = None) -> Params:
    """The parameters every command and API uses.

    Parameters
    ----------
    path : str or Path, optional
        A parameters file, which must exist (else :class:`ConfigError` "<path>: parameters file
        not found"). None: ``params.yaml`` in the current folder if it exists, else the
        built-in defaults (equal to ``profiles/default.yaml``).
    """
    if path is None:
        return load_params(DEFAULT_PARAMS) if DEFAULT_PARAMS.is_file() else Params()
    return load_params(path)


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate ``params.yaml``; ``overrides`` are deep-merged on top."""
    data = load_yaml(path, "parameters file")
    if data is None:
        raise ConfigError(f"{path}: empty parameters file (no keys); write one with `specdenoise profile default`")
    if overrides:
        data = deep_merge(data or {}, overrides)
    return parse_params(data, str(path))
