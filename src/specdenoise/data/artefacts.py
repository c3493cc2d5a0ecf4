"""The data products passed between pipeline stages, each schema written in one place.

Every ``.npz`` product is a frozen dataclass whose fields are its arrays, in file order:
:meth:`NpzArtefact.load` checks the required arrays (a missing one is a one-line
:class:`~specdenoise.errors.DataError` naming the file) and :meth:`NpzArtefact.save` writes
them atomically in that order. Products are also read-only mappings (``spectra["flux"]``), so
the numerical functions accept either a product or a plain dict of arrays. Parquet tables
(catalogue, sample) are checked against the column tuples below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from specdenoise.errors import DataError
from specdenoise.io import load_npz, load_table, save_npz

#: Columns the figures and the data summary need of a sample.
CLASS_COLUMNS = ("class",)
#: Columns every selected sample has (``data select``, ``mzr select``).
SAMPLE_COLUMNS = ("id", "z", "class", "log_mass", "Halpha_flux_meas", "bin", "split")
#: Columns the MZR test needs of its star-forming sample.
MZR_SAMPLE_COLUMNS = ("id", "log_mass", "log_sfr", "oh")
#: Columns observing a sample needs (the embedded universe; real SDSS spectra also need plate, mjd, fiber).
OBSERVE_COLUMNS = ("id", "z")
SDSS_OBSERVE_COLUMNS = ("id", "z", "plate", "mjd", "fiber")
#: Columns of a parent catalogue that selection needs.
CATALOGUE_COLUMNS = ("id", "Halpha_flux_meas")


class NpzArtefact(Mapping):
    """Base of the ``.npz`` products: fields without a default are required in the file."""

    KIND: ClassVar[str] = "arrays"

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], source: str = "arrays") -> Self:
        names = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [k for k in required if k not in arrays]
        if missing:
            raise DataError(f"{source}: not a {cls.KIND} file: missing array(s) {', '.join(missing)}")
        return cls(**{k: arrays[k] for k in names if k in arrays})

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read and check a product written by :meth:`save` (or by an earlier version of the stage)."""
        return cls.from_arrays(load_npz(path), str(path))

    def save(self, path: str | Path) -> Path:
        """Write the arrays atomically, in field order (missing optional ones left out)."""
        return save_npz(path, **dict(self.items()))

    # read-only mapping over the arrays that are present
    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, None) if key in self._names() else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._names() if getattr(self, k) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclasses.dataclass(frozen=True, eq=False)
class Observed(NpzArtefact):
    """Observed-frame spectra on the SDSS-like grid (``data observe``).

    ``truth``, ``flux``, ``ivar`` (n, k) in 1e-17 erg/s/cm^2/A (``truth`` noise-free; for
    real SDSS spectra the observed flux), ``loglam`` (k,) log10 air wavelength (A), ``id``,
    ``z``, ``split`` (n,).
    """

    KIND: ClassVar[str] = "observed-spectra"
    flux: np.ndarray
    ivar: np.ndarray
    loglam: np.ndarray
    id: np.ndarray
    z: np.ndarray
    truth: np.ndarray | None = None
    split: np.ndarray | None = None

    def items(self):  # file order of the stage: truth first
        order = ("truth", "flux", "ivar", "loglam", "id", "z", "split")
        return [(k, getattr(self, k)) for k in order if getattr(self, k) is not None]


