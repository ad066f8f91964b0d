"""Justice extracts: PNC offences and HMCTS cases and hearings, with the planted justice effects."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ld_spark.config import GeneratorConf
from ld_spark.contract import TABLES
from ld_spark.synth import calendar as cal
from ld_spark.synth import recorded
from ld_spark.synth.events import draw_events
from ld_spark.synth.keys import keys
from ld_spark.synth.persons import COHORT

CATEGORIES = np.array(["CI", "CE", "CS", "CM"], dtype=object)
CATEGORY_WEIGHTS = np.array([0.05, 0.40, 0.40, 0.15])
CROWN_SHARE_EITHER_WAY = 0.3
HO_CODES = {
    "CI": ["00101", "00501", "03400", "02801"],
    "CE": ["00802", "05701", "04901", "09200", "08001", "12500"],
    "CS": ["10400", "12500", "14900", "19500", "08000"],
    "CM": ["80300", "80400", "82302", "80100"],
}
NON_CUSTODIAL = np.array(["1115", "1116", "1015", "1018", "1019"], dtype=object)
NON_CUSTODIAL_WEIGHTS = np.array([0.15, 0.35, 0.30, 0.15, 0.05])
MIDDLE_HEARINGS = np.array(["MNTN", "PTR", "RMAND", "PBV"], dtype=object)
OFFENCE_COLUMNS = TABLES["pnc/offences"]


def _in_post_window(offence_day: np.ndarray, index_day: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """Evaluation cohort offences dated in index months 0..11: where the planted effects act."""
    has = cohort & ~np.isnan(index_day)
    rel = cal.month_of(offence_day) - cal.month_of(np.nan_to_num(index_day).astype("int64"))
    return has & (rel >= 0) & (rel <= 11)


def offences(persons: pd.DataFrame, cfg: GeneratorConf, rng: np.random.Generator) -> pd.DataFrame:
    """Every offence with its person row, dates, charge and court route (clean, person-level)."""
    bg = draw_events(persons, "offence", cfg, rng)
    bg = pd.DataFrame({"row": bg["row"].to_numpy(), "offence_day": bg["day"].to_numpy(), "kind": "background"})
    if "police_contact" in cfg.processes:
        # PNC records that never become offences (no charge), with their own monthly process.
        pc = draw_events(persons, "police_contact", cfg, rng)
        bg = pd.concat(
            [bg, pd.DataFrame({"row": pc["row"].to_numpy(), "offence_day": pc["day"].to_numpy(), "kind": "contact"})],
            ignore_index=True,
        )
    # The arrest that led to the L&D referral, and the historic control's FY 2013/14 offence.
    ld_rows = np.nonzero(~np.isnan(persons["ld_index_day"].to_numpy()))[0]
    ld = pd.DataFrame(
        {"row": ld_rows, "offence_day": persons["ld_index_day"].to_numpy()[ld_rows].astype("int64"), "kind": "ld_index"}
    )
    hist_rows = np.nonzero(~np.isnan(persons["hist_index_day"].to_numpy()))[0]
    hist = pd.DataFrame(
        {
            "row": hist_rows,
            "offence_day": persons["hist_index_day"].to_numpy()[hist_rows].astype("int64"),
            "kind": "historic_index",
        }
    )
    off = pd.concat([bg, ld, hist], ignore_index=True)
    n = len(off)
    kind = off["kind"].to_numpy()
    offence_day = off["offence_day"].to_numpy()
    arrest_lag = np.where(rng.random(n) < 0.7, 0, rng.integers(1, 30, size=n))
    # Index offences are dated on their arrest day in both cohorts, so that the index month holds
    # the index offence in each (an asymmetry here would bias the offending contrast).
    arrest_lag = np.where(np.isin(kind, ["background", "contact"]), arrest_lag, 0)
    if cfg.historic_index_offence_lead_days_max > 0:
        # The historic index is dated by its arrest; the offence itself came days to weeks before.
        lead = rng.integers(1, cfg.historic_index_offence_lead_days_max + 1, size=n)
        historic = kind == "historic_index"
        arrest_lag = np.where(historic, lead, arrest_lag)
        offence_day = np.where(historic, offence_day - lead, offence_day)
    arrest_day = offence_day + arrest_lag
    charged = np.where(
        kind == "historic_index", True, rng.random(n) < np.where(kind == "ld_index", 0.8, cfg.charge_rate)
    )
    charged &= kind != "contact"
    charge_day = arrest_day + rng.integers(0, cfg.charge_lag_days_max + 1, size=n)

    # The historic control is defined by the first offence charged in FY 2013/14: other offences
    # of cohort members charged in that year (before the planted one) are recorded uncharged, so
    # the planted index is the one the analysis must find.
    p_rows = off["row"].to_numpy()
    cohort = persons["role"].to_numpy()[p_rows] == COHORT
    hist_index = persons["hist_index_day"].to_numpy()[p_rows]
    fy = (charge_day >= cal.day(cfg.historic_charge_window[0])) & (charge_day <= cal.day(cfg.historic_charge_window[1]))
    clash = (
        cohort
        & fy
        & (kind == "background")
        & (np.isnan(hist_index) | (arrest_day < np.nan_to_num(hist_index, nan=np.inf)))
    )
    charged &= ~clash

    category = CATEGORIES[rng.choice(4, size=n, p=CATEGORY_WEIGHTS)]
    crown = (category == "CI") | ((category == "CE") & (rng.random(n) < CROWN_SHARE_EITHER_WAY))
    treated = _in_post_window(offence_day, persons["ld_index_day"].to_numpy()[p_rows], cohort)
    off = off.assign(
        offence_day=offence_day,
        arrest_day=arrest_day,
        charged=charged,
        charge_day=np.where(charged, charge_day, -1),
        category=category,
        crown=crown,
        treated=treated,
    )
    return off[
        (off["offence_day"] >= cal.day(cfg.extract_start)) & (off["arrest_day"] <= cal.day(cfg.extract_end))
    ].reset_index(drop=True)


def build_justice(persons: pd.DataFrame, cfg: GeneratorConf, rng: np.random.Generator, block: int):
    dirt, end_day = cfg.dirt, cal.day(cfg.extract_end)
    off = offences(persons, cfg, rng)
    n = len(off)
    p = persons.iloc[off["row"].to_numpy()].reset_index(drop=True)
    charged, crown, treated = off["charged"].to_numpy(), off["crown"].to_numpy(), off["treated"].to_numpy()

    # Court: first hearing, duration (planted shift in the evaluation cohort's post period).
    first_hearing = off["charge_day"].to_numpy() + 1 + rng.poisson(cfg.first_hearing_lag_mean - 1, size=n)
    duration = court_duration(rng, crown, treated, cfg)
    completion = first_hearing + duration
    completed = charged & (completion <= end_day)

    # Disposal: conviction, then custody with the planted odds ratio.
    convicted = completed & (rng.random(n) < cfg.conviction_rate)
    logit = custody_logit(cfg, crown, treated)
    custodial = convicted & (rng.random(n) < 1 / (1 + np.exp(-logit)))
    age = (off["offence_day"].to_numpy() - p["dob"].to_numpy()) / 365.25
    custody_code = np.where(age < 18, "1081", np.where(age < 21, "1024", "1002"))
    median = cfg.sentence_median_days * np.where(treated, cfg.sentence_length_ratio, 1.0)
    days = np.maximum(1, np.round(median * np.exp(rng.normal(0, cfg.sentence_sigma, size=n)))).astype(int)
    no_conviction = np.where(rng.random(n) < 0.4, "2050", "2063")
    if cfg.custody_removes_offending:
        # Nobody offends while serving a sentence: drop the records committed inside a stay.
        keep = outside_custody(
            off["row"].to_numpy(),
            off["offence_day"].to_numpy(),
            off["kind"].to_numpy(),
            np.where(custodial, completion, -1),
            np.where(custodial, days, 0),
            cfg.custody_share_served,
        )
        off, p = off[keep].reset_index(drop=True), p[keep].reset_index(drop=True)
        (
            charged,
            crown,
            treated,
            first_hearing,
            duration,
            completion,
            completed,
            convicted,
            custodial,
            age,
            custody_code,
            days,
            no_conviction,
        ) = (
            a[keep]
            for a in (
                charged,
                crown,
                treated,
                first_hearing,
                duration,
                completion,
                completed,
                convicted,
                custodial,
                age,
                custody_code,
                days,
                no_conviction,
            )
        )
        n = len(off)
    disposal = np.where(
        custodial,
        custody_code,
        np.where(
            convicted,
            NON_CUSTODIAL[rng.choice(5, size=n, p=NON_CUSTODIAL_WEIGHTS)],
            np.where(completed, no_conviction, None),
        ),
    ).astype(object)

    fore, sur = recorded.names(rng, p["forename"].to_numpy(), p["surname"].to_numpy(), dirt)
    # People with two PNC IDs have about half their offences under the second.
    second = pd.notna(p["pnc_id2"].to_numpy()) & (rng.random(n) < 0.5)
    pnc = np.where(second, p["pnc_id2"].to_numpy(), p["pnc_id"].to_numpy()).astype(object)
    offence_ids = keys("OF", block, np.arange(n), 61, 12)
    ho = np.array(
        [HO_CODES[c][i % len(HO_CODES[c])] for c, i in zip(off["category"], rng.integers(0, 6, size=n))], dtype=object
    )
    pnc_table = pd.DataFrame(
        {
            "offence_id": offence_ids,
            "pnc_id": pnc,
            "cro_number": recorded.blank(rng, p["cro_number"].to_numpy(), 0.3),
            "forename": fore,
            "surname": sur,
            "date_of_birth": recorded.dob(rng, p["dob"].to_numpy(), dirt),
            "sex": np.where(rng.random(n) < 0.003, "U", p["sex"].to_numpy()).astype(object),
            "postcode": recorded.postcode(rng, p, off["arrest_day"].to_numpy(), dirt),
            "offence_date": recorded.bad_dates(rng, cal.iso(off["offence_day"].to_numpy()), dirt.bad_date),
            "arrest_date": cal.iso(off["arrest_day"].to_numpy()),
            "charge_date": cal.iso(np.where(charged, off["charge_day"].to_numpy(), np.nan)),
            "ho_offence_code": ho,
            "offence_category": off["category"].to_numpy(),
            "disposal_date": cal.iso(np.where(completed, completion, np.nan)),
            "disposal_code": recorded.bad_codes(rng, disposal, dirt.bad_code),
            "custodial_days": np.where(custodial, days.astype(str), None).astype(object),
        }
    )[OFFENCE_COLUMNS]

    # HMCTS: one case per charged offence, recorded with the court's own view of the defendant.
    c = np.nonzero(charged)[0]
    nc = len(c)
    cp = p.iloc[c].reset_index(drop=True)
    cfore, csur = recorded.names(rng, cp["forename"].to_numpy(), cp["surname"].to_numpy(), dirt)
    outcome = np.where(
        ~completed[c],
        None,
        np.where(
            convicted[c],
            "convicted",
            np.where(disposal[c] == "2063", "withdrawn", np.where(rng.random(nc) < 0.5, "dismissed", "acquitted")),
        ),
    ).astype(object)
    case_ids = keys("CS", block, np.arange(nc), 62, 12)
    cases = pd.DataFrame(
        {
            "case_id": case_ids,
            "source_system": np.where(crown[c], "XHIBIT", "LIBRA").astype(object),
            "court_code": np.array(
                [
                    f"{'C' if cr else 'B'}{s:02d}{k}"
                    for cr, s, k in zip(crown[c], cp["site"], rng.integers(1, 4, size=nc))
                ],
                dtype=object,
            ),
            "defendant_forename": cfore,
            "defendant_surname": csur,
            "defendant_dob": recorded.dob(rng, cp["dob"].to_numpy(), dirt),
            "defendant_sex": cp["sex"].to_numpy().astype(object),
            "defendant_postcode": recorded.postcode(rng, cp, off["charge_day"].to_numpy()[c], dirt),
            "pnc_id": recorded.blank(rng, pnc[c], dirt.pnc_missing["hmcts"]),
            "offence_date": cal.iso(off["offence_day"].to_numpy()[c]),
            "charge_date": cal.iso(off["charge_day"].to_numpy()[c]),
            "first_hearing_date": recorded.bad_dates(rng, cal.iso(first_hearing[c]), dirt.bad_date),
            "completion_date": cal.iso(np.where(completed[c], completion[c], np.nan)),
            "case_outcome": recorded.bad_codes(rng, outcome, dirt.bad_code),
            "sentence_date": cal.iso(np.where(convicted[c], completion[c], np.nan)),
        }
    )

    # Hearings: a first hearing, middle hearings, and the final one at completion.
    extra_mean = np.where(crown[c], cfg.hearings_mean_extra["crown"], cfg.hearings_mean_extra["magistrates"])
    extra_mean = extra_mean * np.where(treated[c], cfg.hearings_rr, 1.0)
    n_middle = rng.poisson(extra_mean)
    h_case = np.concatenate([np.arange(nc), np.repeat(np.arange(nc), n_middle), np.arange(nc)])
    h_kind = np.concatenate([np.zeros(nc, int), np.ones(n_middle.sum(), int), np.full(nc, 2)])
    fh, comp = first_hearing[c][h_case], completion[c][h_case]
    h_day = np.where(
        h_kind == 0,
        fh,
        np.where(h_kind == 2, comp, fh + 1 + (rng.random(len(h_case)) * np.maximum(comp - fh - 1, 1)).astype("int64")),
    )
    order = np.lexsort((h_kind, h_day, h_case))
    h_case, h_kind, h_day = h_case[order], h_kind[order], h_day[order]
    every_case, every_day = h_case, h_day  # before the extract's end cuts them: a committal may fall after it
    keep = h_day <= end_day
    h_case, h_kind, h_day = h_case[keep], h_kind[keep], h_day[keep]
    nh = len(h_case)
    final_type = np.where(outcome[h_case] == "convicted", np.where(rng.random(nh) < 0.4, "SWPSR", "STPSR"), "TRIAL")
    h_type = np.where(
        h_kind == 0, "FH", np.where(h_kind == 2, final_type, MIDDLE_HEARINGS[rng.integers(0, 4, size=nh)])
    )
    adjourned = (h_kind != 2) & (rng.random(nh) < cfg.adjourn_rate)
    hearings = pd.DataFrame(
        {
            "hearing_id": keys("HR", block, np.arange(nh), 63, 12),
            "case_id": case_ids[h_case],
            "hearing_date": recorded.bad_dates(rng, cal.iso(h_day), dirt.bad_date),
            "hearing_type": recorded.bad_codes(rng, h_type.astype(object), dirt.bad_code),
            "adjourned": np.where(adjourned, "Y", "N").astype(object),
        }
    )

    # Court records as real extracts hold them, drawn from a stream of their own (spawning one
    # leaves this one's state as it was), so that no value of the plain process moves with them.
    records = rng.spawn(1)[0]
    if cfg.summons_share > 0 or cfg.court_charge_slip_share > 0:
        cases["charge_date"] = court_charge_dates(records, off["charge_day"].to_numpy()[c], crown[c], cfg)
    case_person = cp["person_id"].to_numpy()
    if cfg.committal_share > 0:
        sent = crown[c] & (records.random(nc) < cfg.committal_share)
        at_magistrates, committal_day, crown_first_day = committal_split(records, every_case, every_day, sent)
        sent = committal_day >= 0
        cases, hearing_case = with_committals(
            records,
            cases,
            cp,
            hearings["case_id"].to_numpy(),
            at_magistrates[keep],
            sent,
            committal_day,
            crown_first_day,
            cfg,
            block,
        )
        hearings["case_id"] = hearing_case
        case_person = np.concatenate([case_person, cp["person_id"].to_numpy()[sent & (committal_day <= end_day)]])

    truth = pd.concat(
        [
            pd.DataFrame(
                {"source_table": "pnc.offences", "record_key": offence_ids, "person_id": p["person_id"].to_numpy()}
            ),
            pd.DataFrame(
                {"source_table": "hmcts.cases", "record_key": cases["case_id"].to_numpy(), "person_id": case_person}
            ),
        ],
        ignore_index=True,
    )
    tables = {"pnc/offences": pnc_table, "hmcts/cases": cases, "hmcts/hearings": hearings}
    tables = {k: recorded.duplicate_rows(rng, v, dirt.duplicate_row) for k, v in tables.items()}
    return tables, truth


def committal_split(
    rng: np.random.Generator, h_case: np.ndarray, h_day: np.ndarray, sent: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each case sent to the Crown Court leaves the magistrates' court.

    h_case, h_day: every hearing of every case (h_case indexes the cases), sorted by case and
    day; sent: the cases that begin at a magistrates' court and are sent on (committed). A sent
    case's hearings are cut after one of them, drawn at random from all but its last: the ones
    before the cut are the magistrates' court's, the first after it the Crown Court's first.
    Returns, per hearing, whether it is at the magistrates' court, and per case the committal day
    (the day of its last magistrates' hearing) and the Crown Court's first hearing day (-1 where
    the case is not sent, or has one hearing only). No draws are made when no case is sent.
    """
    nc = len(sent)
    committal_day = np.full(nc, -1, dtype="int64")
    crown_first_day = np.full(nc, -1, dtype="int64")
    if not sent.any():
        return np.zeros(len(h_case), bool), committal_day, crown_first_day
    count = np.bincount(h_case, minlength=nc)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    sent = sent & (count >= 2)
    cut = np.where(sent, rng.integers(1, np.maximum(count, 2)), 0)  # hearings at the magistrates' court
    position = np.arange(len(h_case)) - start[h_case]
    at_magistrates = sent[h_case] & (position < cut[h_case])
    committal_day[sent] = h_day[start[sent] + cut[sent] - 1]
    crown_first_day[sent] = h_day[start[sent] + cut[sent]]
    return at_magistrates, committal_day, crown_first_day


