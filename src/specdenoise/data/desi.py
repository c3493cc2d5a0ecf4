"""DESI-like spectra (paper section 5): the same galaxies moved to z = 0.1, with DESI noise.

Three steps, each a function:

1. :func:`fetch_coadds` takes the two real DESI coadds shipped in the fastspecfit wheel (the only
   real DESI spectra available offline; fetched from the package index by URL and sha256-checked:
   :func:`specdenoise.io.package_download`).
2. :func:`noise_shape` turns them into a noise-density shape s(lambda) (observed-frame air A):
   per-pixel sigma times sqrt(pixel width), each coadd divided by its median, the coadds
   combined by their median. Sky lines and the arm overlaps stay in the shape.
3. :func:`desi_like` moves each noise-free spectrum from its redshift z0 to ``mzr.desi.z``: the
   observed frame stretches by (1 + z)/(1 + z0) and the flux density scales by
   :func:`dimming` = D_L(z0)^2 (1 + z0) / (D_L(z)^2 (1 + z)) (Planck18, as the universe). Noise of
   sigma(lambda) = A s(lambda) / sqrt(pixel width) is then added in the observed frame
   (:class:`DesiNoise`, registered as ``"desi"`` in :data:`specdenoise.data.noise.NOISE_MODELS`).
   The amplitude A is set so that, for the sample's median galaxy, the noise in normalised
   units has an upper envelope (90th percentile over wavelength) of ``mzr.desi.envelope`` =
   0.04: the paper's statement of the DESI noise level (section 2). Brighter galaxies get
   relatively less noise, fainter ones more; the absolute noise is the same for all (a fixed
   exposure), as in a survey.

The DESI-like spectra are on the SDSS-like log grid of the universe (69 km/s pixels, noise
scaled to that pixel width); DESI's finer resolution is not modelled.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import DesiConfig, PreprocessConfig
from specdenoise.data.artefacts import DesiSet, Observed
from specdenoise.data.noise import NoiseModel, renormalisation
from specdenoise.data.preprocess import edges_from_centres_log, preprocess, resample, rest_grid
from specdenoise.errors import DataError
from specdenoise.io import atomic_path, load_npz, package_download, save_npz, save_text
from specdenoise.physics.relations import luminosity_distance_cm
from specdenoise.sources.observe import sdss_loglam
from specdenoise.survey.readers.desi import read_desi_coadd
from specdenoise.survey.readers.spectrum import sigma_from_ivar

COADD_DIR = "fastspecfit/test/data/"
#: Pinned sha256 of known wheels (PyPI's published digests); others are checked against the index only.
KNOWN_SHA256 = {"fastspecfit==3.6.1": "d4ad9053f40603a1d44c43508da681f4563120971fe8f2dc8c3a630a43a25133"}


def fetch_coadds(cfg: DesiConfig, dest: Path) -> dict[str, Any]:
    """Extract the configured coadds (and their Redrock files) from the fastspecfit wheel.

    Returns the provenance: package, wheel sha256, and the sha256 of every extracted file.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            wheel = package_download(cfg.package, tmp, sha256=KNOWN_SHA256.get(cfg.package))
        except DataError as exc:
            raise DataError(f"mzr.desi.package: {exc}") from None
        prov: dict[str, Any] = {
            "package": cfg.package,
            "wheel": wheel.name,
            "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "files": {},
        }
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for coadd in cfg.coadds:
                for name in (coadd, coadd.replace("coadd-", "redrock-", 1)):
                    member = COADD_DIR + name
                    if member not in names:
                        if name == coadd:
                            raise DataError(f"mzr.desi.coadds: {name} is not in {wheel.name} ({COADD_DIR})")
                        continue
                    data = zf.read(member)
                    with atomic_path(dest / name) as tmp_path:
                        tmp_path.write_bytes(data)
                    prov["files"][name] = hashlib.sha256(data).hexdigest()
    return prov


def noise_shape(paths: list[Path]) -> dict[str, np.ndarray]:
    """Noise-density shape of real DESI coadds.

    Parameters
    ----------
    paths : list of Path
        DESI coadd files (one target each is used: the first).

    Returns
    -------
    dict
        ``wave`` (k,) observed-frame air A (0.8 A lattice); ``shape`` (k,) sigma x sqrt(pixel
        width) relative to its median (dimensionless, median 1); ``per_coadd`` (c, k) the
        shape of each coadd; ``sigma_median`` (c,) each coadd's median per-pixel sigma
        (1e-17 erg/s/cm^2/A).
    """
    shapes, med, wave = [], [], None
    for p in paths:
        s = read_desi_coadd(p)[0]
        if wave is None:
            wave = s.wave
        elif len(s.wave) != len(wave) or not np.allclose(s.wave, wave):
            raise DataError(f"{p}: wavelength grid differs from {paths[0]}")
        sig = sigma_from_ivar(s.ivar)
        good = np.isfinite(sig)
        if good.sum() < 0.5 * len(sig):
            raise DataError(f"{p}: fewer than half the pixels have a positive inverse variance")
        sig = np.interp(wave, wave[good], sig[good])
        dens = sig * np.sqrt(np.gradient(wave))
        med.append(float(np.median(sig)))
        shapes.append(dens / np.median(dens))
    per = np.array(shapes)
    shape = np.median(per, axis=0)
    return {
        "wave": np.asarray(wave),
        "shape": shape / np.median(shape),
        "per_coadd": per,
        "sigma_median": np.array(med),
    }