@dataclasses.dataclass(frozen=True, eq=False)
class Spectra(NpzArtefact):
    """Rest-frame, resampled, normalised spectra (``data preprocess``).

    ``wave`` (n_pix,) rest-frame air bin centres (A); ``flux``, ``ivar``, ``coverage``
    (n, n_pix) in normalised units; ``norm`` (n,) the factor divided out (1e-17
    erg/s/cm^2/A); ``id``, ``z`` (n,); ``truth`` (n, n_pix) noise-free, same units;
    ``split`` (n,) ``train`` / ``test``.
    """

    KIND: ClassVar[str] = "preprocessed-spectra"
    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    norm: np.ndarray
    coverage: np.ndarray | None = None
    id: np.ndarray | None = None
    z: np.ndarray | None = None
    truth: np.ndarray | None = None
    split: np.ndarray | None = None

    def require(self, *names: str, source: str = "spectra") -> Self:
        """Raise a DataError naming ``source`` when an optional array the caller needs is absent."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise DataError(f"{source}: missing array(s) {', '.join(missing)}")
        return self


@dataclasses.dataclass(frozen=True, eq=False)
class NoisySet(NpzArtefact):
    """Noise-added realisations of :class:`Spectra` (``data noise``).

    ``noisy`` (r, n, n_pix) float32 renormalised; ``renorm`` (r, n) the factors divided by;
    ``sigma`` (n_pix,) the added noise's per-pixel sigma; ``seeds`` (r,).
    """

    KIND: ClassVar[str] = "noise-realisations"
    noisy: np.ndarray
    renorm: np.ndarray
    sigma: np.ndarray
    seeds: np.ndarray | None = None

    def noise_record(self, params: Any) -> dict[str, Any]:
        """What noise a model trained on this set saw (``preprocess.json``'s ``noise``)."""
        return params.noise.model_dump()


@dataclasses.dataclass(frozen=True, eq=False)
class DesiSet(NpzArtefact):
    """DESI-like spectra in the layout of :class:`NoisySet` plus their provenance (``mzr desi``);
    see :func:`specdenoise.data.desi.desi_like` for every array."""

    KIND: ClassVar[str] = "DESI-like-spectra"
    noisy: np.ndarray
    renorm: np.ndarray
    sigma: np.ndarray
    ivar: np.ndarray
    clean: np.ndarray
    wave: np.ndarray
    id: np.ndarray
    split: np.ndarray
    dimming: np.ndarray
    clean_norm: np.ndarray
    amplitude: np.ndarray
    amplitude_coadds: np.ndarray
    envelope_median: np.ndarray
    z_desi: np.ndarray

    def noise_record(self, params: Any) -> dict[str, Any]:
        """DESI-like noise: the ``mzr.desi`` settings and the realised amplitude (not ``noise``)."""
        return {
            "model": "desi",
            **params.mzr.desi.model_dump(),
            "amplitude": float(self.amplitude),
            "renormalise": "debiased",
        }


#: Where the noise stage writes the realisations of the levels other than ``noise.sigma``.
NOISY_LEVELS_DIR = Path("data/processed/noisy_levels")


def level_name(level: float) -> str:
    """A noise level as it appears in file and model names: ``0.005`` -> ``"0.005"``."""
    return f"{float(level):g}"


def noisy_level_path(levels_dir: str | Path, level: float) -> Path:
    """The file of one noise level's realisations: ``<levels_dir>/sigma_<level>.npz``."""
    return Path(levels_dir) / f"sigma_{level_name(level)}.npz"


def load_noisy(path: str | Path) -> NoisySet | DesiSet:
    """A noise-added set: the paper's Gaussian realisations or the DESI-like set, by content."""
    arrays = load_npz(path)
    cls = DesiSet if "amplitude" in arrays else NoisySet
    return cls.from_arrays(arrays, str(path))


def check_pair(pre: Spectra, noisy: NoisySet | DesiSet, spectra: str | Path, noisy_path: str | Path) -> None:
    """Raise a :class:`DataError` naming both files unless ``noisy`` holds realisations (r, n, n_pix)
    of exactly the (n, n_pix) spectra of ``pre``."""
    want, got = tuple(np.shape(pre["flux"])), tuple(np.shape(noisy["noisy"]))
    if len(got) != 3 or got[1:] != want:
        raise DataError(
            f"{noisy_path}: noise-added spectra of shape {got} do not match the {want} spectra of {spectra} "
            "(make both with the same parameters)"
        )


def load_sample(path: str | Path, columns: tuple[str, ...] = SAMPLE_COLUMNS) -> Any:
    """A selected sample or catalogue (pandas DataFrame), checked for ``columns``."""
    return load_table(path, required=columns)
