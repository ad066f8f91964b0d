"""results/report.html: the run on one page, for a reviewer who never saw the code.

Built only from the files already released into the staging folder (their CSV rows and PNG
figures), after the SDC report is written and before the folder is committed: so the page shows
nothing that disclosure control has not passed, and a withheld estimate appears as "withheld" with
the rule that withheld it. Self-contained: the figures are embedded as data URIs, the style is
inline, there is no script and nothing is fetched over the network.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import functools
from collections import Counter
from html import escape
from pathlib import Path

from ld_spark.contract import EFFECT_FAMILIES, ESTIMANDS
from ld_spark.release.publish import write_text
from ld_spark.release.report import CAVEATS, HEADLINE
from ld_spark.release.sdc import Rules

REPORT = "report.html"
# Each estimand is shown in one section's table (the summary repeats the headline ones).
DESCRIPTIVE = [e for e in ESTIMANDS if e.startswith(("n_", "pct_"))]
EFFECTS = [e for family in ("health", "justice", "timeliness") for e in EFFECT_FAMILIES[family]]
ECONOMICS = [e for e in ESTIMANDS if e.startswith(("savings_", "cost_"))]
FURTHER = [e for e in ESTIMANDS[ESTIMANDS.index("ae_prior_cjs_rr") :] if e not in EFFECTS]  # contract 4c

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; padding-top: 0.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } th.text { text-align: left; } td:first-child, th:first-child { text-align: left; }
td.withheld { color: #a33; font-style: italic; text-align: left; }
td.text, td:has(> span.text) { text-align: left; } td.interval, td.p { white-space: nowrap; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
.funnels img { max-width: 48%; }
p.note { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; }
"""


def read_rows(folder: Path, name: str) -> list[dict] | None:
    """A released CSV as rows of strings (blank = suppressed or withheld), or None if not released."""
    path = folder / name
    if not path.exists():
        return None
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def shown(value: str | None, digits: int = 3) -> str:
    """A released value for reading: counts with thousands separators, short values as released,
    a model's full-precision numbers to `digits` significant figures (whole numbers from 100)."""
    if value in (None, ""):
        return ""
    try:
        number = float(value)
    except ValueError:
        return f'<span class="text">{escape(value)}</span>'
    if number.is_integer() and not any(c in value for c in ".eE"):
        return f"{number:,.0f}"  # a count, released as an integer
    if len(value) <= 6:
        return value  # already rounded for release (a percentage, a standardised difference)
    if abs(number) >= 100:
        return f"{number:,.0f}"
    return f"{number:#.{digits}g}"  # a model's full-precision number; keeps trailing zeros: 1.10


def image(folder: Path, name: str, alt: str) -> str:
    path = folder / name
    if not path.exists():
        return f'<p class="note">{escape(name)} was not released in this run.</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def table(rows: list[dict] | None, columns: list[str] | None = None, empty: str = "Not released in this run.") -> str:
    if not rows:
        return f'<p class="note">{escape(empty)}</p>'
    columns = columns or list(rows[0])
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{shown(r.get(c)) if c != columns[0] else escape(r[c])}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def withheld_reasons(sdc_rows: list[dict], output: str) -> dict[str, str]:
    """For each estimate the SDC report suppressed or withheld in `output`: the rule's reason."""
    return {
        r["row"]: r["reason"]
        for r in sdc_rows
        if r["output"] == output and r["column"] == "estimate" and r["action"] in ("suppressed", "withheld")
    }