class DesiNoise(NoiseModel):
    """DESI-like Gaussian noise: sigma(lambda) = amplitude x shape(lambda) / sqrt(pixel width).

    ``wave`` passed to :meth:`sigma` is the observed-frame wavelength of each pixel (A); the
    result is in the flux units of ``amplitude`` (1e-17 erg/s/cm^2/A for :func:`desi_like`).
    """

    name = "desi"

    def __init__(self, wave_ref: np.ndarray, shape_ref: np.ndarray, amplitude: float = 1.0) -> None:
        self.wave_ref = np.asarray(wave_ref, dtype=float)
        self.shape_ref = np.asarray(shape_ref, dtype=float)
        self.amplitude = float(amplitude)

    def sigma(self, wave: np.ndarray, n: int) -> np.ndarray:
        wave = np.asarray(wave, dtype=float)
        if wave[0] < self.wave_ref[0] or wave[-1] > self.wave_ref[-1]:
            raise DataError(
                f"DESI noise: wavelengths {wave[0]:.0f}-{wave[-1]:.0f} A outside the DESI range "
                f"{self.wave_ref[0]:.0f}-{self.wave_ref[-1]:.0f} A"
            )
        s = np.interp(wave, self.wave_ref, self.shape_ref) / np.sqrt(np.gradient(wave))
        return (self.amplitude * s)[None, :]

    @classmethod
    def from_file(cls, path: Path, amplitude: float = 1.0) -> DesiNoise:
        d = load_npz(path, required=("wave", "shape"))
        return cls(d["wave"], d["shape"], amplitude)


def dimming(z0: np.ndarray, z1: float) -> np.ndarray:
    """Factor on the observed flux density when a galaxy moves from ``z0`` to ``z1``.

    f_new(lambda (1 + z1)) = f_old(lambda (1 + z0)) x D_L(z0)^2 (1 + z0) / (D_L(z1)^2 (1 + z1)),
    with Planck18 luminosity distances.
    """
    z0 = np.asarray(z0, dtype=float)
    d0 = luminosity_distance_cm(z0)
    d1 = luminosity_distance_cm(np.array([z1]))[0]
    return (d0 / d1) ** 2 * (1 + z0) / (1 + z1)


