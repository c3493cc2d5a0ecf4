"""The ``specdenoise`` command line (Typer). One DVC stage = one command.

Logs and progress go to stderr, results to stdout. Bad input gives a one-line ``error:``
message naming the file, field or parameter and a non-zero exit, never a traceback or a
partial output file.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.errors import SpecdenoiseError

log = logging.getLogger("specdenoise")

app = typer.Typer(
    name="specdenoise",
    help="De-noise galaxy optical spectra with PCA, autoencoders and VAEs (after Scourfield et al.).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Data stages: universe -> select -> observe -> preprocess -> noise -> validate.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="Parameters file (validated).")]
SpectraOpt = Annotated[Path, typer.Option("--spectra", help="Preprocessed spectra (.npz from `data preprocess`).")]
NoisyOpt = Annotated[Path, typer.Option("--noisy", help="Noise realisations (.npz from `data noise`).")]
SampleOpt = Annotated[Path, typer.Option("--sample", help="Selected sample (Parquet from `data select`).")]
SPECTRA = Path("data/processed/spectra.npz")
NOISY = Path("data/processed/noisy.npz")
SAMPLE = Path("data/interim/sample.parquet")
_STATE = {"progress": True}


@app.callback()
def _main(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging on stderr.")] = False,
) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy_lib in ("great_expectations", "matplotlib", "numexpr"):
        logging.getLogger(noisy_lib).setLevel(logging.DEBUG if verbose else logging.WARNING)
    _STATE["progress"] = not quiet and sys.stderr.isatty()


def _params(path: Path):
    from specdenoise.config import load_params

    return load_params(path)


def _done(what: str, t0: float, **facts: object) -> None:
    extra = ", ".join(f"{k}={v}" for k, v in facts.items())
    log.info("%s done in %.1f s%s", what, time.perf_counter() - t0, f" ({extra})" if extra else "")


@data_app.command("universe")
def universe_cmd(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Output catalogue (Parquet) of the parent pool.")] = Path(
        "data/raw/universe.parquet"
    ),
    n: Annotated[int | None, typer.Option(help="Override universe.n_galaxies (e.g. for a quick look).")] = None,
) -> None:
    """Draw the embedded galaxy universe: an MPA-JHU-like catalogue with known truth."""
    from collections import Counter

    from specdenoise.io import save_table_chunks
    from specdenoise.sources.universe import iter_catalogue, provenance

    t0 = time.perf_counter()
    p = _params(params)
    if p.data.source == "sdss":
        from specdenoise.cli.survey import sdss_universe

        return sdss_universe(p, out)
    counts: Counter = Counter()

    def chunks():
        for df in iter_catalogue(p.universe, n=n):
            counts.update(df["class"].astype(str))
            yield df

    total = save_table_chunks(out, chunks(), metadata=provenance(p.universe))["rows"]
    mix = {k: round(v / total, 4) for k, v in counts.most_common()}
    _done("universe", t0, n=total, out=str(out))
    typer.echo(f"universe: {total} galaxies -> {out}; class mix {mix}")


@data_app.command("select")
def select_cmd(
    params: ParamsOpt = Path("params.yaml"),
    catalogue: Annotated[Path, typer.Option(help="Parent catalogue from `data universe`.")] = Path("data/raw/universe.parquet"),
    out: Annotated[Path, typer.Option(help="Selected sample (Parquet).")] = Path("data/interim/sample.parquet"),
    report: Annotated[Path, typer.Option(help="Selection report (JSON).")] = Path("reports/selection.json"),
) -> None:
    """Select galaxies in bins of H-alpha flux and fix the train/test split."""
    from specdenoise.io import load_table, save_json, save_table
    from specdenoise.data.select import FLUX_COLUMN, select_sample

    t0 = time.perf_counter()
    p = _params(params)
    cat = load_table(catalogue, required=("id", FLUX_COLUMN))
    sample, rep = select_sample(cat, p.select)
    for b in rep["bins"]:
        if b["shortfall"]:
            log.warning("bin %d (%.2f-%.2f): only %d of %d galaxies", b["bin"], b["log_flux_lo"], b["log_flux_hi"], b["selected"], p.select.per_bin)
    save_json(report, rep)
    save_table(out, sample)
    _done("select", t0, n=len(sample))
    typer.echo(f"select: {rep['n_selected']} galaxies ({rep['n_train']} train / {rep['n_test']} test), short bins {rep['short_bins']} -> {out}")


@data_app.command("observe")
def observe_cmd(
    params: ParamsOpt = Path("params.yaml"),
    sample: Annotated[Path, typer.Option(help="Sample from `data select` (or any catalogue).")] = Path("data/interim/sample.parquet"),
    out: Annotated[Path, typer.Option(help="Observed-frame spectra (.npz).")] = Path("data/interim/observed.npz"),
) -> None:
    """Synthesise the observed-frame SDSS-like spectra (noise-free truth, noisy flux, ivar)."""
    import numpy as np

    from specdenoise.io import load_table, save_npz
    from specdenoise.sources.observe import observe

    t0 = time.perf_counter()
    p = _params(params)
    if p.data.source == "sdss":
        from specdenoise.cli.survey import sdss_observe

        return sdss_observe(p, sample, out)
    cat = load_table(sample, required=("id", "z"))
    obs = observe(cat, p.universe, progress=_STATE["progress"])
    split = np.asarray(cat["split"].astype(str).tolist() if "split" in cat.columns else ["train"] * len(cat), dtype="U8")
    save_npz(out, **obs, split=split)
    rate = len(cat) / max(time.perf_counter() - t0, 1e-9)
    _done("observe", t0, n=len(cat), spectra_per_s=f"{rate:.0f}")
    typer.echo(f"observe: {len(cat)} spectra x {obs['flux'].shape[1]} pixels ({rate:.0f} spectra/s) -> {out}")


@data_app.command("preprocess")
def preprocess_cmd(
    params: ParamsOpt = Path("params.yaml"),
    observed: Annotated[Path, typer.Option(help="Observed spectra from `data observe`.")] = Path("data/interim/observed.npz"),
    out: Annotated[Path, typer.Option(help="Preprocessed spectra (.npz).")] = Path("data/processed/spectra.npz"),
) -> None:
    """Shift to the rest frame, resample onto the common grid (flux-conserving) and normalise."""
    from specdenoise.io import load_npz, save_npz
    from specdenoise.data.preprocess import preprocess

    t0 = time.perf_counter()
    p = _params(params)
    obs = load_npz(observed, required=("loglam", "flux", "ivar", "z", "id"))
    pre = preprocess(obs, p.preprocess, source=str(observed))
    if "split" in obs:
        pre["split"] = obs["split"]
    save_npz(out, **pre)
    masked = float((pre["ivar"] == 0).any(axis=1).mean())
    _done("preprocess", t0, n=len(pre["flux"]))
    typer.echo(
        f"preprocess: {pre['flux'].shape[0]} x {pre['flux'].shape[1]} ({p.preprocess.norm} norm), "
        f"{100 * masked:.1f}% of spectra have masked bins -> {out}"
    )


@data_app.command("noise")
def noise_cmd(
    params: ParamsOpt = Path("params.yaml"),
    spectra: SpectraOpt = SPECTRA,
    out: Annotated[Path, typer.Option(help="Noise-added realisations (.npz).")] = Path("data/processed/noisy.npz"),
) -> None:
    """Add the paper's Gaussian noise (seeded realisations) and renormalise."""
    from specdenoise.io import load_npz, save_npz
    from specdenoise.data.noise import add_noise

    t0 = time.perf_counter()
    p = _params(params)
    pre = load_npz(spectra, required=("flux", "wave"))
    res = add_noise(pre["flux"], pre["wave"], p.noise, p.preprocess.norm)
    save_npz(out, **res)
    _done("noise", t0, realisations=p.noise.n_realisations)
    typer.echo(f"noise: {p.noise.n_realisations} realisation(s) of sigma={p.noise.sigma} ({p.noise.model}) -> {out}")


