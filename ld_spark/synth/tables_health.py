"""Health extracts: HES A&E, MHSDS, IAPT and NDTMS, built from the monthly event processes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ld_spark.config import GeneratorConf
from ld_spark.synth import calendar as cal
from ld_spark.synth import identity as ident
from ld_spark.synth import recorded
from ld_spark.synth.events import draw_events, top_decline_months
from ld_spark.synth.keys import keys

PROVIDERS = np.array(
    [
        f"R{c}"
        for c in (
            "R8",
            "HM",
            "XF",
            "WJ",
            "TW",
            "1K",
            "NL",
            "QM",
            "A3",
            "J2",
            "DE",
            "F6",
            "K5",
            "VR",
            "X1",
            "AT",
            "P7",
            "H5",
            "GW",
            "D1",
        )
    ],
    dtype=object,
)
MH_PROVIDERS = np.array([f"RX{c}" for c in "ABCDEFGHJKLMNPQRT"], dtype=object)
IAPT_PROVIDERS = np.array([f"NQ{c}" for c in "ABCDEFGHJKLMNP"], dtype=object)
DRUG_AGENCIES = np.array([f"AG{i:03d}" for i in range(1, 41)], dtype=object)
MH_TEAMS = np.array(["A01", "A02", "A05", "A06", "A08", "C02", "C03", "E01"], dtype=object)
MH_SOURCES = np.array(["A1", "A2", "B1", "D1", "H1", "M1", "N3", "P1"], dtype=object)
DETENTIONS = np.array(["02", "03", "04", "19", "20"], dtype=object)
DETENTION_WEIGHTS = np.array([0.35, 0.2, 0.05, 0.05, 0.35])
DETENTION_DAYS = {"02": 28, "03": 180, "04": 3, "19": 1, "20": 1}
# What a detention runs on into: a place of safety (s135, s136) or an emergency s4 into a s2
# assessment the day after it ends, a s2 into a s3 treatment order the day it ends.
CONTINUES = {"19": "02", "20": "02", "04": "02", "02": "03"}


def _pick(rng: np.random.Generator, values: np.ndarray, n: int, p: np.ndarray | None = None) -> np.ndarray:
    return values[rng.choice(len(values), size=n, p=p)]


def _s(values: np.ndarray) -> np.ndarray:
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def _truth(source: str, record_keys: np.ndarray, person_ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"source_table": source, "record_key": record_keys, "person_id": person_ids})


def _open_until(start: np.ndarray, lo: int, hi: int, rng: np.random.Generator, end_day: int) -> np.ndarray:
    """A later date lo..hi days on, or blank if it falls after the extract ends."""
    later = start + rng.integers(lo, hi, size=len(start))
    return np.where(later <= end_day, later, np.nan)


# --- HES A&E ------------------------------------------------------------------------------------


def build_hes_ae(persons: pd.DataFrame, cfg: GeneratorConf, rng: np.random.Generator, block: int):
    ev = draw_events(persons, "ae", cfg, rng)
    p = persons.iloc[ev["row"].to_numpy()].reset_index(drop=True)
    n, dirt, days = len(ev), cfg.dirt, ev["day"].to_numpy()
    crisis = (p["role"].to_numpy() != 0) & (rng.random(n) < 0.3)
    table = pd.DataFrame(
        {
            "AEKEY": keys("AE", block, np.arange(n), 21, 12),
            "NEWNHSNO": recorded.nhs_number(rng, p, dirt.nhs_missing["hes_ae"], dirt),
            "DOB": recorded.dob(rng, p["dob"].to_numpy(), dirt),
            "SEX": np.where(rng.random(n) < 0.005, "9", recorded.sex_code(p["sex"].to_numpy(), "129")).astype(object),
            "HOMEADD": recorded.postcode(rng, p, days, dirt),
            "ARRIVALDATE": recorded.bad_dates(rng, cal.iso(days), dirt.bad_date),
            "ARRIVALTIME": np.array(
                [f"{h:02d}{m:02d}" for h, m in zip(rng.integers(0, 24, n), rng.integers(0, 60, n))], dtype=object
            ),
            "PROCODE3": _pick(rng, PROVIDERS, n),
            "AEATTENDCAT": _pick(
                rng, np.array(["1", "2", "3", "9"], dtype=object), n, np.array([0.88, 0.05, 0.05, 0.02])
            ),
            "AEATTENDDISP": recorded.bad_codes(
                rng,
                _pick(
                    rng,
                    np.array(["01", "02", "03", "07", "12", "99"], dtype=object),
                    n,
                    np.array([0.2, 0.3, 0.35, 0.05, 0.07, 0.03]),
                ),
                dirt.bad_code,
            ),
            "AEPATGROUP": np.where(
                crisis,
                "30",
                _pick(
                    rng,
                    np.array(["10", "20", "40", "50", "60", "70", "80"], dtype=object),
                    n,
                    np.array([0.08, 0.12, 0.08, 0.01, 0.45, 0.005, 0.255]),
                ),
            ).astype(object),
            "DIAG_01": np.where(
                crisis | (rng.random(n) < 0.05),
                "35",
                _pick(rng, np.array(["01", "02", "03", "04", "05", "06", "14", "21", "38"], dtype=object), n),
            ).astype(object),
        }
    )
    truth = _truth("hes_ae", table["AEKEY"].to_numpy(), p["person_id"].to_numpy())
    return {"hes_ae": recorded.duplicate_rows(rng, table, dirt.duplicate_row)}, truth


# --- MHSDS and IAPT share a shape: MPI, referrals, care contacts, monthly resubmissions ----------


def _patients(
    persons: pd.DataFrame, members: np.ndarray, providers: np.ndarray, rng: np.random.Generator, block: int, salt: int
) -> pd.DataFrame:
    """(person row, provider, LocalPatientId): most people at one provider, some at two."""
    rows = np.nonzero(members)[0]
    second = rows[rng.random(len(rows)) < 0.1]
    all_rows = np.concatenate([rows, second])
    prov = _pick(rng, providers, len(all_rows))
    return pd.DataFrame(
        {
            "row": all_rows,
            "OrgIDProv": prov,
            "LocalPatientId": keys("LP", block, np.arange(len(all_rows)), salt, 10),
            "main": np.concatenate([np.ones(len(rows), bool), np.zeros(len(second), bool)]),
        }
    )


def _assign_patient(patients: pd.DataFrame, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each event's person row, the index of one of their patient records (main one mostly)."""
    main = patients[patients["main"]].set_index("row")
    other = patients[~patients["main"]].set_index("row")
    idx = main.loc[rows, "idx"].to_numpy()
    has_other = np.isin(rows, other.index.to_numpy())
    use_other = has_other & (rng.random(len(rows)) < 0.4)
    if use_other.any():
        idx[use_other] = other.loc[rows[use_other], "idx"].to_numpy()
    return idx


