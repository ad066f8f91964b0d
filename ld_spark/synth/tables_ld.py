"""L&D case records: one row per referral, identifiable, the spine of the evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ld_spark.config import GeneratorConf
from ld_spark.contract import TABLES, VULNERABILITIES
from ld_spark.synth import calendar as cal
from ld_spark.synth import recorded
from ld_spark.synth.keys import keys
from ld_spark.synth.persons import GENERAL, NON_CONSENT

POINTS_OF_CONTACT = np.array(
    ["police_custody", "voluntary_attendance", "magistrates_court", "crown_court", "probation", "community"],
    dtype=object,
)
POINT_WEIGHTS = np.array([0.70, 0.05, 0.15, 0.02, 0.03, 0.05])
COLUMNS = TABLES["ld_referrals"]


def _yn(flags: np.ndarray) -> np.ndarray:
    return np.where(flags, "Y", "N").astype(object)


def build(
    persons: pd.DataFrame, cfg: GeneratorConf, onward_rates: dict[str, np.ndarray], rng: np.random.Generator, block: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ld_referrals rows, truth rows)."""
    referred = persons[persons["role"].to_numpy() != GENERAL].reset_index(drop=True)
    # A second referral later in the window for some cohort members (the first one is the index).
    repeat = referred[referred["repeat_referral"].to_numpy()].copy()
    gap = rng.integers(14, 150, size=len(repeat))
    repeat["referral_day"] = np.minimum(repeat["referral_day"] + gap, cal.day(cfg.evaluation_window[1]))
    repeat["ld_index_day"] = repeat["referral_day"] - rng.integers(0, 3, size=len(repeat))
    rows = pd.concat([referred, repeat], ignore_index=True)
    n = len(rows)
    if n == 0:
        return pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=["source_table", "record_key", "person_id"])
    dirt = cfg.dirt

    fore, sur = recorded.names(rng, rows["forename"].to_numpy(), rows["surname"].to_numpy(), dirt)
    referral_day = rows["referral_day"].to_numpy()
    age = (referral_day - rows["dob"].to_numpy()) / 365.25
    youth = age < 18
    point = POINTS_OF_CONTACT[rng.choice(len(POINTS_OF_CONTACT), size=n, p=POINT_WEIGHTS)]
    point = np.where(youth & (point == "magistrates_court"), "youth_court", point)
    site = rows["site"].to_numpy()
    declined = rows["declined"].to_numpy()

    onward = []
    for i in range(n):
        if declined[i]:
            kinds = ["advice"] if rng.random() < 0.5 else []
        else:
            kinds = [k for k, rates in onward_rates.items() if rng.random() < rates[site[i] - 1]]
        onward.append(";".join(kinds) if kinds else None)

    consent = np.where(rows["role"].to_numpy() == NON_CONSENT, False, True)
    pnc = recorded.blank(rng, rows["pnc_id"].to_numpy(), dirt.pnc_missing["ld_referrals"])
    table = pd.DataFrame(
        {
            "referral_id": keys("LD", block, np.arange(n), 11, 10),
            "site_code": np.array([f"LD{s:02d}" for s in site], dtype=object),
            "referral_date": recorded.bad_dates(rng, cal.iso(referral_day), dirt.bad_date),
            "index_offence_date": cal.iso(rows["ld_index_day"].to_numpy()),
            "point_of_contact": recorded.bad_codes(rng, point, dirt.bad_code),
            "pathway": np.where(youth, "youth", "adult").astype(object),
            "forename": fore,
            "surname": sur,
            "date_of_birth": recorded.dob(rng, rows["dob"].to_numpy(), dirt),
            "sex": rows["sex"].to_numpy().astype(object),
            "nhs_number": recorded.nhs_number(rng, rows, dirt.nhs_missing["ld_referrals"], dirt),
            "pnc_id": pnc,
            "postcode": recorded.postcode(rng, rows, referral_day, dirt),
            "consent": _yn(consent),
            "declined": _yn(declined),
            **{f"vuln_{v}": _yn(rows[f"vuln_{v}"].to_numpy()) for v in VULNERABILITIES},
            "mh_needs": rows["mh_needs"].astype(int).astype(str).to_numpy().astype(object),
            "onward_referrals": np.array(onward, dtype=object),
        }
    )[COLUMNS]
    truth = pd.DataFrame(
        {"source_table": "ld_referrals", "record_key": table["referral_id"], "person_id": rows["person_id"].to_numpy()}
    )
    return recorded.duplicate_rows(rng, table, dirt.duplicate_row), truth
