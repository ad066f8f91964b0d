"""Figures for reviewers (written as PNG files, logged to MLflow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

from ld_spark.contract import EFFECT_FAMILIES

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def match_weights(model_json: str) -> list[tuple[str, str, float]]:
    """(comparison, level, match weight log2(m/u)) for every non-null level of a Splink model."""
    model = json.loads(model_json)
    rows = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if m and u:
                rows.append((comparison["output_column_name"], level["label_for_charts"], math.log2(m / u)))
    return rows


def match_weights_chart(model_json: str, path: Path) -> Path:
    """A horizontal bar per comparison level: the evidence each level gives for 'same person'."""
    rows = match_weights(model_json)
    prior = json.loads(model_json)["probability_two_random_records_match"]
    labels = [f"{c}: {lvl}"[:70] for c, lvl, _ in rows] + ["prior (two random records)"]
    weights = [w for _, _, w in rows] + [math.log2(prior / (1 - prior))]
    limit = 25  # near-vetoes (weights far below zero) are drawn to the limit and labelled
    shown = [max(-limit, min(limit, w)) for w in weights]
    fig, ax = plt.subplots(figsize=(11, 0.3 * len(labels) + 1.2))
    ax.barh(range(len(labels)), shown, color=["#2a7" if w > 0 else "#c44" for w in weights])
    for i, w in enumerate(weights):
        if abs(w) > limit:
            ax.text(shown[i], i, f" {w:.0f} ", va="center", ha="left" if w < 0 else "right", fontsize=7, color="white")
    ax.set_xlim(-limit, limit)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("match weight, log2(m/u)")
    ax.set_title("Linkage model: evidence per comparison level", fontsize=10)
    return _save(fig, path)


# Figure 1 of the brief: (a) A&E, (b) drug and alcohol referrals, (c) offending; plus the MH
# referrals and MHA detentions the brief describes in the text.
FIGURE1_PANELS = [
    ("ae_attendances", "(a) A&E attendances"),
    ("drug_referrals", "(b) Drug and alcohol treatment referrals"),
    ("offences", "(c) Offending"),
    ("mh_referrals", "(d) Specialist mental health referrals"),
    ("mha_detentions", "(e) Mental Health Act detentions"),
    ("self_rated_health", "(f) Self-rated health, drug treatment (NDTMS TOP)"),
]
SELF_RATED_HEALTH = "self_rated_health"
COHORT_STYLE = {
    "evaluation": ("#1f5fa8", "Evaluation cohort (2017)"),
    "historic": ("#d9822b", "Historic control (2013/14)"),
}


def figure1(rates: list[dict], scores: list[dict], path: Path) -> Path:
    """Unadjusted events per person per month around the index month, by cohort, and the mean
    NDTMS TOP self-rated health of those attending drug treatment.

    rates: rows of series.monthly_rates (cohort, rel_month, outcome, persons, events, rate);
    scores: rows of series.self_rated_health_rows (cohort, rel_month, reviews, mean_score).
    """
    fig, grid = plt.subplots(2, 4, figsize=(17, 7.5))
    axes = list(grid.flat)
    as_rates = [{**r, "outcome": SELF_RATED_HEALTH, "rate": r["mean_score"]} for r in scores]
    for ax, (outcome, title) in zip(axes, FIGURE1_PANELS):
        for cohort, (colour, label) in COHORT_STYLE.items():
            points = sorted(
                (r["rel_month"], r["rate"])
                for r in [*rates, *as_rates]
                if r["outcome"] == outcome and r["cohort"] == cohort and r["rate"] is not None
            )
            if points:
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    color=colour,
                    label=label,
                    marker="o",
                    markersize=2.5,
                    linewidth=1.2,
                )
        ax.axvline(0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("months from index offence (0 = index month)", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
        ax.set_ylabel(
            "mean score (0-20)" if outcome == SELF_RATED_HEALTH else "events per person per month", fontsize=8
        )
    # The seventh cell holds the legend and the note the brief gives under its figure.
    handles, labels = axes[0].get_legend_handles_labels()
    axes[-1].axis("off")
    axes[-2].axis("off")
    axes[-2].legend(
        handles,
        labels,
        loc="center",
        fontsize=9,
        frameon=False,
        title="Data presented are unadjusted rates",
        title_fontsize=8,
    )
    fig.suptitle("Figure 1: unadjusted rates before, during and after the index offence", fontsize=10)
    return _save(fig, path)


def forest_plot(rows: list[dict], path: Path) -> Path:
    """Rate and odds ratios with 95% intervals on a log scale; 1 = no difference."""
    ratios = [
        r
        for r in rows
        if r["estimand"].endswith(("_rr", "_or", "_ratio"))
        and r["estimate"] is not None
        and all(math.isfinite(r[k]) and r[k] > 0 for k in ("estimate", "ci_low", "ci_high"))
    ]
    fig, ax = plt.subplots(figsize=(8, 0.42 * max(len(ratios), 1) + 1.4))
    for i, r in enumerate(ratios):
        ax.plot([r["ci_low"], r["ci_high"]], [i, i], color="#1f5fa8", linewidth=1.6)
        ax.plot(r["estimate"], i, "s", color="#1f5fa8", markersize=5)
        ax.text(
            1.02,
            i,
            f"{r['estimate']:.2f} ({r['ci_low']:.2f}-{r['ci_high']:.2f})",
            va="center",
            fontsize=7,
            transform=ax.get_yaxis_transform(),
        )
    ax.axvline(1, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(ratios)), [r["estimand"] for r in ratios], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("difference-in-differences ratio, evaluation vs historic control (log scale)", fontsize=8)
    ax.set_title("Effects of L&D: rate ratios, custody odds ratio, sentence length ratio", fontsize=10)
    return _save(fig, path)


def event_study_chart(rows: list[dict], reference: tuple[int, int], path: Path) -> Path:
    """Per-month DiD rate ratios (against the pooled reference months) with 95% intervals."""
    outcomes = list(dict.fromkeys(r["outcome"] for r in rows))
    fig, axes = plt.subplots(1, max(len(outcomes), 1), figsize=(3.6 * max(len(outcomes), 1), 3.4), squeeze=False)
    for ax, outcome in zip(axes[0], outcomes):
        points = sorted(
            (r["rel_month"], r["rr"], r["ci_low"], r["ci_high"])
            for r in rows
            if r["outcome"] == outcome
            and all(v is not None and math.isfinite(v) and v > 0 for v in (r["rr"], r["ci_low"], r["ci_high"]))
        )
        months = [p[0] for p in points]
        ax.fill_between(months, [p[2] for p in points], [p[3] for p in points], color="#1f5fa8", alpha=0.2, linewidth=0)
        ax.plot(months, [p[1] for p in points], color="#1f5fa8", marker="o", markersize=2.5, linewidth=1.2)
        ax.axhline(1, color="grey", linewidth=0.8)
        ax.axvline(-0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(outcome, fontsize=9)
        ax.set_xlabel("months from index", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"DiD rate ratio vs months {reference[0]}..{reference[1]}", fontsize=8)
    return _save(fig, path)


def funnel_plot(sites: list[dict], service: str, path: Path) -> Path:
    """Share of each site's (not declined) referrals sent on to `service`, against its caseload,
    inside 95% and 99.8% control limits around the national share."""
    from ld_spark.uptake import funnel_limits

    # Released rows: a site whose counts were suppressed (1-7) is not drawn.
    sites = [s for s in sites if s["referrals"] and s[service] is not None]
    total = sum(s["referrals"] for s in sites)
    p = sum(s[service] for s in sites) / total if total else 0.0
    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid = range(
        max(1, min((s["referrals"] for s in sites), default=1)), max((s["referrals"] for s in sites), default=1) + 1
    )
    for z, style, label in ((1.96, "--", "95% limits"), (3.09, ":", "99.8% limits")):
        limits = [funnel_limits(p, n, z) for n in grid]
        ax.plot(list(grid), [lo for lo, _ in limits], "k" + style, linewidth=0.8, label=label)
        ax.plot(list(grid), [hi for _, hi in limits], "k" + style, linewidth=0.8)
    ax.axhline(p, color="grey", linewidth=0.8, label=f"all sites {100 * p:.1f}%")
    for s in sites:
        share = s[service] / s["referrals"] if s["referrals"] else 0.0
        ax.plot(s["referrals"], share, "o", color="#1f5fa8", markersize=4)
        ax.annotate(s["site_code"], (s["referrals"], share), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("referrals not declined (evaluation window)", fontsize=8)
    ax.set_ylabel(f"share onward-referred to {service}", fontsize=8)
    ax.set_title(f"Site variation: onward referral to {service}", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def declined_chart(rows: list[dict], path: Path) -> Path:
    """Share declining L&D, with and without each vulnerability."""
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r["vulnerability"] for r in rows]

    def share(k, n):  # released counts: a suppressed one (None) leaves its bar out
        return 100 * k / n if k is not None and n else math.nan

    with_v = [share(r["declined"], r["people"]) for r in rows]
    without = [share(r["declined_without"], r["people_without"]) for r in rows]
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], with_v, height=0.4, color="#d9822b", label="with the vulnerability")
    ax.barh([i + 0.2 for i in y], without, height=0.4, color="#1f5fa8", label="without it")
    ax.set_yticks(list(y), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("% of referred people who declined", fontsize=8)
    ax.set_title("Uptake: declining L&D by vulnerability", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


# The sensitivity forest plot's panels, one per family of contract.EFFECT_FAMILIES.
SENSITIVITY_PANELS = {
    "health": "Health service use: rate ratios",
    "justice": "Justice: rate and odds ratios",
    "timeliness": "Court and sentence timeliness: difference in days",
    "economics": "Economics: savings per referral not declined (GBP)",
}


def _drawable(row: dict, log: bool) -> bool:
    values = [row.get(k) for k in ("estimate", "ci_low", "ci_high")]
    return all(v is not None and math.isfinite(v) and (v > 0 or not log) for v in values)


def sensitivity_plot(rows: list[dict], path: Path) -> Path:
    """One panel per estimand family: each estimand's estimate and 95% interval under every
    analysis (pre_trend rows are tests, not effects, and are left out); the reference line is
    no difference (1 for ratios, 0 for days). Withheld or non-finite estimates leave a gap."""
    analyses = list(dict.fromkeys(r["analysis"] for r in rows if r["analysis"] != "pre_trend"))
    colours = plt.get_cmap("tab10")
    families = {SENSITIVITY_PANELS[f]: names for f, names in EFFECT_FAMILIES.items()}
    heights = [len(names) * (len(analyses) + 1) for names in families.values()]
    fig, axes = plt.subplots(
        len(heights), 1, figsize=(9, 0.09 * sum(heights) + 3), gridspec_kw={"height_ratios": heights}
    )
    by_key = {(r["analysis"], r["estimand"]): r for r in rows}
    for ax, (title, names) in zip(axes, families.items()):
        log = "ratios" in title
        ticks = []
        for i, name in enumerate(names):
            base = i * (len(analyses) + 1)
            ticks.append(base + (len(analyses) - 1) / 2)
            for j, analysis in enumerate(analyses):
                r = by_key.get((analysis, name))
                if r is None or not _drawable(r, log):
                    continue
                y = base + j
                ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colours(j), linewidth=1.2)
                ax.plot(r["estimate"], y, "s", color=colours(j), markersize=3.5, label=analysis if i == 0 else None)
        if log:
            ax.set_xscale("log")
            ax.axvline(1, color="grey", linestyle="--", linewidth=0.8)
        elif "days" in title:
            ax.axvline(0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yticks(ticks, list(names), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle("Sensitivity analyses: each effect under every specification (95% intervals)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.98))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# The brief's own caveats, each beside the analysis of this job that addresses it (the MLflow run
# description and the README's estimates section show both).
CAVEATS = [
    (
        "No contemporaneous control: L&D was rolled out nationally, so no area went without it.",
        "The historic control (the same people's 2013/14 offences) stands in; sensitivity.csv's "
        "pre_trend tests whether the two cohorts moved in parallel before the index, and "
        "placebo_index moves the index a year earlier.",
    ),
    (
        "Regression to the mean: people meet L&D at a crisis, so their service use would fall anyway.",
        "Both cohorts are indexed on an offence, so both carry the crisis ramp and the DiD nets it "
        "out; baseline_m24_m13 moves the pre period away from the ramp.",
    ),
    (
        "National roll-out and its timing: sites started and changed practice at different times.",
        "site_heterogeneity_iapt_p and _mh_p test how far onward referral varies between sites, "
        "with a funnel plot per service; subgroups.csv splits the effects by pathway and point of contact.",
    ),
    (
        "Linkage: six datasets joined without a common identifier; missed and false links bias counts.",
        "linkage_quality.csv (and by cohort) reports precision and recall where truth exists; "
        "match_threshold_0.80 and _0.99 re-run the analysis on looser and stricter linkage.",
    ),
    (
        "Consent: people who declined are left out of the outcome analysis.",
        "representativeness.csv compares consenting and declined people; intention_to_treat keeps them in.",
    ),
]
HEADLINE = [
    "n_evaluation",
    "n_historic",
    "ae_attendance_rr",
    "mh_referral_rr",
    "iapt_referral_rr",
    "drug_referral_rr",
    "offending_rr",
    "custody_or",
    "court_duration_days_diff",
    "savings_per_referral_avg_gbp",
]


def run_description(released: list[dict]) -> str:
    """Markdown for the MLflow run's description: the headline released estimates, then the caveats."""

    def shown(value: float | None) -> str:
        return "withheld" if value is None else f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"

    by_name = {r["estimand"]: r for r in released}
    lines = [
        "## Headline estimates (released, 95% interval)",
        "",
        "| estimand | estimate | interval |",
        "|---|---|---|",
    ]
    for name in HEADLINE:
        r = by_name.get(name, {})
        interval = f"{shown(r.get('ci_low'))} to {shown(r.get('ci_high'))}" if r.get("ci_low") is not None else ""
        lines.append(f"| {name} | {shown(r.get('estimate'))} | {interval} |")
    lines += ["", "## Caveats of the design, and what in this run addresses each", ""]
    lines += [f"- **{caveat}** {answer}" for caveat, answer in CAVEATS]
    return "\n".join(lines) + "\n"
