"""Collect every trained model's test metrics, promote the champion VAE, draw the figures.

Figures (paper section 4, saved under ``reports/figures`` and logged to MLflow):
``fig5_loss_history.png`` (training / validation loss of the AE and VAE), ``fig6_latent.png``
(latent means of the 6-D VAE coloured by class), ``fig7_loss_vs_dim.png`` (mean test loss vs
latent dimension per family), ``fig8_reconstructions.png`` (examples at the smallest and
largest dimension with residuals) and ``worst_reconstructions.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params


#: Paper Tables 4 (AE) and 5 (VAE): latent dimension -> (dropout, units per layer).
PAPER_HYPER = {
    "ae": {2: (0.8, [900, 800, 400, 300]), 4: (0.5, [900, 900, 500, 400]), 6: (0.7, [1000, 900, 800, 800]), 10: (0.9, [900, 800, 800, 600])},
    "vae": {2: (0.8, [1000, 900, 600, 200]), 4: (0.7, [1000, 1000, 700, 500]), 6: (0.5, [800, 800, 700, 600]), 10: (0.9, [900, 900, 600, 400])},
}


def collect(models_dir: Path) -> list[dict[str, Any]]:
    """Read ``<models_dir>/<family>_<dim>/record.json`` of every trained model."""
    from specdenoise.errors import DataError

    records = []
    for path in sorted(Path(models_dir).glob("*/record.json")):
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg})") from None
    if not records:
        raise DataError(f"{models_dir}: no trained models (no */record.json)")
    return records


def summary_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        m = r["metrics"]
        rows.append(
            {
                "family": r["family"],
                "latent_dim": r["latent_dim"],
                "test_loss": m["test_loss"],
                "test_loss_truth": m["test_loss_truth"],
                "gain": m["gain"],
                "gain_truth": m["gain_truth"],
                "input_loss": m["input_loss"],
                "epochs": m.get("epochs", 0),
                "train_seconds": m.get("train_seconds", 0.0),
                "seconds_per_epoch": m.get("seconds_per_epoch"),
                "inference_spectra_per_s": m["inference_spectra_per_s"],
                "n_parameters": m.get("n_parameters"),
                "hyper": r.get("hyper", {}),
                "run_id": r.get("run_id"),
            }
        )
    return sorted(rows, key=lambda x: (x["family"], x["latent_dim"]))


def render_markdown(rows: list[dict[str, Any]], champion: dict[str, Any] | None) -> str:
    out = [
        "# Model evaluation (test set)",
        "",
        "Mean eq.-3 weighted loss per spectrum against the SDSS-like observed target and against the noise-free truth;",
        "gain = loss of the noise-added input / loss of the model.",
        "",
        "| family | dim | test loss (observed) | test loss (truth) | gain | gain (truth) | epochs | train s | s/epoch | spectra/s | hyper-parameters |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        spe = f"{r['seconds_per_epoch']:.2f}" if r.get("seconds_per_epoch") else "-"
        hp = ", ".join(f"{k}={v}" for k, v in r["hyper"].items()) if r["hyper"] else "-"
        out.append(
            f"| {r['family']} | {r['latent_dim']} | {r['test_loss']:.1f} | {r['test_loss_truth']:.1f} | {r['gain']:.1f} | "
            f"{r['gain_truth']:.1f} | {r['epochs']} | {r['train_seconds']:.1f} | {spe} | {r['inference_spectra_per_s']:.0f} | {hp} |"
        )
    if rows:
        out += ["", f"Noise-added input: loss {rows[0]['input_loss']:.1f} against the observed target."]
    neural = [r for r in rows if r["family"] in PAPER_HYPER and r["hyper"].get("units")]
    if neural:
        out += ["", "## Chosen hyper-parameters next to the paper's Tables 4 (AE) and 5 (VAE)", ""]
        out += ["| family | dim | dropout | units | paper dropout | paper units |", "|---|---:|---:|---|---:|---|"]
        for r in neural:
            pd_, pu = PAPER_HYPER[r["family"]].get(r["latent_dim"], (None, None))
            out.append(
                f"| {r['family']} | {r['latent_dim']} | {r['hyper']['dropout']} | {r['hyper']['units']} | "
                f"{pd_ if pd_ is not None else '-'} | {pu if pu else '-'} |"
            )
    if champion:
        out += ["", f"Champion: `models:/{champion['model']}@champion` = version {champion['version']} (run {champion['run_id']}, test loss {champion['test_loss']:.1f})."]
    return "\n".join(out) + "\n"


def figures(records: list[dict[str, Any]], models_dir: Path, pre: dict, noisy: dict, sample, params: Params, fig_dir: Path) -> list[Path]:
    """Draw the paper's figures from the trained models; return the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specdenoise.io import atomic_path
    from specdenoise.models import load_model
    from specdenoise.training.train import training_data

    fig_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name):
        path = fig_dir / name
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        written.append(path)

    fams = sorted({r["family"] for r in records})
    # Fig. 5: loss histories
    neural = [r for r in records if r["family"] in ("ae", "vae") and r["history"].get("loss")]
    if neural:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
        for ax, fam in zip(axes, ("ae", "vae")):
            for r in sorted((r for r in neural if r["family"] == fam), key=lambda r: r["latent_dim"]):
                (ln,) = ax.plot(r["history"]["loss"], label=f"{r['latent_dim']}-D train")
                ax.plot(r["history"]["val_loss"], ls="--", color=ln.get_color(), label=f"{r['latent_dim']}-D val")
            ax.set(title=fam.upper(), xlabel="epoch", ylabel="loss (eq. 3)", yscale="log")
            ax.legend(fontsize=7)
        save(fig, "fig5_loss_history.png")
    # Fig. 7: test loss vs latent dimension
    fig, ax = plt.subplots(figsize=(6, 4))
    for fam in fams:
        rs = sorted((r for r in records if r["family"] == fam), key=lambda r: r["latent_dim"])
        ax.plot([r["latent_dim"] for r in rs], [r["metrics"]["test_loss"] for r in rs], "o-", label=fam.upper())
    ax.axhline(records[0]["metrics"]["input_loss"], color="grey", ls=":", label="noise-added input")
    ax.set(xlabel="latent dimension", ylabel="mean test loss (eq. 3)", yscale="log")
    ax.legend()
    save(fig, "fig7_loss_vs_dim.png")
    # Figs. 6, 8 and worst reconstructions need predictions
    _, test = training_data(pre, noisy, params)
    wave = pre["wave"]
    classes = sample["class"].astype(str).to_numpy()[test["index"]]
    dims = sorted({r["latent_dim"] for r in records})
    best_family = min(records, key=lambda r: r["metrics"]["test_loss"])["family"]
    pick = np.random.default_rng(params.train.seed).choice(len(test["x"]), size=3, replace=False)
    fig, axes = plt.subplots(len(pick), 2, figsize=(13, 3 * len(pick)), sharex=True)
    for col, dim in enumerate((dims[0], dims[-1])):
        path = models_dir / f"{best_family}_{dim}" / "model"
        if not path.exists():
            continue
        pred = load_model(path).denoise(test["x"][pick])
        for row, i in enumerate(pick):
            ax = axes[row, col]
            ax.plot(wave, test["x"][i], color="0.75", lw=0.5, label="noise-added")
            ax.plot(wave, test["y"][i], lw=0.7, label="observed target")
            ax.plot(wave, pred[row], lw=0.9, label=f"{best_family.upper()} {dim}-D")
            ax.plot(wave, pred[row] - test["y"][i] - 0.05, lw=0.5, color="k", label="residual - 0.05")
            ax.set_title(f"{classes[i]}, {best_family.upper()} {dim}-D", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("rest wavelength (A)")
    save(fig, "fig8_reconstructions.png")
    # worst-reconstructed spectra of the best model overall
    best = min(records, key=lambda r: r["metrics"]["test_loss"])
    model = load_model(models_dir / f"{best['family']}_{best['latent_dim']}" / "model")
    pred = model.denoise(test["x"])
    from specdenoise.models.losses import weighted_mse

    loss = weighted_mse(pred, test["y"], test["w"])
    worst = np.argsort(loss)[::-1][:4]
    fig, axes = plt.subplots(len(worst), 1, figsize=(11, 2.6 * len(worst)), sharex=True)
    for ax, i in zip(np.atleast_1d(axes), worst):
        ax.plot(wave, test["y"][i], lw=0.7, label="observed target")
        ax.plot(wave, pred[i], lw=0.9, label="prediction")
        ax.set_title(f"{classes[i]}: loss {loss[i]:.0f} (median {np.median(loss):.0f})", fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    save(fig, "worst_reconstructions.png")
    # Fig. 6: latent space of the 6-D VAE (or the largest available) coloured by class
    vae_dims = [r["latent_dim"] for r in records if r["family"] == "vae"]
    if vae_dims:
        dim = 6 if 6 in vae_dims else max(vae_dims)
        vae = load_model(models_dir / f"vae_{dim}" / "model")
        if getattr(vae, "encoder", None) is not None:
            z = vae.encode(test["x"])
            k = min(dim, 4)
            fig, axes = plt.subplots(k - 1, k - 1, figsize=(3 * (k - 1), 3 * (k - 1)), squeeze=False)
            for a in range(1, k):
                for b in range(k - 1):
                    ax = axes[a - 1, b]
                    if b >= a:
                        ax.axis("off")
                        continue
                    for cls in np.unique(classes):
                        m = classes == cls
                        ax.scatter(z[m, b], z[m, a], s=3, label=cls)
                    ax.set(xlabel=f"z{b}", ylabel=f"z{a}")
            axes[0, 0].legend(fontsize=6, markerscale=3)
            fig.suptitle(f"VAE {dim}-D latent means (test set)")
            save(fig, "fig6_latent.png")
    return written