def estimates_table(rows: list[dict], names: list[str], reasons: dict[str, str], prefix: str = "estimand") -> str:
    """Estimates in `names`' order: estimate, 95% interval, p-value, n and method; a blank estimate
    shown as withheld, with the reason from the SDC report. Each row's id is `prefix-estimand`."""
    by_name = {r["estimand"]: r for r in rows}
    lines = [
        '<tr><th>estimand</th><th>estimate</th><th>95% interval</th><th>p</th><th>n</th><th class="text">method</th></tr>'
    ]
    for name in names:
        r = by_name.get(name)
        if r is None:
            cells = '<td class="withheld" colspan="5">not in this run\'s results</td>'
        elif r["estimate"] == "":
            reason = reasons.get(name, "no estimate")
            cells = (
                f'<td class="withheld" colspan="4">withheld: {escape(reason)}</td>'
                f'<td class="text">{escape(r["method"])}</td>'
            )
        else:
            interval = f"{shown(r['ci_low'])} to {shown(r['ci_high'])}" if r["ci_low"] != "" else ""
            cells = (
                f'<td>{shown(r["estimate"])}</td><td class="interval">{interval}</td>'
                f'<td class="p">{shown(r["p_value"], 2)}</td><td>{shown(r["n"])}</td><td class="text">{escape(r["method"])}</td>'
            )
        lines.append(f'<tr id="{prefix}-{escape(name)}"><td>{escape(name)}</td>{cells}</tr>')
    return "<table>" + "".join(lines) + "</table>"


def section(anchor: str, title: str, intro: str, *parts: str) -> tuple[str, str, str]:
    body = f'<section id="{anchor}"><h2>{escape(title)}</h2><p>{intro}</p>{"".join(parts)}</section>'
    return anchor, title, body


def sdc_summary(sdc_rows: list[dict], rules: Rules) -> str:
    """How many cells of each released file each rule touched (no values: the cells' names are in
    sdc_report.csv)."""
    counts = Counter((r["output"], r["action"]) for r in sdc_rows)
    actions = sorted({a for _, a in counts})
    outputs = sorted({o for o, _ in counts})
    rows = [{"output": o, **{a: str(counts.get((o, a), 0)) for a in actions}} for o in outputs]
    stated = (
        f"Counts from 1 to {rules.threshold} are suppressed; every other count is rounded to the nearest "
        f"{rules.round_to}; percentages are recomputed from rounded counts; a model estimate is withheld "
        f"when it rests on fewer than {rules.min_people_model} people, fewer than {rules.min_residual_df} "
        f"residual degrees of freedom, or a cell of 1 to {rules.threshold} events; a mean or median is "
        f"withheld when a few values dominate it (the two largest over {rules.nk_share:.0%} of the total, "
        f"or the rest under {rules.p_ratio:.0%} of the largest)."
    )
    return f"<p>{stated}</p>" + table(rows, ["output", *actions], "No cell needed a rule.")


