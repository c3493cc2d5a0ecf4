"""The posterior block of ``reports/mzr.md``: the MZR from posterior draws
(:mod:`specdenoise.evaluation.mzr_posterior`) beside the truth, with how the re-weighted rows
depend on the interim density's bandwidth and on the S/N."""

from __future__ import annotations

from typing import Any

from specdenoise.evaluation.mzr_posterior import CONSISTENT_Z, RHO_TOL, SCATTER_TOL


def markdown(block: dict[str, Any], uri: str) -> str:
    """The posterior block of ``reports/mzr.md``."""
    t, d, p, df, h = block["truth"], block["draws"], block["posterior_mean"], block["diff"], block["hierarchical"]
    hm, hg = block["hierarchical_mass_only"], block["hierarchical_marginal"]
    cond = block.get("interim_conditioned_on") or "nothing"

    def row(label: str, r: dict[str, Any]) -> str:
        return (
            f"| {label} | {r['scatter']:.3f} +- {r['scatter_sd']:.3f} | {r['rho']:+.2f} +- {r['rho_sd']:.2f} | "
            f"median ESS {r['ess_median']:.0f} of {block['n_draws']} |\n"
        )

    def verdict(label: str, r: dict[str, Any]) -> str:
        return (
            f"{label} - truth: scatter {r['diff']['scatter']:+.3f} dex, rho {r['diff']['rho']:+.2f}: "
            f"{'met' if r['meets'] else 'not met'}; {_z(r)}"
        )

    return (
        f"\n## From posterior draws ({uri}, told each DESI-like spectrum's ivar)\n\n"
        f"{block['n_galaxies']} test galaxies, {block['n_draws']} draws each; MZR scatter at fixed mass (residuals "
        "about a quadratic in mass) and Spearman rho of the O/H residual with the SFR residual at fixed mass.\n\n"
        "| O/H from | scatter (dex) | SFR rho | valid |\n|---|---|---|---|\n"
        f"| true line fluxes (O3N2) | {t['scatter']:.3f} | {t['rho']:+.2f} | 100 % |\n"
        f"| posterior draws, uncalibrated (mean +- sd over draws) | {d['scatter']:.3f} +- {d['scatter_sd']:.3f} | "
        f"{d['rho']:+.2f} +- {d['rho_sd']:.2f} | {100 * d['valid_fraction']:.0f} % |\n"
        + row(
            f"draws re-weighted to a fitted MZR in mass and SFR residual (sigma {h['population']['sigma']:.3f}, "
            f"beta_sfr {h['population']['beta_sfr']:+.3f}{_pm(h['population'].get('beta_sfr_sd'))}; interim prior "
            f"conditional on {cond})",
            h,
        )
        + row(f"the same, in mass only (sigma {hm['population']['sigma']:.3f})", hm)
        + row(
            f"in mass and SFR, only the prior's O/H marginal divided out (beta_sfr {hg['population']['beta_sfr']:+.3f}"
            "; counts the prior's O/H-EW link twice)",
            hg,
        )
        + f"| posterior mean (point estimate) | {p['scatter']:.3f} | {p['rho']:+.2f} | "
        f"{100 * p['valid_fraction']:.0f} % |\n"
        f"\nDraws - truth: scatter {df['scatter']:+.3f} dex, rho {df['rho']:+.2f} (targets +-{SCATTER_TOL} dex, "
        f"+-{RHO_TOL}): {'met' if block['meets'] else 'not met'}; "
        + "; ".join(
            verdict(lab, r)
            for lab, r in (("re-weighted in mass and SFR", h), ("in mass only", hm), ("marginal only", hg))
        )
        + ".\n"
        + _sd_line(h, block["n_draws"])
        + _bandwidth_line(h, block.get("interim"))
        + _forms_line(h)
        + _draws_line(h)
        + "\nThe plain draws of a galaxy whose spectrum does not fix its O/H come from the whole population "
        "(the prior knows nothing of mass), which widens the scatter at fixed mass and dilutes the SFR trend; "
        "the re-weighted rows divide the prior's O/H density out of the draws and put a Gaussian MZR "
        "(quadratic in mass, with or without a term in the SFR residual, fitted by marginal likelihood) "
        "in its place (Hogg, Myers & Bovy 2010). The density divided out is the prior's O/H conditional on the draw's "
        f"{cond}: the prior links O/H to that EW, which follows the SFR, and with only its O/H marginal divided out "
        "(last re-weighted row) the SFR term counts the link twice.\n"
        + _snr_markdown(block)
        + _realisations_markdown(block)
    )


def _pm(sd: float | None) -> str:
    return "" if sd is None else f" +- {sd:.3f}"