def with_committals(
    rng: np.random.Generator,
    cases: pd.DataFrame,
    persons: pd.DataFrame,
    hearing_case_ids: np.ndarray,
    at_magistrates: np.ndarray,
    sent: np.ndarray,
    committal_day: np.ndarray,
    crown_first_day: np.ndarray,
    cfg: GeneratorConf,
    block: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Crown Court cases as real extracts hold them: a case sent on by a magistrates' court is two
    records, the magistrates' (LIBRA, outcome committed, completed on its committal day, with the
    hearings before it) and the Crown Court's (XHIBIT, first heard on or after the committal, with the
    rest), each with the court's own view of the defendant. Joined again they are the one case
    whose days and hearings the planted values describe (ld_spark.justice.through_committals).

    cases: one row per case, persons its person's rows; hearing_case_ids and at_magistrates per
    hearing kept; sent, committal_day, crown_first_day per case (committal_split). A case whose
    committal falls after the extract's end is still at the magistrates' court: one LIBRA case.
    Returns the cases, the magistrates' records appended, and each hearing's case_id.
    """
    end_day = cal.day(cfg.extract_end)
    cases = cases.copy()
    magistrates_code = "B" + cases["court_code"].str.slice(1)
    waiting = sent & (committal_day > end_day)
    cases.loc[waiting, "source_system"] = "LIBRA"
    cases.loc[waiting, "court_code"] = magistrates_code[waiting]
    committed = sent & (committal_day <= end_day)
    rows = np.nonzero(committed)[0]
    legs = cases.iloc[rows].copy()
    legs["case_id"] = keys("CS", block, len(cases) + np.arange(len(rows)), 62, 12)
    legs["source_system"] = "LIBRA"
    legs["court_code"] = magistrates_code.to_numpy()[rows]
    lp = persons.iloc[rows]
    legs["defendant_forename"], legs["defendant_surname"] = recorded.names(
        rng, lp["forename"].to_numpy(), lp["surname"].to_numpy(), cfg.dirt
    )
    legs["defendant_dob"] = recorded.dob(rng, lp["dob"].to_numpy(), cfg.dirt)
    legs["completion_date"] = cal.iso(committal_day[rows])
    legs["case_outcome"] = "committed"
    legs["sentence_date"] = None
    # The Crown Court's first hearing, listed even where it falls after the extract's end (as a
    # case charged near the end is): a Crown record found alone still has its start.
    cases.loc[committed, "first_hearing_date"] = cal.iso(crown_first_day[rows])
    leg_of_case = pd.Series(legs["case_id"].to_numpy(), index=cases["case_id"].to_numpy()[rows])
    moved = at_magistrates & pd.Series(hearing_case_ids).isin(leg_of_case.index).to_numpy()
    hearing_case = np.where(moved, leg_of_case.reindex(hearing_case_ids).to_numpy(), hearing_case_ids)
    return pd.concat([cases, legs], ignore_index=True), hearing_case


def court_charge_dates(
    rng: np.random.Generator, charge_day: np.ndarray, crown: np.ndarray, cfg: GeneratorConf
) -> np.ndarray:
    """The charge date as the court records it: blank for a share of the cases heard only at a
    magistrates' court (a summons, or not keyed), 1 to court_charge_slip_days_max days from the
    police's for another share of every case (the two systems' clocks differ)."""
    n = len(charge_day)
    summons = ~crown & (rng.random(n) < cfg.summons_share)
    most = cfg.court_charge_slip_days_max
    days = rng.integers(1, most + 1, size=n) * rng.choice([-1, 1], size=n)
    slip = np.where(rng.random(n) < cfg.court_charge_slip_share, days, 0)
    return np.where(summons, None, cal.iso(charge_day + slip)).astype(object)


def custody_logit(cfg: GeneratorConf, crown: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Log-odds of a custodial sentence on conviction: base, Crown Court, planted effect."""
    base = np.log(cfg.custody_rate / (1 - cfg.custody_rate))
    return base + np.where(crown, cfg.custody_crown_log_odds, 0.0) + np.where(treated, np.log(cfg.custody_or), 0.0)