def build(folder: Path, run_id: str, rules: Rules) -> str:
    """The page's HTML from the released files in `folder`."""
    rows = functools.partial(read_rows, folder)
    estimates, sdc_rows = rows("estimates.csv") or [], rows("sdc_report.csv") or []
    reasons = withheld_reasons(sdc_rows, "estimates.csv")
    sensitivity = rows("sensitivity.csv")
    funnels = sorted(p.name for p in folder.glob("site_funnel_*.png"))

    sections = [
        section(
            "summary",
            "Summary",
            "Did Liaison and Diversion change the health-service use, reoffending, sentencing and court "
            "timeliness of the people it saw, and what did it save? The 2017 evaluation cohort (people "
            "L&D saw) is compared with a historic control (people with an offence in 2013/14, before "
            "L&D), each around its index offence: a difference in differences between the months "
            "before and after the index (the windows are the run's analysis settings, logged to MLflow). "
            "Ratios above 1 mean more events after L&D than the "
            "control's change predicts.",
            estimates_table(estimates, HEADLINE, reasons, prefix="headline"),
        ),
        section(
            "cohorts",
            "Cohorts and descriptives",
            "Who was in each cohort, their vulnerabilities when referred, and how the people who "
            "declined L&D differ from those who consented.",
            estimates_table(estimates, DESCRIPTIVE, reasons),
            "<h3>Vulnerabilities at referral</h3>",
            table(rows("vulnerability_profile.csv")),
            "<h3>Consenting and declined people</h3>",
            table(rows("representativeness.csv")),
            image(folder, "declined_by_vulnerability.png", "share declining by vulnerability"),
            table(rows("descriptives.csv"), empty="No further descriptives released."),
        ),
        section(
            "figure1",
            "Figure 1: events per person-month around the index offence",
            "Monthly rates in each cohort before and after the index offence; "
            "the rates are from rounded counts, and a month with a small count is left out.",
            image(folder, "figure1.png", "Figure 1"),
        ),
        section(
            "effects",
            "Effects of L&D",
            "Each effect as a difference in differences with its 95% interval (person-clustered), "
            "health, justice and court timeliness.",
            image(folder, "forest_plot.png", "forest plot of the effects"),
            estimates_table(estimates, EFFECTS, reasons),
        ),
        section(
            "event-study",
            "Event study",
            "The cohort difference month by month relative to the reference months: flat before the "
            "index is what the design assumes.",
            image(folder, "event_study.png", "event study"),
        ),
        section(
            "economics",
            "Economics",
            "Savings per referral from the custody effect and unit costs, against the cost of a referral; "
            "withheld with the custody odds ratio when that is withheld.",
            estimates_table(estimates, ECONOMICS, reasons),
        ),
        section(
            "further-findings",
            "Further findings of the brief",
            "The brief's further findings (contract section 4c), and how onward referral varies by site.",
            estimates_table(estimates, FURTHER, reasons),
            "<h3>Onward referrals by site</h3>",
            table(rows("site_onward_referrals.csv")),
            '<div class="funnels">',
            *(image(folder, name, name) for name in funnels),
            "</div>",
        ),
        section(
            "linkage",
            "Linkage quality",
            "The six datasets carry no common identifier; records were linked to people by probabilistic "
            "linkage. Precision and recall are measured where truth exists (synthetic extracts).",
            table(rows("linkage_quality.csv")),
            "<h3>By cohort and period</h3>",
            table(rows("linkage_quality_by_cohort.csv")),
            "<h3>Blocking rules</h3>",
            table(rows("linkage_blocking.csv")),
            image(folder, "match_weights.png", "match weights"),
            "<h3>Rows read, loaded and quarantined</h3>",
            table(rows("reconciliation.csv")),
        ),
        section(
            "sensitivity",
            "Sensitivity analyses",
            "Every effect re-estimated under other specifications: a looser and a stricter linkage "
            "threshold, other windows, intention to treat, a placebo index, and a pre-trend test.",
            image(folder, "sensitivity.png", "sensitivity forest plot") if sensitivity else "",
            table(sensitivity, empty="The sensitivity analyses were not run in this run."),
        ),
        section(
            "subgroups",
            "Subgroups",
            "The effects by pathway and by point of contact (methods as in the effects table).",
            table(rows("subgroups.csv"), ["subgroup", "estimand", "estimate", "ci_low", "ci_high", "p_value", "n"]),
        ),
        section(
            "disclosure",
            "Disclosure control",
            "Every released number passed statistical disclosure control; sdc_report.csv names each "
            "cell a rule touched and why. Cells touched, by file and action:",
            sdc_summary(sdc_rows, rules),
        ),
        section(
            "caveats",
            "Caveats",
            "The design's limits, as the published evaluation states them, and what in this run addresses each.",
            "<ul>" + "".join(f"<li><b>{escape(c)}</b> {escape(a)}</li>" for c, a in CAVEATS) + "</ul>",
        ),
    ]
    nav = "<nav>" + "".join(f'<a href="#{a}">{escape(t.split(":")[0])}</a>' for a, t, _ in sections) + "</nav>"
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>ld-spark: Liaison and Diversion evaluation</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>Liaison and Diversion evaluation: results of one run</h1>"
        f'<p class="note">MLflow run {escape(run_id)}, written {made}. Every number on this page is '
        "released output: the same values as the CSV files beside it.</p>"
        f"{nav}{''.join(body for _, _, body in sections)}</body></html>\n"
    )


def write(folder: Path, run_id: str, rules: Rules) -> Path:
    """Write report.html into `folder` (the publisher's staging folder)."""
    return write_text(folder / REPORT, build(folder, run_id, rules))