def _resubmissions(
    table: pd.DataFrame, month_col: str, rng: np.random.Generator, rate: float, end_month: int
) -> pd.DataFrame:
    """Monthly submissions: some records are sent again in later months (same content)."""
    again = table[rng.random(len(table)) < rate].copy()
    again[month_col] = np.minimum(again[month_col].astype(int) + rng.integers(1, 4, size=len(again)), end_month).astype(
        str
    )
    return pd.concat([table, again], ignore_index=True)


def _mpi(persons, patients, activity, cfg, rng, block, id_col: str = "NHSNumber"):
    """Master patient index: one row per patient per month they had activity (up to 4 months)."""
    dirt = cfg.dirt
    act = activity.drop_duplicates(["idx", "month"])
    act = act.iloc[rng.permutation(len(act))]
    act = act[act.groupby("idx").cumcount().to_numpy() < 4].sort_values(["idx", "month"])
    pat = patients.iloc[act["idx"].to_numpy()].reset_index(drop=True)
    p = persons.iloc[pat["row"].to_numpy()].reset_index(drop=True)
    months = act["month"].to_numpy()
    days = cal.month_start(months)
    n = len(p)
    table = pd.DataFrame(
        {
            "LocalPatientId": pat["LocalPatientId"].to_numpy(),
            "OrgIDProv": pat["OrgIDProv"].to_numpy(),
            id_col: recorded.nhs_number(rng, p, dirt.nhs_missing["mhsds"], dirt),
            "PersonBirthDate": recorded.dob(rng, p["dob"].to_numpy(), dirt),
            "Gender": np.where(rng.random(n) < 0.003, "9", recorded.sex_code(p["sex"].to_numpy(), "129")).astype(
                object
            ),
            "Postcode": recorded.postcode(rng, p, days, dirt),
            "UniqMonthID": _s(cal.uniq_month_id(months)),
        }
    )
    record_keys = (table["OrgIDProv"] + "|" + table["LocalPatientId"]).to_numpy()
    return table, record_keys, p["person_id"].to_numpy()