@data_app.command("validate")
def validate_cmd(
    params: ParamsOpt = Path("params.yaml"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    selection: Annotated[Path, typer.Option(help="Selection report.")] = Path("reports/selection.json"),
    report: Annotated[Path, typer.Option(help="Validation report (JSON) to write.")] = Path("reports/validation.json"),
) -> None:
    """Validate shapes, normalisation, catalogue ranges, bin counts and noise level (great-expectations)."""
    import json

    from specdenoise.errors import DataError
    from specdenoise.io import load_npz, load_table, save_json
    from specdenoise.data.validate import check, run_validation

    t0 = time.perf_counter()
    p = _params(params)
    pre = load_npz(spectra, required=("flux", "ivar", "wave", "id"))
    nz = load_npz(noisy, required=("noisy", "renorm", "sigma"))
    smp = load_table(sample, required=("id", "z", "class", "log_mass", "Halpha_flux_meas", "bin", "split"))
    try:
        rep = json.loads(Path(selection).read_text())
    except FileNotFoundError:
        raise DataError(f"{selection}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{selection}: not valid JSON ({exc.msg})") from None
    res = run_validation(p, pre, nz, smp, rep)
    save_json(report, res)
    check(res, str(report))
    n_exp = sum(len(s["results"]) for s in res["suites"].values())
    _done("validate", t0, expectations=n_exp)
    typer.echo(f"validate: {n_exp} expectations in {len(res['suites'])} suites passed -> {report}")


@data_app.command("summary")
def summary_cmd(
    params: ParamsOpt = Path("params.yaml"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    out_json: Annotated[Path, typer.Option(help="Metrics (JSON).")] = Path("reports/data_summary.json"),
    out_md: Annotated[Path, typer.Option(help="Tables next to the paper's (Markdown).")] = Path("reports/data_summary.md"),
) -> None:
    """Class mix (Table 1) and PCA variance of clean and noise-added spectra (Tables 2-3) next to the paper."""
    from specdenoise.io import load_npz, load_table, save_json, save_text
    from specdenoise.data.summary import data_summary, render_markdown

    t0 = time.perf_counter()
    p = _params(params)
    pre = load_npz(spectra, required=("flux", "truth", "split"))
    nz = load_npz(noisy, required=("noisy", "renorm"))
    smp = load_table(sample, required=("class",))
    summ = data_summary(pre, nz, smp, p)
    save_json(out_json, summ)
    save_text(out_md, render_markdown(summ))
    _done("summary", t0)
    typer.echo(render_markdown(summ))


@app.command("train")
def train_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model family: pca, wiener, ae or vae.")],
    latent_dim: Annotated[int, typer.Option("--latent-dim", "-d", help="Latent dimension (rank for pca/wiener).")],
    params: ParamsOpt = Path("params.yaml"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    out: Annotated[Path | None, typer.Option(help="Output folder (default models/<family>_<dim>).")] = None,
    tracking: Annotated[bool, typer.Option("--tracking/--no-tracking", help="Log the run to MLflow.")] = True,
    registered_model: Annotated[
        str | None, typer.Option(help="Register VAEs under this name (default tracking.registered_model).")
    ] = None,
    sample_tag: Annotated[str, typer.Option("--sample", help="Value of the run's 'sample' tag (e.g. main, desi).")] = "main",
    hyper_from: Annotated[
        Path | None, typer.Option(help="record.json of a trained model: re-train its architecture, no search.")
    ] = None,
) -> None:
    """Search hyper-parameters (AE/VAE), train, evaluate on the test set and log to MLflow."""
    import shutil

    from specdenoise.errors import ConfigError
    from specdenoise.io import load_npz
    from specdenoise.models import get_family
    from specdenoise.training.train import train_one

    t0 = time.perf_counter()
    p = _params(params)
    if registered_model:
        p = p.model_copy(update={"tracking": p.tracking.model_copy(update={"registered_model": registered_model})})
    get_family(model)
    hyper = None
    if hyper_from is not None:
        import json

        from specdenoise.errors import DataError

        try:
            hyper = json.loads(hyper_from.read_text())["hyper"]
        except FileNotFoundError:
            raise DataError(f"{hyper_from}: file not found (train that model first)") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{hyper_from}: not a training record with a 'hyper' field") from None
    if latent_dim <= 0:
        raise ConfigError(f"--latent-dim: must be positive, got {latent_dim}")
    pre = load_npz(spectra, required=("flux", "ivar", "truth", "wave", "split"))
    nz = load_npz(noisy, required=("noisy", "renorm", "sigma"))
    final = out or Path("models") / f"{model}_{latent_dim}"
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        rec = train_one(model, latent_dim, p, pre, nz, tmp, tracking=tracking, sample=sample_tag, progress=_STATE["progress"], hyper=hyper)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = rec["metrics"]
    _done("train", t0, model=f"{model}-{latent_dim}d")
    typer.echo(
        f"train {model} {latent_dim}-D: test loss {m['test_loss']:.1f} (truth {m['test_loss_truth']:.1f}), "
        f"gain {m['gain']:.1f}, {m.get('epochs', 0)} epochs, {m['train_seconds']:.1f} s -> {final}"
    )


@app.command("evaluate")
def evaluate_cmd(
    params: ParamsOpt = Path("params.yaml"),
    models_dir: Annotated[Path, typer.Option(help="Folder of trained models (<family>_<dim>/).")] = Path("models"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    out: Annotated[Path, typer.Option(help="Evaluation metrics (JSON).")] = Path("reports/evaluation.json"),
    out_md: Annotated[Path, typer.Option(help="Evaluation table (Markdown).")] = Path("reports/evaluation.md"),
    figures_dir: Annotated[Path, typer.Option(help="Where figures go.")] = Path("reports/figures/models"),
    tracking: Annotated[bool, typer.Option("--tracking/--no-tracking", help="Promote the champion in the MLflow registry.")] = True,
) -> None:
    """Compare every trained model, promote the best VAE to @champion and draw the figures."""
    from specdenoise.evaluation.evaluate import collect, figures, render_markdown, summary_table
    from specdenoise.io import load_npz, load_table, save_json, save_text

    t0 = time.perf_counter()
    p = _params(params)
    records = collect(models_dir)
    rows = summary_table(records)
    pre = load_npz(spectra, required=("flux", "ivar", "truth", "wave", "split"))
    nz = load_npz(noisy, required=("noisy", "renorm", "sigma"))
    smp = load_table(sample, required=("class",))
    paths = figures(records, models_dir, pre, nz, smp, p, figures_dir)
    champion = None
    if tracking:
        import mlflow

        from specdenoise import tracking as trk

        exp_id = trk.setup(p.tracking)
        champion = trk.set_champion(p.tracking)
        with mlflow.start_run(experiment_id=exp_id, run_name="evaluate"):
            mlflow.set_tags({"role": "evaluate", "benchmark": trk.benchmark_tag(p)})
            for path in paths:
                mlflow.log_artifact(str(path), artifact_path="figures")
            if champion:
                mlflow.log_params({"champion_version": champion["version"], "champion_run": champion["run_id"]})
    metrics = {f"{r['family']}_{r['latent_dim']}": {k: r[k] for k in ("test_loss", "test_loss_truth", "gain", "gain_truth")} for r in rows}
    save_json(out, {"models": metrics, "champion": champion, "rows": rows})
    csv = "family,latent_dim,test_loss,test_loss_truth\n" + "".join(
        f"{r['family']},{r['latent_dim']},{r['test_loss']:.6g},{r['test_loss_truth']:.6g}\n" for r in rows
    )
    save_text(out.with_name("loss_vs_dim.csv"), csv)
    text = render_markdown(rows, champion)
    save_text(out_md, text)
    _done("evaluate", t0, models=len(rows))
    typer.echo(text)


@app.command("templates")
def templates_cmd(
    out: Annotated[Path, typer.Option(help="Template file (ppxf sps_util .npz layout).")] = Path("data/external/emiles_ppxf826.npz"),
) -> None:
    """Build the E-MILES template library from the ppxf 8.2.6 source distribution (once)."""
    from specdenoise.physics.templates import build_emiles

    prov = build_emiles(out)
    typer.echo(f"templates: {prov['n_spectra']} E-MILES SSPs ({prov['source']}, sha256 {prov['sha256'][:12]}) -> {out}")


@app.command("lines")
def lines_cmd(
    params: ParamsOpt = Path("params.yaml"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    models_dir: Annotated[Path, typer.Option(help="Folder of trained models (<family>_<dim>/).")] = Path("models"),
    templates: Annotated[Path, typer.Option(help="E-MILES templates from `specdenoise templates`.")] = Path("data/external/emiles_ppxf826.npz"),
    out: Annotated[Path, typer.Option(help="Line metrics (JSON).")] = Path("reports/lines.json"),
    table: Annotated[Path, typer.Option(help="Table 6 (Markdown).")] = Path("reports/table6.md"),
    figures_dir: Annotated[Path, typer.Option(help="Where Fig. 9 goes.")] = Path("reports/figures/lines"),
    tracking: Annotated[bool, typer.Option("--tracking/--no-tracking", help="Log per-line metrics to each model's MLflow run.")] = True,
) -> None:
    """Measure emission lines on the test set for every model; sigma, sigma_fill, CRB; Table 6 and Fig. 9."""
    import json

    import numpy as np

    from specdenoise.io import load_npz, load_table, save_json, save_text
    from specdenoise.evaluation.lines import TABLE6_LINES, evaluate_lines, figure9, fitter_agreement, make_fast_fitter, table6_markdown
    from specdenoise.models import load_model
    from specdenoise.data.preprocess import rest_grid
    from specdenoise.training.train import training_data

    t0 = time.perf_counter()
    p = _params(params)
    pre = load_npz(spectra, required=("flux", "ivar", "truth", "wave", "split", "norm"))
    nz = load_npz(noisy, required=("noisy", "renorm", "sigma"))
    smp = load_table(sample, required=tuple(f"{ln}_flux" for ln in TABLE6_LINES))
    _, test = training_data(pre, nz, p)
    idx = test["index"]
    norm = pre["norm"][idx]
    edges, _ = rest_grid(p.preprocess)
    fast = make_fast_fitter(templates, edges, p.lines.sigma_kms, p.lines.n_components)
    ppxf_fitter = None
    if p.lines.fitter == "ppxf" or p.lines.ppxf_max_spectra > 0:
        from specdenoise.evaluation.ppxf_fit import PpxfFitter

        ppxf_fitter = PpxfFitter(templates, pre["wave"], cache_dir=Path("data/interim/ppxf_cache"), n_jobs=2, progress=_STATE["progress"])
    fit = ppxf_fitter if p.lines.fitter == "ppxf" else fast
    sets = {"observed": test["y"], "noisy": test["x"]}
    run_ids = {}
    for mdir in sorted(Path(models_dir).glob("*/model")):
        key = mdir.parent.name
        fam, _, dim = key.rpartition("_")
        if p.lines.dims and int(dim) not in p.lines.dims:
            continue
        sets[key] = load_model(mdir).denoise(test["x"])
        meta = mdir.parent / "metrics.json"
        if meta.exists():
            run_ids[key] = json.loads(meta.read_text()).get("run_id")
    truth = {ln: smp[f"{ln}_flux"].to_numpy()[idx] for ln in TABLE6_LINES}
    t_fit = time.perf_counter()
    res = evaluate_lines(sets, fit, truth, edges, norm, float(np.mean(nz["sigma"])), TABLE6_LINES, p.lines.sigma_kms, p.lines.n_bins, p.lines.seed)
    fit_s = time.perf_counter() - t_fit
    fits = res.pop("fits")
    n_spec = sum(len(v) for v in sets.values())
    models = {}
    for key, row in res["sets"].items():
        flat = {}
        for ln, m in row.items():
            for ref, tag in (("vs_observed", ""), ("vs_truth", "_truth")):
                if ref in m:
                    for stat in ("sigma", "sigma_fill", "frac_fit", "bias"):
                        flat[f"{stat}_{ln}{tag}"] = m[ref][stat]
        models[key] = flat
    out_obj = {"lines": list(TABLE6_LINES), "models": models, "details": res["sets"], "fit_fraction_observed": res["fit_fraction_observed"],
               "fitter": p.lines.fitter, f"{p.lines.fitter}_spectra_per_s": n_spec / fit_s, "n_test": int(len(idx))}
    if ppxf_fitter is not None and p.lines.ppxf_max_spectra > 0:
        # a seeded random subset across all flux bins (the test set is sorted by bin)
        k = min(p.lines.ppxf_max_spectra, len(idx))
        sub = np.sort(np.random.default_rng(p.lines.seed).choice(len(idx), size=k, replace=False))
        out_obj["ppxf_agreement"] = fitter_agreement(fast, ppxf_fitter, test["y"][sub], test["truth"][sub], norm[sub], {ln: truth[ln][sub] for ln in TABLE6_LINES})
    save_json(out, out_obj)
    text = "# Table 6: line-flux scatter (dex) against the fit to the observed target\n\n" + table6_markdown(res)
    text += "\n## Against the true line fluxes of the universe\n\n" + table6_markdown(res, "vs_truth")
    save_text(table, text)
    obs_fit = fits["observed"]
    show = [k for k in ("noisy", "pca_4", "ae_4", "vae_4") if k in fits] or [k for k in fits if k != "observed"][:3]
    figure9(res, {ln: (obs_fit[ln]["flux"] * norm, obs_fit[ln]["ok"]) for ln in TABLE6_LINES}, {k: fits[k] for k in show}, norm, figures_dir / "fig9_line_fluxes.png", p.lines.n_bins)
    if tracking and run_ids:
        from mlflow import MlflowClient

        from specdenoise import tracking as trk

        trk.setup(p.tracking)
        client = MlflowClient()
        for key, rid in run_ids.items():
            if rid and key in models:
                for name, value in models[key].items():
                    if value == value:  # not NaN
                        client.log_metric(rid, name, float(value))
    _done("lines", t0, spectra=n_spec, fast_fit_per_s=f"{n_spec / fit_s:.0f}")
    typer.echo(text)


@app.command("leaderboard")
def leaderboard_cmd(
    evaluation: Annotated[Path, typer.Option(help="Evaluation metrics from `specdenoise evaluate`.")] = Path("reports/evaluation.json"),
    lines: Annotated[Path, typer.Option(help="Per-line metrics, when the line stage has run.")] = Path("reports/lines.json"),
    bench_dir: Annotated[Path, typer.Option(help="Folder with bench_*.json for the footer.")] = Path("reports"),
    uncertainty: Annotated[Path, typer.Option(help="Coverage metrics, when the uncertainty stage has run.")] = Path("reports/uncertainty.json"),
    mzr: Annotated[Path, typer.Option(help="Mass-metallicity metrics, when the mzr stage has run.")] = Path("reports/mzr.json"),
    out_md: Annotated[Path, typer.Option(help="Markdown leaderboard to write.")] = Path("reports/leaderboard.md"),
    out_html: Annotated[Path, typer.Option(help="Standalone HTML leaderboard to write.")] = Path("reports/leaderboard.html"),
) -> None:
    """Print the leaderboard (one row per family x dimension) and write it as Markdown and HTML."""
    from specdenoise.io import save_text
    from specdenoise.evaluation.leaderboard import build, render_html, render_markdown

    board = build(evaluation, lines, bench_dir, uncertainty, mzr)
    text = render_markdown(board)
    save_text(out_md, text)
    save_text(out_html, render_html(board))
    typer.echo(text)


@app.command("profile")
def profile_cmd(
    name: Annotated[str, typer.Argument(help="Profile: smoke, default or paper (profiles/<name>.yaml).")],
    out: Annotated[Path, typer.Option(help="Parameters file to write.")] = Path("params.yaml"),
) -> None:
    """Write params.yaml for a profile (profiles/default.yaml merged with profiles/<name>.yaml)."""
    from specdenoise.config import profile_text
    from specdenoise.io import save_text

    save_text(out, profile_text(name))
    typer.echo(f"profile {name} -> {out}")


bench_app = typer.Typer(help="Performance benchmarks (numbers into reports/, never asserted).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("universe")
def bench_universe_cmd(
    params: ParamsOpt = Path("params.yaml"),
    n: Annotated[int, typer.Option(help="Galaxies to draw and synthesise.")] = 100_000,
    out: Annotated[Path, typer.Option(help="JSON to write.")] = Path("reports/bench_universe.json"),
) -> None:
    """Time the universe end to end (catalogue + every spectrum, chunked) and its peak memory."""
    import json

    from specdenoise.evaluation.bench import bench_universe
    from specdenoise.io import save_json

    p = _params(params)
    res = bench_universe(p, n, progress=_STATE["progress"])
    save_json(out, res)
    typer.echo(json.dumps(res, indent=2))


@bench_app.command("pipeline")
def bench_pipeline_cmd(
    params: ParamsOpt = Path("params.yaml"),
    observed: Annotated[Path, typer.Option(help="Observed spectra (for the preprocessing rate).")] = Path("data/interim/observed.npz"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    model: Annotated[Path | None, typer.Option(help="Saved model for the inference roofline.")] = Path("models/vae_6/model"),
    templates: Annotated[Path | None, typer.Option(help="E-MILES templates for the line-fit rates.")] = Path("data/external/emiles_ppxf826.npz"),
    n_ppxf: Annotated[int, typer.Option(help="Spectra fitted with pPXF (uncached) for its rate.")] = 20,
    out: Annotated[Path, typer.Option(help="JSON to write.")] = Path("reports/bench_pipeline.json"),
) -> None:
    """Preprocessing rate, inference spectra/s against the measured matmul roofline, fast vs pPXF line fits."""
    import json

    from specdenoise.evaluation.bench import bench_pipeline
    from specdenoise.io import save_json

    p = _params(params)
    res = bench_pipeline(p, str(observed), str(spectra), str(noisy), str(model) if model and model.exists() else None,
                         str(templates) if templates and templates.exists() else None, n_ppxf)
    save_json(out, res)
    typer.echo(json.dumps(res, indent=2))


@bench_app.command("train")
def bench_train_cmd(
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    backends: Annotated[str, typer.Option(help="Comma-separated Keras backends to time side by side.")] = "tensorflow,jax",
    families: Annotated[str, typer.Option(help="Comma-separated families (ae, vae).")] = "ae,vae",
    n: Annotated[int, typer.Option(help="Training spectra per epoch.")] = 8000,
    epochs: Annotated[int, typer.Option(help="Epochs timed (the first, with tracing, is reported apart).")] = 4,
    out: Annotated[Path, typer.Option(help="JSON to write.")] = Path("reports/bench_train.json"),
) -> None:
    """Seconds per epoch of the paper-size AE/VAE (825-1000-900-800-800-6) on each Keras backend."""
    import json

    from specdenoise.evaluation.bench import bench_training
    from specdenoise.io import save_json

    res = bench_training([b.strip() for b in backends.split(",")], [f.strip() for f in families.split(",")], str(spectra), str(noisy), n, epochs)
    save_json(out, res)
    typer.echo(json.dumps(res, indent=2))


# Commands defined in modules of their own: each module has ``register(app, data_app)``, which
# adds its Typer commands (imports stay light: heavy libraries load inside the commands).
_EXTENSIONS: tuple[str, ...] = ("survey", "mzr", "denoise")


def _register_extensions() -> None:
    import importlib

    for name in _EXTENSIONS:
        importlib.import_module(f".{name}", __package__).register(app, data_app)


_register_extensions()


def main() -> None:
    """Console entry point: run the app, turning user errors into one-line messages."""
    try:
        app()
    except SpecdenoiseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise SystemExit(130) from None
    except MemoryError:
        typer.echo("error: out of memory (lower universe.chunk_size or the sample size)", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
