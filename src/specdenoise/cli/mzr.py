"""``specdenoise mzr ...``: the mass-metallicity test (paper section 5). One DVC stage each."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

mzr_app = typer.Typer(
    help="Mass-metallicity test: star-forming sample -> DESI-like spectra -> VAE -> O3N2 MZR (Fig. 10).",
    no_args_is_help=True,
)
ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="Parameters file (validated).")]


@mzr_app.command("select")
def select_cmd(
    params: ParamsOpt = Path("params.yaml"),
    catalogue: Annotated[Path, typer.Option(help="Parent catalogue from `data universe`.")] = Path("data/raw/universe.parquet"),
    out: Annotated[Path, typer.Option(help="Star-forming sample (Parquet).")] = Path("data/interim/sf_sample.parquet"),
    report: Annotated[Path, typer.Option(help="Selection report (JSON).")] = Path("reports/sf_selection.json"),
) -> None:
    """Star-forming galaxies in bins of H-alpha flux (mzr.select) with their train/test split."""
    from specdenoise.io import load_table, save_json, save_table
    from specdenoise.data.select import FLUX_COLUMN, select_sample

    from specdenoise.cli import _done, _params

    t0 = time.perf_counter()
    p = _params(params)
    cat = load_table(catalogue, required=("id", FLUX_COLUMN, "class", "log_mass", "log_sfr", "oh"))
    sample, rep = select_sample(cat, p.mzr.select)
    save_json(report, rep)
    save_table(out, sample)
    _done("mzr select", t0)
    bins = ", ".join(str(b["selected"]) for b in rep["bins"])
    typer.echo(f"mzr select: {rep['n_selected']} star-forming galaxies ({rep['n_train']} train / {rep['n_test']} test), per bin [{bins}] -> {out}")


@mzr_app.command("desi-noise")
def desi_noise_cmd(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Noise shape (.npz); provenance JSON beside it.")] = Path("data/external/desi/noise_shape.npz"),
) -> None:
    """Fetch the real DESI coadds from the fastspecfit wheel and derive the noise shape sigma(lambda)."""
    from specdenoise.data.desi import fetch_coadds, noise_shape, provenance_json
    from specdenoise.io import save_npz, save_text

    from specdenoise.cli import _done, _params

    t0 = time.perf_counter()
    p = _params(params)
    prov = fetch_coadds(p.mzr.desi, out.parent)
    shape = noise_shape([out.parent / c for c in p.mzr.desi.coadds])
    save_npz(out, **shape)
    save_text(out.with_suffix(".json"), provenance_json(prov, shape))
    _done("mzr desi-noise", t0)
    typer.echo(f"mzr desi-noise: {len(p.mzr.desi.coadds)} DESI coadds from {prov['wheel']}, median sigma {shape['sigma_median'].round(3).tolist()} -> {out}")


@mzr_app.command("desi")
def desi_cmd(
    params: ParamsOpt = Path("params.yaml"),
    observed: Annotated[Path, typer.Option(help="Observed star-forming spectra (with noise-free truth) from `data observe`.")] = Path("data/interim/sf_observed.npz"),
    noise_shape: Annotated[Path, typer.Option(help="Noise shape from `mzr desi-noise`.")] = Path("data/external/desi/noise_shape.npz"),
    out: Annotated[Path, typer.Option(help="DESI-like spectra in the layout of `data noise` (.npz).")] = Path("data/processed/desi_noisy.npz"),
) -> None:
    """Move every galaxy to z = mzr.desi.z (dimming + redshift) and add DESI-like noise."""
    from specdenoise.data.desi import desi_like
    from specdenoise.io import load_npz, save_npz

    from specdenoise.cli import _done, _params

    t0 = time.perf_counter()
    p = _params(params)
    obs = load_npz(observed, required=("loglam", "truth", "z", "id"))
    res = desi_like(obs, p.mzr.desi, p.preprocess, noise_shape)
    save_npz(out, **res)
    _done("mzr desi", t0)
    typer.echo(
        f"mzr desi: {len(res['id'])} spectra at z={p.mzr.desi.z}, median dimming {float(__import__('numpy').median(res['dimming'])):.3f}, "
        f"noise amplitude {float(res['amplitude']):.3g} ({float(res['amplitude'] / res['amplitude_coadds']):.1f}x the real coadds) -> {out}"
    )


@mzr_app.command("evaluate")
def evaluate_cmd(
    params: ParamsOpt = Path("params.yaml"),
    spectra: Annotated[Path, typer.Option(help="Preprocessed original star-forming spectra.")] = Path("data/processed/sf_spectra.npz"),
    desi: Annotated[Path, typer.Option(help="DESI-like spectra from `mzr desi`.")] = Path("data/processed/desi_noisy.npz"),
    sample: Annotated[Path, typer.Option(help="Star-forming sample from `mzr select`.")] = Path("data/interim/sf_sample.parquet"),
    templates: Annotated[Path, typer.Option(help="E-MILES templates from `specdenoise templates`.")] = Path("data/external/emiles_ppxf826.npz"),
    model: Annotated[str | None, typer.Option(help="Model URI (default models:/<mzr.registered_model>@champion).")] = None,
    out: Annotated[Path, typer.Option(help="Metrics (JSON).")] = Path("reports/mzr.json"),
    out_md: Annotated[Path, typer.Option(help="Table (Markdown).")] = Path("reports/mzr.md"),
    figure: Annotated[Path, typer.Option(help="Figure 10 (PNG).")] = Path("reports/figures/mzr/fig10_mzr.png"),
    tracking: Annotated[bool, typer.Option("--tracking/--no-tracking", help="Promote the champion and log the metrics to MLflow.")] = True,
) -> None:
    """Metallicities from original, DESI-like and de-noised spectra; scatter, SFR trend, Fig. 10."""
    from specdenoise.survey.denoiser import Denoiser
    from specdenoise.io import load_npz, load_table, save_json, save_text
    from specdenoise.evaluation.mzr import TITLES, figure10, render_markdown, run

    from specdenoise.cli import _done, _params

    t0 = time.perf_counter()
    p = _params(params)
    pre = load_npz(spectra, required=("flux", "ivar", "truth", "split", "id"))
    dz = load_npz(desi, required=("noisy", "ivar", "id"))
    smp = load_table(sample, required=("id", "log_mass", "log_sfr", "oh"))
    champion = None
    if tracking:
        from specdenoise import tracking as trk

        trk.setup(p.tracking)
        cfg = p.tracking.model_copy(update={"registered_model": p.mzr.registered_model})
        champion = trk.set_champion(cfg)
    uri = model or f"models:/{p.mzr.registered_model}@champion"
    den = Denoiser.load(uri, params=p)
    res = run(p, pre, dz, smp, templates, den.model)
    figure10(res, res.pop("_mass"), res.pop("_sfr"), figure, TITLES)
    res.pop("_arrays")
    res.update(model_uri=uri, champion=champion, provenance={k: v for k, v in den.provenance.items() if isinstance(v, (str, int, float))})
    flat = {f"mzr_{k}_{m}": v for k, st in res["sets"].items() for m, v in st.items() if isinstance(v, (int, float))}
    if tracking:
        import mlflow

        from specdenoise import tracking as trk

        with mlflow.start_run(experiment_id=trk.setup(p.tracking), run_name="mzr"):
            mlflow.set_tags({"role": "mzr", "sample": "desi", "benchmark": trk.benchmark_tag(p), "model_uri": uri})
            mlflow.log_metrics({k: float(v) for k, v in flat.items() if v == v})
            mlflow.log_artifact(str(figure), artifact_path="figures")
    save_json(out, {**res, "metrics": flat})
    save_text(out_md, render_markdown(res))
    _done("mzr evaluate", t0)
    s = res["sets"]
    typer.echo(
        "mzr: measurable " + ", ".join(f"{k} {100 * v['fraction_measurable']:.0f}%" for k, v in s.items())
        + "; scatter " + ", ".join(f"{k} {v['scatter']:.3f}" for k, v in s.items()) + f" dex -> {out}"
    )


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add the ``mzr`` command group."""
    app.add_typer(mzr_app, name="mzr")