def _legacy_referrals(patients: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Every patient has an open referral from before the extract, so early contacts have a home."""
    days = rng.integers(cal.day("2008-01-01"), cal.day("2010-12-31"), size=len(patients))
    return pd.DataFrame({"idx": np.arange(len(patients)), "day": days, "induced": False, "legacy": True})


def _attach(contacts_idx: np.ndarray, contacts_day: np.ndarray, referrals: pd.DataFrame) -> np.ndarray:
    """Position in `referrals` of each contact's latest referral at the same patient, on or before it."""
    ref = referrals.reset_index(drop=True)
    order = np.lexsort((ref["day"].to_numpy(), ref["idx"].to_numpy()))
    r_idx, r_day = ref["idx"].to_numpy()[order], ref["day"].to_numpy()[order]
    key_r = r_idx.astype("float64") * 1e6 + r_day
    key_c = contacts_idx.astype("float64") * 1e6 + contacts_day
    pos = np.searchsorted(key_r, key_c, side="right") - 1
    return order[pos]


def _events_at(persons, patients, process, cfg, rng):
    ev = draw_events(persons, process, cfg, rng)
    ev = ev[np.isin(ev["row"].to_numpy(), patients["row"].to_numpy())]
    ev = ev.assign(idx=_assign_patient(patients, ev["row"].to_numpy(), rng))
    return ev.reset_index(drop=True)


def _run_on(
    periods: pd.DataFrame, code: np.ndarray, end: np.ndarray, end_day: int, block: int, share: float, rng
) -> pd.DataFrame:
    """MHA periods + a record for each detention (a `share` of those that end by end_day and can
    run on: CONTINUES) that runs on into the next section, as real detentions do. The run-on is
    part of the same detention, no new one: the planted process does not count it, and the job
    must not either (ld_spark.events.with_new_detention)."""
    n = len(periods)
    on = np.flatnonzero(np.isin(code, list(CONTINUES)) & (end <= end_day) & (rng.random(n) < share))
    nxt = np.array([CONTINUES[c] for c in code[on]], dtype=object)
    start = end[on] + (nxt == "02").astype("int64")
    length = np.array([DETENTION_DAYS[c] for c in nxt]) * rng.uniform(0.3, 1.0, size=len(on))
    stop = start + length.astype("int64")
    kept = start <= end_day
    on, nxt, start, stop = on[kept], nxt[kept], start[kept], stop[kept]
    run_ons = pd.DataFrame(
        {
            "MHActLegalStatusClassPeriodId": keys("MH", block, n + np.arange(len(on)), 34, 12),
            "LocalPatientId": periods["LocalPatientId"].to_numpy()[on],
            "OrgIDProv": periods["OrgIDProv"].to_numpy()[on],
            "LegalStatusCode": nxt,
            "StartDateMHActLegalStatusClass": cal.iso(start),
            "EndDateMHActLegalStatusClass": cal.iso(np.where(stop <= end_day, stop, np.nan)),
            "UniqMonthID": _s(cal.uniq_month_id(cal.month_of(start))),
        }
    )
    return pd.concat([periods, run_ons], ignore_index=True)


def build_mhsds(persons: pd.DataFrame, cfg: GeneratorConf, rng: np.random.Generator, block: int):
    dirt, end_day = cfg.dirt, cal.day(cfg.extract_end)
    end_month = int(cal.uniq_month_id(cal.month_of(np.array([end_day])))[0])
    referred = persons["role"].to_numpy() != 0
    # L&D teams record their own referral in MHSDS (team type D02) for many of those they see.
    ld_team = referred & persons["vuln_mental_health"].to_numpy() & (rng.random(len(persons)) < 0.6)
    patients = _patients(persons, persons["user_mh"].to_numpy() | ld_team, MH_PROVIDERS, rng, block, 31)
    patients["idx"] = np.arange(len(patients))

    refs = _events_at(persons, patients, "mh_referral", cfg, rng).assign(legacy=False, team=None)
    ld_rows = np.nonzero(ld_team)[0]
    ld_refs = pd.DataFrame(
        {
            "row": ld_rows,
            "day": persons["referral_day"].to_numpy()[ld_rows].astype("int64"),
            "induced": True,
            "legacy": False,
            "team": "D02",
        }
    )
    ld_refs["idx"] = _assign_patient(patients, ld_rows, rng)
    legacy = _legacy_referrals(patients, rng).assign(row=patients["row"].to_numpy(), team=None)
    referrals = pd.concat([legacy, refs, ld_refs], ignore_index=True)
    nr = len(referrals)
    team = referrals["team"].to_numpy().astype(object)
    team = np.where(pd.isna(team), _pick(rng, MH_TEAMS, nr), team)
    source = np.where(referrals["induced"].to_numpy(), "E5", _pick(rng, MH_SOURCES, nr))
    ref_day = referrals["day"].to_numpy()
    disch = _open_until(ref_day, 30, 400, rng, end_day)
    pat = patients.iloc[referrals["idx"].to_numpy()].reset_index(drop=True)
    ref_month = np.maximum(cal.month_of(ref_day), cal.month_of(np.array([cal.day(cfg.extract_start)]))[0])
    mhs101 = pd.DataFrame(
        {
            "ServiceRequestId": keys("SR", block, np.arange(nr), 32, 12),
            "LocalPatientId": pat["LocalPatientId"].to_numpy(),
            "OrgIDProv": pat["OrgIDProv"].to_numpy(),
            "ReferralRequestReceivedDate": recorded.bad_dates(rng, cal.iso(ref_day), dirt.bad_date),
            "SourceOfReferralMH": source.astype(object),
            "ServTeamTypeRefToMH": recorded.bad_codes(rng, team, dirt.bad_code),
            "ServDischDate": None,
            "UniqMonthID": _s(cal.uniq_month_id(ref_month)),
        }
    )
    # The discharge arrives in a later month's submission: the latest UniqMonthID is the truth.
    discharged = ~np.isnan(disch)
    final = mhs101[discharged].copy()
    final["ServDischDate"] = cal.iso(disch[discharged])
    final["UniqMonthID"] = _s(
        np.maximum(
            cal.uniq_month_id(cal.month_of(disch[discharged].astype("int64"))),
            final["UniqMonthID"].astype(int).to_numpy(),
        )
    )
    mhs101 = pd.concat([mhs101, final], ignore_index=True)

    contacts = _events_at(persons, patients, "mh_contact", cfg, rng)
    nc = len(contacts)
    home = _attach(contacts["idx"].to_numpy(), contacts["day"].to_numpy(), referrals)
    cpat = patients.iloc[contacts["idx"].to_numpy()].reset_index(drop=True)
    attended = rng.random(nc) < 0.8
    mhs201 = pd.DataFrame(
        {
            "CareContactId": keys("CC", block, np.arange(nc), 33, 12),
            "ServiceRequestId": mhs101["ServiceRequestId"].to_numpy()[home],
            "OrgIDProv": cpat["OrgIDProv"].to_numpy(),
            "CareContDate": recorded.bad_dates(rng, cal.iso(contacts["day"].to_numpy()), dirt.bad_date),
            "AttendOrDNACode": np.where(
                attended,
                _pick(rng, np.array(["5", "6"], dtype=object), nc),
                _pick(rng, np.array(["2", "3", "4", "7"], dtype=object), nc),
            ).astype(object),
            "ConsMechanismMH": recorded.bad_codes(
                rng,
                np.where(rng.random(nc) < 0.7, "01", _pick(rng, np.array(["02", "03", "04"], dtype=object), nc)).astype(
                    object
                ),
                dirt.bad_code,
            ),
            "UniqMonthID": _s(cal.uniq_month_id(cal.month_of(contacts["day"].to_numpy()))),
        }
    )
    mhs201 = _resubmissions(mhs201, "UniqMonthID", rng, 0.05, end_month)

    det = _events_at(persons, patients, "mha_detention", cfg, rng).assign(informal=False)
    # Informal admissions (01) are recorded too but are not detentions.
    informal = det.sample(frac=0.5, random_state=int(rng.integers(1 << 31))).assign(informal=True)
    informal["day"] = informal["day"] + rng.integers(-200, 200, size=len(informal))
    informal = informal[(informal["day"] >= cal.day(cfg.extract_start)) & (informal["day"] <= end_day)]
    periods = pd.concat([det, informal], ignore_index=True)
    npd = len(periods)
    code = np.where(periods["informal"].to_numpy(), "01", _pick(rng, DETENTIONS, npd, DETENTION_WEIGHTS)).astype(object)
    length = np.array([DETENTION_DAYS.get(c, 30) for c in code]) * rng.uniform(0.3, 1.0, size=npd)
    start = periods["day"].to_numpy()
    end = start + length.astype("int64")
    ppat = patients.iloc[periods["idx"].to_numpy()].reset_index(drop=True)
    mhs401 = pd.DataFrame(
        {
            "MHActLegalStatusClassPeriodId": keys("MH", block, np.arange(npd), 34, 12),
            "LocalPatientId": ppat["LocalPatientId"].to_numpy(),
            "OrgIDProv": ppat["OrgIDProv"].to_numpy(),
            "LegalStatusCode": recorded.bad_codes(rng, code, dirt.bad_code),
            "StartDateMHActLegalStatusClass": recorded.bad_dates(rng, cal.iso(start), dirt.bad_date),
            "EndDateMHActLegalStatusClass": cal.iso(np.where(end <= end_day, end, np.nan)),
            "UniqMonthID": _s(cal.uniq_month_id(cal.month_of(start))),
        }
    )

    if cfg.detention_chain_share > 0:
        # On a stream of its own (spawning one leaves this one's state as it was), so that no
        # other value moves with it; before duplicate_rows, so a run-on can be resubmitted too.
        mhs401 = _run_on(mhs401, code, end, end_day, block, cfg.detention_chain_share, rng.spawn(1)[0])

    activity = pd.concat(
        [
            pd.DataFrame({"idx": referrals["idx"], "month": np.maximum(ref_month, ref_month.min())}),
            pd.DataFrame({"idx": contacts["idx"], "month": cal.month_of(contacts["day"].to_numpy())}),
            pd.DataFrame({"idx": periods["idx"], "month": cal.month_of(start)}),
        ],
        ignore_index=True,
    )
    mpi, mpi_keys, mpi_persons = _mpi(persons, patients, activity, cfg, rng, block)
    tables = {
        "mhsds/mhs001_mpi": mpi,
        "mhsds/mhs101_referral": mhs101,
        "mhsds/mhs201_care_contact": mhs201,
        "mhsds/mhs401_mha_period": mhs401,
    }
    tables = {k: recorded.duplicate_rows(rng, v, dirt.duplicate_row) for k, v in tables.items()}
    return tables, _truth("mhsds.mhs001_mpi", mpi_keys, mpi_persons)


# Share of IAPT care contacts attended (codes 5, 6); the rest are cancellations and DNAs.
IAPT_ATTENDED_SHARE = 0.75
IAPT_END_CODES = np.array(["10", "11", "12", "13", "14", "16", "17", "95", "96", "97", "98"], dtype=object)
IAPT_SOURCES = np.array(["A1", "A3", "B1", "M3", "N3", "P1"], dtype=object)


def build_iapt(persons: pd.DataFrame, cfg: GeneratorConf, rng: np.random.Generator, block: int):
    dirt, end_day = cfg.dirt, cal.day(cfg.extract_end)
    end_month = int(cal.uniq_month_id(cal.month_of(np.array([end_day])))[0])
    patients = _patients(persons, persons["user_iapt"].to_numpy(), IAPT_PROVIDERS, rng, block, 41)
    patients["idx"] = np.arange(len(patients))
    refs = _events_at(persons, patients, "iapt_referral", cfg, rng).assign(legacy=False)
    legacy = _legacy_referrals(patients, rng).assign(row=patients["row"].to_numpy())
    referrals = pd.concat([legacy, refs], ignore_index=True)
    nr = len(referrals)
    ref_day = referrals["day"].to_numpy()
    ref_month = np.maximum(cal.month_of(ref_day), cal.month_of(np.array([cal.day(cfg.extract_start)]))[0])
    disch = _open_until(ref_day, 30, 300, rng, end_day)
    pat = patients.iloc[referrals["idx"].to_numpy()].reset_index(drop=True)
    ids101 = pd.DataFrame(
        {
            "ServiceRequestId": keys("IR", block, np.arange(nr), 42, 12),
            "LocalPatientId": pat["LocalPatientId"].to_numpy(),
            "OrgIDProv": pat["OrgIDProv"].to_numpy(),
            "ReferralRequestReceivedDate": recorded.bad_dates(rng, cal.iso(ref_day), dirt.bad_date),
            "SourceOfReferralMH": np.where(referrals["induced"].to_numpy(), "E5", _pick(rng, IAPT_SOURCES, nr)).astype(
                object
            ),
            "ServDischDate": cal.iso(disch),
            "EndCode": np.where(
                np.isnan(disch), None, recorded.bad_codes(rng, _pick(rng, IAPT_END_CODES, nr), dirt.bad_code)
            ).astype(object),
            "UniqMonthID": _s(cal.uniq_month_id(ref_month)),
        }
    )
    ids101 = _resubmissions(ids101, "UniqMonthID", rng, 0.3, end_month)

    contacts = _events_at(persons, patients, "iapt_contact", cfg, rng)
    nc = len(contacts)
    home = _attach(contacts["idx"].to_numpy(), contacts["day"].to_numpy(), referrals)
    cpat = patients.iloc[contacts["idx"].to_numpy()].reset_index(drop=True)
    attended = rng.random(nc) < IAPT_ATTENDED_SHARE
    ids201 = pd.DataFrame(
        {
            "CareContactId": keys("IC", block, np.arange(nc), 43, 12),
            "ServiceRequestId": keys("IR", block, np.arange(nr), 42, 12)[home],
            "OrgIDProv": cpat["OrgIDProv"].to_numpy(),
            "CareContDate": recorded.bad_dates(rng, cal.iso(contacts["day"].to_numpy()), dirt.bad_date),
            "AttendOrDNACode": recorded.bad_codes(
                rng,
                np.where(
                    attended,
                    _pick(rng, np.array(["5", "6"], dtype=object), nc),
                    _pick(rng, np.array(["2", "3", "4", "7"], dtype=object), nc),
                ).astype(object),
                dirt.bad_code,
            ),
            "UniqMonthID": _s(cal.uniq_month_id(cal.month_of(contacts["day"].to_numpy()))),
        }
    )
    activity = pd.concat(
        [
            pd.DataFrame({"idx": referrals["idx"], "month": ref_month}),
            pd.DataFrame({"idx": contacts["idx"], "month": cal.month_of(contacts["day"].to_numpy())}),
        ],
        ignore_index=True,
    )
    mpi, mpi_keys, mpi_persons = _mpi(persons, patients, activity, cfg, rng, block)
    tables = {"iapt/ids001_mpi": mpi, "iapt/ids101_referral": ids101, "iapt/ids201_care_contact": ids201}
    tables = {k: recorded.duplicate_rows(rng, v, dirt.duplicate_row) for k, v in tables.items()}
    return tables, _truth("iapt.ids001_mpi", mpi_keys, mpi_persons)


# --- NDTMS --------------------------------------------------------------------------------------

DRUGS = np.array(["OPI", "CRA", "COC", "CAN", "ALC", "AMP", "OTH"], dtype=object)
DRUG_WEIGHTS = np.array([0.25, 0.12, 0.1, 0.15, 0.3, 0.03, 0.05])
REFERRAL_SOURCES = np.array(["CJ", "SE", "GP", "HO", "OT"], dtype=object)
MODALITIES = np.array(["PHARM", "PSYCH", "RECOV", "INPAT", "RESID"], dtype=object)
DISCHARGE_REASONS = np.array(["80", "81", "82", "83", "84", "85", "86"], dtype=object)


def build_ndtms(persons: pd.DataFrame, cfg: GeneratorConf, rng: np.random.Generator, block: int):
    dirt, end_day = cfg.dirt, cal.day(cfg.extract_end)
    users = persons["user_drug"].to_numpy()
    # One agency per client (CLIENTID is the agency's own id for the person).
    patients = _patients(persons, users, DRUG_AGENCIES, rng, block, 51)
    patients = patients[patients["main"]].reset_index(drop=True)
    patients["idx"] = np.arange(len(patients))
    refs = _events_at(persons, patients, "drug_referral", cfg, rng).assign(legacy=False)
    legacy = _legacy_referrals(patients, rng).assign(row=patients["row"].to_numpy())
    episodes = pd.concat([legacy, refs], ignore_index=True)
    ne = len(episodes)
    p = persons.iloc[episodes["row"].to_numpy()].reset_index(drop=True)
    pat = patients.iloc[episodes["idx"].to_numpy()].reset_index(drop=True)
    ref_day = episodes["day"].to_numpy()
    fore, sur = recorded.names(rng, p["forename"].to_numpy(), p["surname"].to_numpy(), dirt)
    pc = recorded.postcode(rng, p, ref_day, dirt)
    triaged = np.where(rng.random(ne) < 0.9, ref_day + rng.integers(0, 22, size=ne), np.nan)
    disd = _open_until(ref_day, 60, 500, rng, end_day)
    induced = episodes["induced"].to_numpy()
    rfls = np.where(
        induced & (rng.random(ne) < 0.8), "CJ", _pick(rng, REFERRAL_SOURCES, ne, np.array([0.25, 0.35, 0.2, 0.1, 0.1]))
    )
    episode_ids = keys("EP", block, np.arange(ne), 52, 10)
    episodes_table = pd.DataFrame(
        {
            "EPISODID": episode_ids,
            "CLIENTID": pat["LocalPatientId"].to_numpy(),
            "AGNCY": pat["OrgIDProv"].to_numpy(),
            "FINITIAL": np.array([f[0].upper() if isinstance(f, str) and f else None for f in fore], dtype=object),
            "SINITIAL": np.array([s[0].upper() if isinstance(s, str) and s else None for s in sur], dtype=object),
            "DOB": recorded.dob(rng, p["dob"].to_numpy(), dirt),
            "SEX": recorded.bad_codes(rng, p["sex"].to_numpy().astype(object), dirt.bad_code),
            "PC": ident.postcode_sector(
                pd.Series(pc).str.upper().str.replace(r"^(\S+?)(\d[A-Z]{2})$", r"\1 \2", regex=True)
            ).to_numpy(),
            "REFLD": recorded.bad_dates(rng, cal.iso(ref_day), dirt.bad_date),
            "TRIAGED": cal.iso(triaged),
            "RFLS": rfls.astype(object),
            "DRUG1": _pick(rng, DRUGS, ne, DRUG_WEIGHTS),
            "DISD": cal.iso(disd),
            "DISRSN": np.where(np.isnan(disd), None, _pick(rng, DISCHARGE_REASONS, ne)).astype(object),
        }
    )

    starts = _events_at(persons, patients, "drug_start", cfg, rng)
    ns = len(starts)
    home = _attach(starts["idx"].to_numpy(), starts["day"].to_numpy(), episodes)
    modst = starts["day"].to_numpy()
    modend = _open_until(modst, 30, 300, rng, end_day)
    modalities = pd.DataFrame(
        {
            "MODID": keys("MO", block, np.arange(ns), 53, 10),
            "EPISODID": episode_ids[home],
            "AGNCY": episodes_table["AGNCY"].to_numpy()[home],
            "MODAL": _pick(rng, MODALITIES, ns, np.array([0.4, 0.35, 0.15, 0.05, 0.05])),
            "REFMODDT": cal.iso(modst - rng.integers(0, 15, size=ns)),
            "MODST": recorded.bad_dates(rng, cal.iso(modst), dirt.bad_date),
            "MODEND": cal.iso(modend),
        }
    )

    # Treatment Outcomes Profile at triage and six-monthly reviews; self-rated health worsens
    # as the L&D index arrest approaches (the brief's drug-treatment panel of Figure 1).
    live = ~episodes["legacy"].to_numpy()
    top_ep = np.repeat(np.nonzero(live)[0], rng.integers(1, 4, size=live.sum()))
    seq = (
        np.concatenate([np.arange(c) for c in np.bincount(top_ep, minlength=ne)[np.unique(top_ep)]])
        if len(top_ep)
        else np.array([], int)
    )
    top_day = ref_day[top_ep] + 14 + 182 * seq
    keep = top_day <= end_day
    top_ep, top_day = top_ep[keep], top_day[keep]
    tp = p.iloc[top_ep]
    ld_index = tp["ld_index_day"].to_numpy()
    rel = np.where(
        np.isnan(ld_index), 99, cal.month_of(top_day) - cal.month_of(np.nan_to_num(ld_index).astype("int64"))
    )
    decline = cfg.top_decline_per_month * top_decline_months(rel)
    nt = len(top_ep)

    def score(mean: float) -> np.ndarray:
        return _s(np.clip(np.round(mean - decline + rng.normal(0, 3, size=nt)), 0, 20).astype(int))

    top = pd.DataFrame(
        {
            "TOPID": keys("TP", block, np.arange(nt), 54, 10),
            "EPISODID": episode_ids[top_ep],
            "AGNCY": episodes_table["AGNCY"].to_numpy()[top_ep],
            "TOPDATE": cal.iso(top_day),
            "PSYHSTAT": score(11.0),
            "PHSTAT": score(12.0),
            "QUALLIFE": score(11.0),
        }
    )
    if dirt.client_missing > 0:
        # On a stream of its own (spawning one leaves this one's state as it was), so that no
        # other value moves with it; before duplicate_rows, so a resubmission keeps it.
        blanks = rng.spawn(1)[0]
        episodes_table["CLIENTID"] = recorded.blank(blanks, episodes_table["CLIENTID"].to_numpy(), dirt.client_missing)
    tables = {"ndtms/episodes": episodes_table, "ndtms/modalities": modalities, "ndtms/top": top}
    tables = {k: recorded.duplicate_rows(rng, v, dirt.duplicate_row) for k, v in tables.items()}
    return tables, _truth("ndtms.episodes", episode_ids, p["person_id"].to_numpy())