def _z(r: dict[str, Any]) -> str:
    """The differences from the truth over the stated sds, and whether both are within CONSISTENT_Z."""
    z = r["z"]
    within = "within" if r["consistent"] else "NOT within"
    # the sd holds the draws' and the population's spread, not the finite-draw bias the half-draws step shows
    caveat = "; the draws have not converged, so this is no recovery" if r.get("draws_converged") is False else ""
    return f"diff / sd {z['scatter']:+.1f} / {z['rho']:+.1f}, {within} {CONSISTENT_Z:g} sd{caveat}"


def _sd_line(h: dict[str, Any], n_draws: int) -> str:
    """What the +- of the re-weighted rows holds."""
    out = (
        "\nThe +- of the re-weighted rows is the sd over as many realisations of the sample as draws, each "
        "resampled under population parameters drawn from the Laplace approximation of the marginal likelihood, "
        "so it holds how little the data fix the population as well as each galaxy's own draws (the draws "
        f"alone, at the fitted population: +-{h['scatter_sd_draws']:.3f} dex / +-{h['rho_sd_draws']:.2f})."
    )
    if "rho_sd_mc" not in h:
        return (
            out
            + f" With {n_draws} draws per galaxy the result also moves between draw seeds, which it does not hold.\n"
        )
    return out + (
        f" For the first row it also holds the error of {n_draws} draws per galaxy, from refits on draws resampled "
        f"with replacement, in quadrature: population +-{h['scatter_sd_population']:.4f} dex / "
        f"+-{h['rho_sd_population']:.3f}, draws +-{h['scatter_sd_mc']:.4f} / +-{h['rho_sd_mc']:.3f} "
        "(the refits' mean - the value: "
        f"{h['boot_shift']['scatter']:+.4f} / {h['boot_shift']['rho']:+.3f}, the direction of the finite-draw bias).\n"
    )


def _spread(h: dict[str, Any]) -> str:
    """Scatter and rho ranges of the re-weighted MZR over the interim's KDE bandwidths."""
    bw = h["bandwidths"].values()
    sc, rho = [v["scatter"] for v in bw], [v["rho"] for v in bw]
    return f"{min(sc):.3f}-{max(sc):.3f} / {min(rho):+.2f} to {max(rho):+.2f}"


def _bandwidth_line(h: dict[str, Any], interim: dict[str, Any] | None) -> str:
    """How the interim density's KDE bandwidth was chosen, and how the re-weighted MZR (mass and SFR)
    depends on it."""
    cells = "; ".join(
        f"x{f}: {v['scatter']:.3f} / {v['rho']:+.2f} (beta_sfr {v['beta_sfr']:+.3f})"
        for f, v in h["bandwidths"].items()
    )
    verdict = "met at every bandwidth" if h["meets_every_bandwidth"] else "not met at every bandwidth"
    chosen = ""
    if interim and interim.get("heldout_loglik"):
        ll = interim["heldout_loglik"]
        best = max(ll.values())
        chosen = (
            f"The bandwidth is the one whose interim gives held-out prior draws the highest mean log density "
            f"(a fifth of its {interim['n_prior_draws']} prior draws with an O/H held out; nats, minus the best): "
            + ", ".join(f"x{f}: {v - best:+.4f}" for f, v in ll.items())
            + f"; chosen x{interim['factor']:g} of Scott's. "
        )
    return (
        "\nThe re-weighted rows divide a density estimate out of the draws, and where a galaxy's posterior is "
        f"barely narrower than the prior's conditional the result depends on it. {chosen}Mass and SFR, "
        f"scatter / rho with the interim's KDE bandwidth times Scott's: {cells}: {verdict}.\n"
    )


def _forms(h: dict[str, Any]) -> str:
    """Scatter / rho (delta AIC) of the re-weighted MZR with each form of the SFR term."""
    return "; ".join(
        f"{f}: {v['scatter']:.3f} / {v['rho']:+.2f} +- {v['rho_sd']:.2f} ({v['aic_delta']:+.1f})"
        for f, v in h.get("forms", {}).items()
    )


def _forms_line(h: dict[str, Any]) -> str:
    """How the re-weighted MZR (mass and SFR) depends on the form of the population's SFR term."""
    if not h.get("forms"):
        return ""
    met = [f for f, v in h["forms"].items() if v["meets"]]
    return (
        "\nWhere a galaxy's data are weak its re-weighted draws follow the population model, so the form of its "
        "SFR term matters (low-SFR galaxies have weak lines). Scatter / rho +- sd (AIC - the lowest) by form: "
        f"{_forms(h)}; "
        f"used: {h['form']}. Met with: {', '.join(met) or 'none'}.\n"
    )


def _draws_line(h: dict[str, Any]) -> str:
    """How far the re-weighted MZR (mass and SFR) still moves with the number of draws per galaxy."""
    half = h.get("half_draws")
    if not half:
        return ""
    verdict = "within" if h["draws_converged"] else "NOT within"
    return (
        f"From the first {half['n_draws']} draws per galaxy only: {half['scatter']:.3f} / {half['rho']:+.2f}, a "
        f"step of {half['step']['scatter']:+.4f} dex / {half['step']['rho']:+.3f} to all of them, {verdict} half "
        "the targets. Importance re-weighting with few draws per galaxy is biased, and that bias falls about as "
        "1/draws, so the step is about the bias left.\n"
    )


