"""The paper's model figures (section 4), saved under ``reports/figures/models`` and logged to MLflow.

``fig5_loss_history.png`` (training / validation loss of the iterative families),
``fig6_latent.png`` (latent means of the 6-D VAE coloured by class), ``fig7_loss_vs_dim.png``
(mean test loss vs latent dimension per family, +-1 seed sd; also ``loss_vs_dim.svg``),
``loss_vs_level.png`` / ``.svg`` (mean test loss vs noise level), ``fig8_reconstructions.png`` (examples at the
smallest and largest dimension with residuals) and ``worst_reconstructions.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.io import atomic_path
from specdenoise.models import get_family, load_model, store
from specdenoise.models.losses import weighted_mse
from specdenoise.training.splits import training_data


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write ``fig`` atomically as PNG, or as self-contained SVG when ``path`` ends in ``.svg``."""
    fmt = "svg" if path.suffix == ".svg" else "png"
    with atomic_path(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=fmt)
    _plt().close(fig)
    return path


def _by_family(records: list[dict[str, Any]], family: str) -> list[dict[str, Any]]:
    return sorted((r for r in records if r["family"] == family), key=lambda r: r["latent_dim"])


def fig5_loss_history(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Training / validation loss per epoch of every iterative family, one panel a family."""
    fams = sorted({r["family"] for r in records if get_family(r["family"]).iterative and r["history"].get("loss")})
    if not fams:
        return None
    fig, axes = _plt().subplots(1, len(fams), figsize=(5.5 * len(fams), 4), squeeze=False)
    for ax, fam in zip(axes[0], fams, strict=True):
        for r in (r for r in _by_family(records, fam) if r["history"].get("loss")):
            (ln,) = ax.plot(r["history"]["loss"], label=f"{r['latent_dim']}-D train")
            ax.plot(r["history"]["val_loss"], ls="--", color=ln.get_color(), label=f"{r['latent_dim']}-D val")
        ax.set(title=fam.upper(), xlabel="epoch", ylabel="loss (eq. 3)", yscale="log")
        ax.legend(fontsize=7)
    return _save(fig, path)


def _errorbar_panel(ax: Any, cells: list[dict[str, Any]], x_key: str) -> None:
    """One line per family (per family and dimension when ``x_key`` is the level): mean test loss
    over seeds with +-1 seed-sd error bars (none where a cell has one seed)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        label = c["family"].upper() if x_key == "latent_dim" else f"{c['family'].upper()} {c['latent_dim']}-D"
        groups.setdefault(label, []).append(c)
    for label, cs in sorted(groups.items()):
        cs = sorted(cs, key=lambda c: c[x_key])
        yerr = [c["test_loss_sd"] or 0.0 for c in cs]
        ns = sorted({c["n_seeds"] for c in cs})
        seeds = f"{ns[0]} seed{'s' if ns[0] > 1 else ''}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]} seeds"
        ax.errorbar(
            [c[x_key] for c in cs],
            [c["test_loss"] for c in cs],
            yerr=yerr,
            fmt="o-",
            capsize=3,
            label=f"{label} ({seeds})",
        )


def fig7_loss_vs_dim(cells: list[dict[str, Any]], paper_sigma: float, path: Path) -> Path:
    """Mean test loss against latent dimension at the paper level, one line a family, +-1 seed sd,
    the noise-added input as reference (``path``'s suffix picks PNG or SVG)."""
    at = [c for c in cells if c["level"] == paper_sigma]
    fig, ax = _plt().subplots(figsize=(6.5, 4.2))
    _errorbar_panel(ax, at, "latent_dim")
    ax.axhline(at[0]["input_loss"], color="grey", ls=":", label="noise-added input")
    ax.set(
        xlabel="latent dimension",
        ylabel="mean test loss, eq. 3 (dimensionless)",
        yscale="log",
        title=f"Test loss vs latent dimension (sigma = {paper_sigma:g}; error bars: seed sd)",
    )
    ax.set_xticks(sorted({c["latent_dim"] for c in at}))
    ax.legend(fontsize=7)
    return _save(fig, path)


def loss_vs_level(cells: list[dict[str, Any]], path: Path) -> Path | None:
    """Mean test loss against the noise level for the dimensions trained at several levels (+-1 seed sd)."""
    keys = {c["key"] for c in cells if sum(o["key"] == c["key"] for o in cells) > 1}
    at = [c for c in cells if c["key"] in keys]
    if not at:
        return None
    fig, ax = _plt().subplots(figsize=(6.5, 4.2))
    _errorbar_panel(ax, at, "level")
    ax.set(
        xlabel="added noise sigma (normalised flux units, unit-L2 spectra)",
        ylabel="mean test loss, eq. 3 (dimensionless)",
        xscale="log",
        yscale="log",
        title="Test loss vs noise level (error bars: seed sd)",
    )
    levels = sorted({c["level"] for c in at})
    ax.set_xticks(levels, [f"{lv:g}" for lv in levels])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    return _save(fig, path)


def fig8_reconstructions(
    records: list[dict[str, Any]],
    models_dir: Path,
    test: dict[str, np.ndarray],
    wave: np.ndarray,
    classes: np.ndarray,
    seed: int,
    path: Path,
) -> Path:
    """Three random test spectra de-noised by the best family at its smallest and largest dimension."""
    dims = sorted({r["latent_dim"] for r in records})
    best_family = min(records, key=lambda r: r["metrics"]["test_loss"])["family"]
    pick = np.random.default_rng(seed).choice(len(test["x"]), size=3, replace=False)
    fig, axes = _plt().subplots(len(pick), 2, figsize=(13, 3 * len(pick)), sharex=True)
    for col, dim in enumerate((dims[0], dims[-1])):
        mdir = models_dir / store.key(best_family, dim) / store.MODEL
        if not mdir.exists():
            continue
        pred = load_model(mdir).denoise(test["x"][pick])
        for row, i in enumerate(pick):
            ax = axes[row, col]
            ax.plot(wave, test["x"][i], color="0.75", lw=0.5, label="noise-added")
            ax.plot(wave, test["y"][i], lw=0.7, label="observed target")
            ax.plot(wave, pred[row], lw=0.9, label=f"{best_family.upper()} {dim}-D")
            ax.plot(wave, pred[row] - test["y"][i] - 0.05, lw=0.5, color="k", label="residual - 0.05")
            ax.set_title(f"{classes[i]}, {best_family.upper()} {dim}-D", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("rest wavelength (Angstrom)")
    for ax in axes[:, 0]:
        ax.set_ylabel("normalised flux (unit L2)")
    return _save(fig, path)


def worst_reconstructions(
    records: list[dict[str, Any]],
    models_dir: Path,
    test: dict[str, np.ndarray],
    wave: np.ndarray,
    classes: np.ndarray,
    path: Path,
) -> Path:
    """The four test spectra the best model reconstructs worst (eq.-3 loss)."""
    best = min(records, key=lambda r: r["metrics"]["test_loss"])
    pred = load_model(models_dir / store.key(best["family"], best["latent_dim"]) / store.MODEL).denoise(test["x"])
    loss = weighted_mse(pred, test["y"], test["w"])
    worst = np.argsort(loss)[::-1][:4]
    fig, axes = _plt().subplots(len(worst), 1, figsize=(11, 2.6 * len(worst)), sharex=True)
    for ax, i in zip(np.atleast_1d(axes), worst, strict=True):
        ax.plot(wave, test["y"][i], lw=0.7, label="observed target")
        ax.plot(wave, pred[i], lw=0.9, label="prediction")
        ax.set_title(f"{classes[i]}: loss {loss[i]:.0f} (median {np.median(loss):.0f})", fontsize=9)
        ax.set_ylabel("normalised flux (unit L2)")
    np.atleast_1d(axes)[-1].set_xlabel("rest wavelength (Angstrom)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return _save(fig, path)


def fig6_latent(
    records: list[dict[str, Any]], models_dir: Path, x: np.ndarray, classes: np.ndarray, path: Path
) -> Path | None:
    """Latent means (first four) of the 6-D (or largest) model of the first family with a posterior, by class."""
    fams = sorted({r["family"] for r in records if get_family(r["family"]).has_posterior})
    if not fams:
        return None
    dims = [r["latent_dim"] for r in _by_family(records, fams[0])]
    dim = 6 if 6 in dims else max(dims)
    model = load_model(models_dir / store.key(fams[0], dim) / store.MODEL)
    if getattr(model, "encoder", None) is None:
        return None
    z = model.encode(x)
    k = min(dim, 4)
    fig, axes = _plt().subplots(k - 1, k - 1, figsize=(3 * (k - 1), 3 * (k - 1)), squeeze=False)
    for a in range(1, k):
        for b in range(k - 1):
            ax = axes[a - 1, b]
            if b >= a:
                ax.axis("off")
                continue
            for cls in np.unique(classes):
                m = classes == cls
                ax.scatter(z[m, b], z[m, a], s=3, label=cls)
            ax.set(xlabel=f"latent mean z{b} (dimensionless)", ylabel=f"latent mean z{a} (dimensionless)")
    axes[0, 0].legend(fontsize=6, markerscale=3)
    shown = f"first {k} of {dim} latents" if k < dim else f"all {dim} latents"
    fig.suptitle(f"{fams[0].upper()} {dim}-D: latent means of the test set by class ({shown})")
    return _save(fig, path)


def figures(
    records: list[dict[str, Any]],
    models_dir: Path,
    pre: Any,
    noisy: Any,
    sample: Any,
    params: Params,
    fig_dir: Path,
    cells: list[dict[str, Any]],
) -> list[Path]:
    """Draw the paper's figures from the paper models' ``records`` and the seed / level ``cells``
    (:mod:`specdenoise.evaluation.rankings`); return the written paths."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    _, test = training_data(pre, noisy, params)
    wave = pre["wave"]
    classes = sample["class"].astype(str).to_numpy()[test["index"]]
    written = [
        fig5_loss_history(records, fig_dir / "fig5_loss_history.png"),
        fig7_loss_vs_dim(cells, params.noise.sigma, fig_dir / "fig7_loss_vs_dim.png"),
        fig7_loss_vs_dim(cells, params.noise.sigma, fig_dir / "loss_vs_dim.svg"),
        loss_vs_level(cells, fig_dir / "loss_vs_level.png"),
        loss_vs_level(cells, fig_dir / "loss_vs_level.svg"),
        fig8_reconstructions(
            records, models_dir, test, wave, classes, params.train.seed, fig_dir / "fig8_reconstructions.png"
        ),
        worst_reconstructions(records, models_dir, test, wave, classes, fig_dir / "worst_reconstructions.png"),
        fig6_latent(records, models_dir, test["x"], classes, fig_dir / "fig6_latent.png"),
    ]
    return [p for p in written if p is not None]