def outside_custody(
    person: np.ndarray,
    day: np.ndarray,
    kind: np.ndarray,
    sentence_day: np.ndarray,
    custodial_days: np.ndarray,
    share_served: float,
) -> np.ndarray:
    """Which records were not committed while their person was serving a custodial sentence.

    A stay runs from the sentence day for ceil(custodial_days x share_served) days. Index
    offences are always kept (they define the cohorts). A record dropped cannot itself send its
    person to prison, so the stays are recomputed from the records kept, twice (a third pass
    changes nothing measurable at these rates).
    """
    n = len(person)
    keep = np.ones(n, bool)
    index = np.isin(kind, ["ld_index", "historic_index"])
    for _ in range(2):
        stays = np.nonzero(keep & (custodial_days > 0))[0]
        if len(stays) == 0:
            break
        start = sentence_day[stays]
        stop = start + np.ceil(custodial_days[stays] * share_served).astype("int64")
        pairs = pd.DataFrame({"person": person[stays], "start": start, "stop": stop}).merge(
            pd.DataFrame({"person": person, "record": np.arange(n), "day": day}), on="person"
        )
        inside = pairs[(pairs["day"] >= pairs["start"]) & (pairs["day"] < pairs["stop"])]["record"].to_numpy()
        keep = np.ones(n, bool)
        keep[inside] = False
        keep |= index
    return keep