def desi_like(
    observed: dict[str, np.ndarray], cfg: DesiConfig, pcfg: PreprocessConfig, noise_file: Path
) -> dict[str, Any]:
    """DESI-like versions of noise-free observed spectra, preprocessed for the de-noiser.

    Parameters
    ----------
    observed : dict
        From :func:`specdenoise.sources.observe.observe`: ``loglam`` (k,), ``truth`` (n, k) noise-free
        observed-frame flux (1e-17 erg/s/cm^2/A), ``z``, ``id`` (n,), optional ``split``.
    cfg : DesiConfig
    pcfg : PreprocessConfig
        The preprocessing of the main pipeline (grid, normalisation).
    noise_file : Path
        Shape from :func:`noise_shape` (``.npz``).

    Returns
    -------
    dict
        ``noisy`` (1, n, n_pix): DESI-like spectra in the rest frame, divided by their
        noise-debiased L2 norm (the input of the de-noiser, as ``noise.npz``); ``renorm``
        (1, n); ``sigma`` (n_pix,) the mean per-pixel noise sigma in those units; ``ivar``
        (n, n_pix) their inverse variance; ``clean`` (n, n_pix) the noise-free DESI-like
        spectra in the same units; ``wave``, ``id``, ``split``; ``dimming`` (n,);
        ``clean_norm`` (n,) the norm of the noise-free rest-frame DESI-like spectra (1e-17 units);
        ``amplitude`` (A, 1e-17 erg/s/cm^2/A sqrt(A)); ``envelope_median`` the realised
        envelope of the median galaxy; ``z_desi``.
    """
    loglam = np.asarray(observed["loglam"], dtype=float)
    truth = np.asarray(observed["truth"], dtype=float)
    z0 = np.asarray(observed["z"], dtype=float)
    ids = np.asarray(observed["id"])
    if np.any(z0 >= cfg.z):
        raise DataError(f"mzr.desi.z: {cfg.z} is not above every galaxy's redshift (max {z0.max():.3f})")
    edges = edges_from_centres_log(loglam)
    out_loglam = sdss_loglam()
    out_edges = edges_from_centres_log(out_loglam)
    k = dimming(z0, cfg.z)
    clean, _, _ = resample(out_edges, edges, truth, None, shift=(1 + z0) / (1 + cfg.z))
    clean *= k[:, None]
    zz = np.full(len(z0), cfg.z)
    base = {"loglam": out_loglam, "z": zz, "id": ids}
    pre_clean = preprocess({**base, "flux": clean, "ivar": np.ones_like(clean)}, pcfg, source="DESI-like (noise-free)")
    # amplitude: the median galaxy's normalised noise has the configured envelope
    wave_obs = 10**out_loglam
    model = DesiNoise.from_file(noise_file, 1.0)
    unit_sig = model.sigma(wave_obs, 1)[0]
    n_edges, _ = rest_grid(pcfg)
    _, unit_ivar_rest, _ = resample(
        n_edges, out_edges, np.ones((1, len(out_loglam))), 1.0 / unit_sig[None, :] ** 2, shift=np.array([1 + cfg.z])
    )
    unit_rest = (1 + cfg.z) / np.sqrt(unit_ivar_rest[0])  # rest-frame f_lambda sigma per 825-grid bin, A = 1
    env_unit = np.percentile(unit_rest / np.median(pre_clean["norm"]), 90)
    amplitude = cfg.envelope / env_unit
    model.amplitude = amplitude
    flux, sig = model.realise(clean, wave_obs, np.random.default_rng(cfg.seed))
    sig = np.broadcast_to(sig, clean.shape)
    pre = preprocess({**base, "flux": flux, "ivar": 1.0 / sig**2}, pcfg, source="DESI-like")
    sig_n = sigma_from_ivar(pre["ivar"], fill=0.0)
    d = renormalisation(pre["flux"], sig_n, pcfg.norm, debias=True)
    x = pre["flux"] / d[:, None]
    clean_n = pre_clean["flux"] * (pre_clean["norm"] / (pre["norm"] * d))[:, None]
    ivar = pre["ivar"] * d[:, None] ** 2
    return {
        "noisy": x[None].astype(np.float32),
        "renorm": d[None],
        "sigma": np.mean(sig_n / d[:, None], axis=0),
        "ivar": ivar.astype(np.float32),
        "clean": clean_n.astype(np.float32),
        "wave": pre["wave"],
        "id": ids,
        "split": np.asarray(observed.get("split", np.array(["train"] * len(ids))), dtype="U8"),
        "dimming": k,
        "clean_norm": pre_clean["norm"],
        "amplitude": np.float64(amplitude),
        "amplitude_coadds": np.median(np.load(noise_file)["sigma_median"] * np.sqrt(0.8)),
        "envelope_median": np.float64(cfg.envelope),
        "z_desi": np.float64(cfg.z),
    }


def provenance_json(prov: dict[str, Any], shape: dict[str, np.ndarray]) -> str:
    """Provenance of the noise shape, as JSON text."""
    return json.dumps(
        {**prov, "sigma_median_per_coadd": shape["sigma_median"].tolist(), "n_pix": int(len(shape["wave"]))}, indent=2
    )


def run_noise_shape(cfg: DesiConfig, out: Path) -> str:
    """The ``desi_noise`` stage: the coadds from the wheel into ``out``'s folder, their noise shape to ``out``."""
    prov = fetch_coadds(cfg, out.parent)
    shape = noise_shape([out.parent / c for c in cfg.coadds])
    save_npz(out, **shape)
    save_text(out.with_suffix(".json"), provenance_json(prov, shape))
    return (
        f"mzr desi-noise: {len(cfg.coadds)} DESI coadds from {prov['wheel']}, "
        f"median sigma {shape['sigma_median'].round(3).tolist()} -> {out}"
    )


def run(cfg: DesiConfig, pcfg: PreprocessConfig, observed: Path, noise_file: Path, out: Path) -> str:
    """The ``desi`` stage: DESI-like versions of the observed (noise-free) spectra to ``out``."""
    res = DesiSet.from_arrays(desi_like(Observed.load(observed), cfg, pcfg, noise_file))
    res.save(out)
    return (
        f"mzr desi: {len(res.id)} spectra at z={cfg.z}, median dimming {float(np.median(res.dimming)):.3f}, "
        f"noise amplitude {float(res.amplitude):.3g} "
        f"({float(res.amplitude / res.amplitude_coadds):.1f}x the real coadds) -> {out}"
    )