def _half(h: dict[str, Any]) -> str:
    half = h.get("half_draws")
    if not half:
        return "-"
    return f"{half['scatter']:.3f} / {half['rho']:+.2f} ({'converged' if h['draws_converged'] else 'not converged'})"


def _snr_markdown(block: dict[str, Any]) -> str:
    """The S/N axis of the posterior MZR: the same galaxies and noise realisation, noise divided by k."""
    rows = block.get("by_snr_scale") or {}
    if not rows:
        return ""
    tp = block["truth"]["population"]
    out = (
        "\n### On an S/N axis\n\nThe same galaxies and noise realisation with the DESI-like noise divided by k "
        f"(k = 1: the table above). Truth: scatter {block['truth']['scatter']:.3f} dex, rho "
        f"{block['truth']['rho']:+.2f}; its least-squares population has beta_sfr {tp['beta_sfr']:+.3f} and sigma "
        f"{tp['sigma']:.3f} dex.\n\n"
        "| k | median sd of a galaxy's O/H draws (dex) | plain draws: scatter / rho | re-weighted, mass only: "
        "scatter / rho | re-weighted, mass + SFR: scatter / rho +- sd (beta_sfr +- sd; targets; diff / sd) | the same "
        "over the KDE bandwidths x0.5-x2 of the chosen one: scatter / rho | the same from half the draws: scatter "
        "/ rho | by the SFR term's form: scatter / rho +- sd (AIC - the lowest) |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    for k, r in rows.items():
        d, hm, h = r["draws"], r["hierarchical_mass_only"], r["hierarchical"]
        out += (
            f"| {k} | {r['oh_sd_median']:.3f} | {d['scatter']:.3f} / {d['rho']:+.2f} | "
            f"{hm['scatter']:.3f} / {hm['rho']:+.2f} ({'met' if hm['meets'] else 'not met'}) | "
            f"{h['scatter']:.3f} +- {h['scatter_sd']:.3f} / {h['rho']:+.2f} +- {h['rho_sd']:.2f} "
            f"({h['beta_sfr']:+.3f}{_pm(h.get('beta_sfr_sd'))}; {'met' if h['meets'] else 'not met'}; {_z(h)}) | "
            f"{_spread(h)} ({'met at every one' if h['meets_every_bandwidth'] else 'not met at every one'}) | "
            f"{_half(h)} | {_forms(h) or '-'} |\n"
        )
    return out


def _realisations_markdown(block: dict[str, Any]) -> str:
    """The re-weighted MZR (mass and SFR) at the spectra's own S/N over noise realisations
    (:func:`~specdenoise.evaluation.mzr_posterior.across_realisations`): is its stated sd right, and is
    it right on average?"""
    nr = block.get("noise_realisations")
    if not nr or nr["n"] < 2:
        return ""
    sc, rho = nr["scatter"], nr["rho"]
    out = (
        f"\n### Over noise realisations (k = 1)\n\nThe same galaxies at their own S/N with {nr['n']} realisations of "
        "the noise: the first is the table above, the others Gaussian with each pixel's ivar. One realisation cannot "
        "tell the method's bias from the data's noise; these can.\n\n"
        "| realisation | scatter +- stated sd (dex) | rho +- stated sd | diff / sd |\n|---|---|---|---|\n"
    )
    cols = zip(sc["values"], sc["stated_sd"], sc["z"], rho["values"], rho["stated_sd"], rho["z"], strict=True)
    for i, (s, ss, zs, r, rs, zr) in enumerate(cols):
        out += f"| {i} | {s:.3f} +- {ss:.3f} | {r:+.2f} +- {rs:.2f} | {zs:+.1f} / {zr:+.1f} |\n"
    verdict = "met" if nr["meets_on_average"] else "not met"
    return out + (
        f"\nMean - truth: scatter {sc['mean_diff']:+.4f} +- {sc['mean_diff_se']:.4f} dex, rho {rho['mean_diff']:+.3f} "
        f"+- {rho['mean_diff_se']:.3f} (+- the standard error; targets +-{SCATTER_TOL} dex, +-{RHO_TOL}): {verdict} on "
        f"average; within the targets in {min(sc['n_within'], rho['n_within'])}-{max(sc['n_within'], rho['n_within'])} "
        f"of {nr['n']} realisations (scatter {sc['n_within']}, rho {rho['n_within']}). Spread over realisations: "
        f"{sc['sd']:.4f} dex / {rho['sd']:.3f}, against a mean stated sd of {sc['mean_stated_sd']:.4f} / "
        f"{rho['mean_stated_sd']:.3f}; the rms of diff / stated sd is {sc['rms_z']:.2f} / {rho['rms_z']:.2f} "
        "(about 1 where the stated sd is right, above 1 where it is too narrow).\n"
    )