def court_duration(rng: np.random.Generator, crown: np.ndarray, treated: np.ndarray, cfg: GeneratorConf) -> np.ndarray:
    """Days from first hearing to completion: a floor plus a gamma(2) by court, shifted when treated."""
    mean_days = np.where(crown, cfg.court_duration_mean_days["crown"], cfg.court_duration_mean_days["magistrates"])
    extra = rng.gamma(2.0, (mean_days - cfg.court_duration_min_days) / 2.0)
    return np.round(cfg.court_duration_min_days + extra + np.where(treated, cfg.court_duration_diff_days, 0.0)).astype(
        "int64"
    )


def planted_restricted_means(
    cfg: GeneratorConf, tau: int, draws: int = 2_000_000, seed: int = 20170101
) -> dict[str, float]:
    """The planted court-time effects as the contract measures them: differences in the mean of
    min(days, tau), treated minus untreated, by simulation of the generator's own court process
    with common random numbers (the same cases, once with and once without the planted shift).

    Which cases are charged, convicted or still open does not depend on their duration here, so
    the restricted mean of every case is what the estimator targets.
    """
    rng = np.random.default_rng(seed)
    category = CATEGORIES[rng.choice(4, size=draws, p=CATEGORY_WEIGHTS)]
    crown = (category == "CI") | ((category == "CE") & (rng.random(draws) < CROWN_SHARE_EITHER_WAY))
    # Arrest -> charge -> first hearing, as build_justice draws them.
    lead = (
        rng.integers(0, cfg.charge_lag_days_max + 1, size=draws)
        + 1
        + rng.poisson(cfg.first_hearing_lag_mean - 1, size=draws)
    )
    untreated = court_duration(np.random.default_rng(seed + 1), crown, np.zeros(draws, bool), cfg)
    treated = court_duration(np.random.default_rng(seed + 1), crown, np.ones(draws, bool), cfg)

    def rm(days: np.ndarray) -> float:
        return float(np.minimum(days, tau).mean())

    return {
        "court_duration_days_diff": rm(treated) - rm(untreated),
        "arrest_to_sentence_days_diff": rm(lead + treated) - rm(lead + untreated),
    }


def planted_justice(
    cfg: GeneratorConf, waiting_months: int, draws: int = 400_000, seed: int = 20130401
) -> dict[str, float]:
    """offending_rr, police_contact_rr and custody_or as the proven-reoffending rules measure them,
    by simulation of the generator's own offence-to-disposal process.

    A background offence in post month m (0..11) is proven if charged, convicted and disposed by
    the last day of month 11 + waiting_months: its chance falls towards month 11 and rises with
    the planted court speed-up, so offending_rr = effect x (mean proven chance, treated) / (mean,
    untreated) over the post months (the pre months are alike in both cohorts and cancel).
    Police contacts are the other background records plus the police-contact process.
    custody_or is the marginal odds ratio among proven offences (background and index), whose
    Crown share is lowered by the wait (Crown cases are slower). Months at risk are taken as alike
    across the post months, and the historic control's charge-window selection is not modelled.
    """
    rng = np.random.default_rng(seed)
    month = rng.integers(0, 12, size=draws)
    days_to_deadline = (11 + waiting_months - month + 1 - rng.random(draws)) * 30.4375
    category = CATEGORIES[rng.choice(4, size=draws, p=CATEGORY_WEIGHTS)]
    crown = (category == "CI") | ((category == "CE") & (rng.random(draws) < CROWN_SHARE_EITHER_WAY))
    arrest = np.where(rng.random(draws) < 0.7, 0, rng.integers(1, 30, size=draws))
    lead = (
        arrest
        + rng.integers(0, cfg.charge_lag_days_max + 1, size=draws)
        + 1
        + rng.poisson(cfg.first_hearing_lag_mean - 1, size=draws)
    )
    convicted = (rng.random(draws) < cfg.charge_rate) & (rng.random(draws) < cfg.conviction_rate)
    index_lead = (
        rng.integers(0, cfg.charge_lag_days_max + 1, size=draws)
        + 1
        + rng.poisson(cfg.first_hearing_lag_mean - 1, size=draws)
    )
    index_deadline = (11 + waiting_months + 1 - rng.random(draws)) * 30.4375
    u = rng.random(draws)
    proven, index_proven = {}, {}
    for treated in (False, True):
        flag = np.full(draws, treated)
        d = court_duration(np.random.default_rng(seed + 1), crown, flag, cfg)
        proven[treated] = convicted & (lead + d <= days_to_deadline)
        index_proven[treated] = (u < cfg.conviction_rate) & (index_lead + d <= index_deadline)

    offence, contact = cfg.processes["offence"], cfg.processes.get("police_contact")
    effect = float(np.mean(np.where(np.arange(12) < offence.effect_months, offence.effect, 1.0)))
    p_t, p_u = proven[True].mean(), proven[False].mean()
    out = {"offending_rr": float(effect * p_t / p_u)}

    # Police contacts: unproven background records (offence rate) + the contact process.
    post = np.arange(12)
    unproven_t, unproven_u = offence.ld_rate * effect * (1 - p_t), offence.ld_rate * (1 - p_u)
    if contact is not None:
        base = 1 + contact.ramp * np.exp(-post / 2)
        ratio = float((base * np.where(post < contact.effect_months, contact.effect, 1.0)).sum() / base.sum())
        contact_u = contact.ld_rate * float(base.mean())
        out["police_contact_rr"] = float((unproven_t + contact_u * ratio) / (unproven_u + contact_u))
    else:
        out["police_contact_rr"] = float(unproven_t / unproven_u)

    # Custody among proven offences in the post period: index offences (one a person) and
    # background ones (12 months x rate), each cell's own Crown mix.
    def custodial_share(treated: bool) -> float:
        chance = 1 / (1 + np.exp(-custody_logit(cfg, crown, np.full(draws, treated))))
        background = 12 * offence.ld_rate * (effect if treated else 1.0)
        weights = background * proven[treated] + index_proven[treated]
        return float((chance * weights).sum() / weights.sum())

    odds = {t: custodial_share(t) / (1 - custodial_share(t)) for t in (False, True)}
    out["custody_or"] = odds[True] / odds[False]
    return out


def crown_share() -> float:
    """Share of charged offences heard in the Crown Court: all indictable-only, 30% of either-way."""
    weights = dict(zip(CATEGORIES, CATEGORY_WEIGHTS))
    return float(weights["CI"] + CROWN_SHARE_EITHER_WAY * weights["CE"])
