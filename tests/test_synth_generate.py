"""The synthetic national extract: layout, determinism, calibration, planted effects, dirt.

Every check reads the written CSV files (and _truth/ to know who is who), never the
generator's parameters, except to name the target a measured figure is compared against.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ld_spark.contract import DATE, INT, KEYS, MONTHLY_SUBMISSION_TABLES, TABLES, TYPES, YN
from ld_spark.synth import identity as ident
from ld_spark.synth.generate import generate_rows

DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def read_table(root: Path, table: str) -> pd.DataFrame:
    files = sorted((root / table).glob("*.csv"))
    assert files, f"no CSV files for {table}"
    return pd.concat(
        [pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[""]) for f in files], ignore_index=True
    )


@pytest.fixture(scope="module")
def raw(extract):
    root, _ = extract
    cache: dict[str, pd.DataFrame] = {}

    def get(table: str) -> pd.DataFrame:
        if table not in cache:
            cache[table] = read_table(root, table)
        return cache[table]

    get.root = root
    return get


@pytest.fixture(scope="module")
def truth(extract):
    root, _ = extract
    return pd.read_csv(root / "_truth" / "record_person.csv", dtype=str)


@pytest.fixture(scope="module")
def identity(extract):
    root, _ = extract
    return pd.read_csv(root / "_truth" / "person_identity.csv", dtype=str, keep_default_na=False, na_values=[""])


def with_person(df: pd.DataFrame, truth: pd.DataFrame, source: str, key: str) -> pd.DataFrame:
    t = truth[truth["source_table"] == source][["record_key", "person_id"]]
    return df.merge(t, left_on=key, right_on="record_key", how="left", validate="many_to_one")


# --- layout ----------------------------------------------------------------------------------------


def test_every_contract_table_is_written_with_exactly_its_columns(extract):
    root, counts = extract
    for table, columns in TABLES.items():
        files = sorted((root / table).glob("*.csv"))
        assert files, table
        header = files[0].read_text().splitlines()[0].split(",")
        assert header == columns, table
        assert counts[table] > 0, table
    planted = json.loads((root / "_truth" / "planted.json").read_text())
    assert {"n_evaluation", "custody_or", "mh_referral_rr", "court_duration_days_diff"} <= set(planted)


def test_truth_maps_every_identity_record_to_one_person(raw, truth):
    for source, table, key in [
        ("ld_referrals", "ld_referrals", "referral_id"),
        ("hes_ae", "hes_ae", "AEKEY"),
        ("pnc.offences", "pnc/offences", "offence_id"),
        ("hmcts.cases", "hmcts/cases", "case_id"),
        ("ndtms.episodes", "ndtms/episodes", "EPISODID"),
    ]:
        keys = set(raw(table)[key])
        mapped = truth[truth["source_table"] == source]
        assert keys == set(mapped["record_key"]), source
        assert not mapped["record_key"].duplicated().any(), source
    mpi = raw("mhsds/mhs001_mpi")
    mpi_keys = set(mpi["OrgIDProv"] + "|" + mpi["LocalPatientId"])
    mpi_truth = truth.loc[truth["source_table"] == "mhsds.mhs001_mpi", "record_key"]
    assert mpi_keys == set(mpi_truth)
    assert not mpi_truth.duplicated().any()  # one truth row per record, not per monthly submission


def test_dates_and_codes_are_in_contract_format_apart_from_planted_bad_values(raw):
    checks = [
        ("hes_ae", "ARRIVALDATE", None),
        ("pnc/offences", "offence_date", None),
        ("ndtms/episodes", "REFLD", None),
        ("hmcts/hearings", "hearing_date", None),
        ("hes_ae", "AEATTENDDISP", {"01", "02", "03", "07", "12", "99"}),
        (
            "pnc/offences",
            "disposal_code",
            {"1002", "1024", "1081", "1115", "1116", "1015", "1018", "1019", "2050", "2063"},
        ),
        ("mhsds/mhs401_mha_period", "LegalStatusCode", {"01", "02", "03", "04", "19", "20"}),
        ("hmcts/hearings", "hearing_type", {"FH", "MNTN", "PTR", "TRIAL", "SWPSR", "STPSR", "RMAND", "CS", "PBV"}),
    ]
    for table, column, codes in checks:
        values = raw(table)[column].dropna()
        ok = values.str.match(DATE_SHAPE) if codes is None else values.isin(codes)
        bad_share = 1 - ok.mean()
        # dirt.bad_date / dirt.bad_code is 0.2%: present, but rare.
        assert 0 < bad_share < 0.01, (table, column, bad_share)


def test_every_typed_column_parses_as_its_contract_type_but_for_rare_planted_faults(raw):
    patterns = {DATE: DATE_SHAPE, INT: re.compile(r"^-?\d+$"), YN: re.compile(r"^[YN]$")}
    for table, types in TYPES.items():
        for column, kind in types.items():
            values = raw(table)[column].dropna()
            if values.empty:
                continue
            parsed = values.str.match(patterns[kind])
            if kind == DATE:  # real calendar dates, not just the shape
                parsed &= pd.to_datetime(values, format="%Y-%m-%d", errors="coerce").notna()
            assert parsed.mean() > 0.99, (table, column, parsed.mean())


def test_rows_do_not_depend_on_partitioning(spark, config):
    cfg = config.generator.model_copy(update={"block_size": 100})
    two = generate_rows(spark, cfg, seed=3, scale=0.003, partitions=2)
    five = generate_rows(spark, cfg, seed=3, scale=0.003, partitions=5)
    a = two.toPandas().sort_values(list(two.columns)).reset_index(drop=True)
    b = five.toPandas().sort_values(list(five.columns)).reset_index(drop=True)
    assert len(a) > 1000
    pd.testing.assert_frame_equal(a, b)
    other_seed = generate_rows(spark, cfg, seed=4, scale=0.003, partitions=2).toPandas()
    assert not other_seed.sort_values(list(other_seed.columns)).reset_index(drop=True).equals(a)


# --- calibration against the brief -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(raw, truth):
    """First consenting in-window referral per person (the evaluation cohort's index)."""
    ld = with_person(raw("ld_referrals").drop_duplicates(), truth, "ld_referrals", "referral_id")
    in_window = ld["referral_date"].between("2017-01-01", "2017-09-30") & (ld["consent"] == "Y")
    first = ld[in_window].sort_values("referral_date").drop_duplicates("person_id")
    return first.assign(index=pd.to_datetime(first["index_offence_date"]))


def test_evaluation_cohort_size_scales_to_the_brief(cohort):
    # 8,729 at scale 1; the calibration extract is scale 0.2.
    assert 0.2 * 8729 * 0.9 < len(cohort) < 0.2 * 8729 * 1.1


def test_vulnerability_shares_match_the_brief(raw):
    ld = raw("ld_referrals").drop_duplicates()
    vulns = ld[[c for c in ld.columns if c.startswith("vuln_")]] == "Y"
    shares = {
        "any": vulns.any(axis=1).mean(),
        "mental_health": vulns["vuln_mental_health"].mean(),
        "substance": vulns["vuln_substance_misuse"].mean(),
        "multiple_mh": (pd.to_numeric(ld["mh_needs"]) >= 2).mean(),
    }
    targets = {"any": 0.88, "mental_health": 0.71, "substance": 0.52, "multiple_mh": 0.20}
    for name, target in targets.items():
        assert abs(shares[name] - target) < 0.025, (name, shares[name])


def test_substance_misuse_declines_more_and_iapt_onward_referral_varies_most_by_site(raw):
    ld = raw("ld_referrals").drop_duplicates()
    substance = ld["vuln_substance_misuse"] == "Y"
    declined = ld["declined"] == "Y"
    assert declined[substance].mean() > 1.8 * declined[~substance].mean()
    accepted = ld[~declined]
    onward = accepted["onward_referrals"].fillna("")
    spread = {}
    for kind in ("iapt", "gp", "drug_alcohol", "advice"):
        by_site = onward.str.split(";").apply(lambda ks, kind=kind: kind in ks).groupby(accepted["site_code"]).mean()
        spread[kind] = by_site.std() / by_site.mean()
    assert spread["iapt"] == max(spread.values()), spread


def test_historic_control_is_about_a_fifth_of_the_cohort(raw, truth, cohort):
    pnc = with_person(raw("pnc/offences").drop_duplicates(), truth, "pnc.offences", "offence_id")
    charged_fy = pnc["charge_date"].between("2013-04-01", "2014-03-31")
    historic = set(pnc.loc[charged_fy, "person_id"]) & set(cohort["person_id"])
    assert 0.16 < len(historic) / len(cohort) < 0.22


def _monthly_rate(events: pd.DataFrame, date_col: str, cohort: pd.DataFrame) -> pd.Series:
    """Events per cohort person per month by month relative to the evaluation index."""
    ev = events.merge(cohort[["person_id", "index"]], on="person_id", how="inner")
    day = pd.to_datetime(ev[date_col], errors="coerce")
    rel = (day.dt.year * 12 + day.dt.month) - (ev["index"].dt.year * 12 + ev["index"].dt.month)
    return rel.value_counts().reindex(range(-24, 13), fill_value=0) / len(cohort)


def test_crisis_pattern_health_rises_for_a_year_offending_only_in_the_last_months(raw, truth, cohort):
    ae = with_person(raw("hes_ae").drop_duplicates(), truth, "hes_ae", "AEKEY")
    ae_rate = _monthly_rate(ae, "ARRIVALDATE", cohort)
    early, ramp, late = ae_rate.loc[-24:-13].mean(), ae_rate.loc[-9:-7].mean(), ae_rate.loc[-3:-1].mean()
    assert early < ramp < late
    assert late > 1.8 * early

    pnc = with_person(raw("pnc/offences").drop_duplicates(), truth, "pnc.offences", "offence_id")
    off_rate = _monthly_rate(pnc, "offence_date", cohort)
    base, mid, spike = off_rate.loc[-24:-13].mean(), off_rate.loc[-12:-3].mean(), off_rate.loc[-2:-1].mean()
    assert 0.8 < mid / base < 1.25  # no ramp in offending over the year
    assert spike > 1.8 * mid  # but a rise in the last two months


def test_no_prior_contact_share_is_about_a_quarter(raw, truth, cohort):
    contacts = []
    for source, table, key, date in [
        ("hes_ae", "hes_ae", "AEKEY", "ARRIVALDATE"),
        ("ndtms.episodes", "ndtms/episodes", "EPISODID", "REFLD"),
    ]:
        contacts.append(with_person(raw(table), truth, source, key)[["person_id", date]].rename(columns={date: "date"}))
    for mpi, refs, date in [
        ("mhsds/mhs001_mpi", "mhsds/mhs101_referral", "ReferralRequestReceivedDate"),
        ("iapt/ids001_mpi", "iapt/ids101_referral", "ReferralRequestReceivedDate"),
    ]:
        m = raw(mpi)
        m = m.assign(record_key=m["OrgIDProv"] + "|" + m["LocalPatientId"])
        m = m.merge(truth[["record_key", "person_id"]], on="record_key").drop_duplicates(
            ["OrgIDProv", "LocalPatientId"]
        )
        r = raw(refs).merge(m[["OrgIDProv", "LocalPatientId", "person_id"]], on=["OrgIDProv", "LocalPatientId"])
        contacts.append(r[["person_id", date]].rename(columns={date: "date"}))
    for table, date in [("mhsds/mhs201_care_contact", "CareContDate"), ("iapt/ids201_care_contact", "CareContDate")]:
        refs = raw(
            table.replace("201_care_contact", "101_referral").replace("mhs101", "mhs101").replace("ids101", "ids101")
        )
        contacts.append(
            raw(table)
            .merge(
                refs.drop_duplicates("ServiceRequestId")[["ServiceRequestId", "OrgIDProv", "LocalPatientId"]],
                on=["ServiceRequestId", "OrgIDProv"],
            )
            .merge(
                pd.concat([raw("mhsds/mhs001_mpi"), raw("iapt/ids001_mpi")])
                .assign(record_key=lambda d: d["OrgIDProv"] + "|" + d["LocalPatientId"])
                .merge(truth[["record_key", "person_id"]], on="record_key")
                .drop_duplicates(["OrgIDProv", "LocalPatientId"])[["OrgIDProv", "LocalPatientId", "person_id"]],
                on=["OrgIDProv", "LocalPatientId"],
            )[["person_id", date]]
            .rename(columns={date: "date"})
        )
    all_contacts = pd.concat(contacts, ignore_index=True).merge(cohort[["person_id", "index"]], on="person_id")
    day = pd.to_datetime(all_contacts["date"], errors="coerce")
    before = (day < all_contacts["index"]) & (day >= all_contacts["index"] - pd.DateOffset(months=24))
    with_prior = set(all_contacts.loc[before, "person_id"])
    share = 1 - len(with_prior & set(cohort["person_id"])) / len(cohort)
    assert 0.21 < share < 0.31, share


# --- planted effects, seen in the output ------------------------------------------------------------


def _period_counts(events: pd.DataFrame, date_col: str, index: pd.DataFrame) -> tuple[int, int]:
    ev = events.merge(index, on="person_id", how="inner")
    day = pd.to_datetime(ev[date_col], errors="coerce")
    rel = (day.dt.year * 12 + day.dt.month) - (ev["index"].dt.year * 12 + ev["index"].dt.month)
    return int(rel.between(-12, -1).sum()), int(rel.between(0, 11).sum())


@pytest.fixture(scope="module")
def historic_index(raw, truth, cohort):
    pnc = with_person(raw("pnc/offences").drop_duplicates(), truth, "pnc.offences", "offence_id")
    fy = pnc[pnc["charge_date"].between("2013-04-01", "2014-03-31") & pnc["person_id"].isin(cohort["person_id"])]
    first = fy.sort_values("arrest_date").drop_duplicates("person_id")
    return first.assign(index=pd.to_datetime(first["arrest_date"]))[["person_id", "index"]]


def test_referral_outcomes_rise_after_index_in_evaluation_cohort_only(raw, truth, cohort, historic_index):
    mpi = pd.concat([raw("mhsds/mhs001_mpi"), raw("iapt/ids001_mpi")])
    mpi = (
        mpi.assign(record_key=mpi["OrgIDProv"] + "|" + mpi["LocalPatientId"])
        .merge(truth[["record_key", "person_id"]], on="record_key")
        .drop_duplicates(["OrgIDProv", "LocalPatientId"])
    )
    refs = pd.concat([raw("mhsds/mhs101_referral").query("ServTeamTypeRefToMH != 'D02'"), raw("iapt/ids101_referral")])
    refs = refs.drop_duplicates("ServiceRequestId").merge(
        mpi[["OrgIDProv", "LocalPatientId", "person_id"]], on=["OrgIDProv", "LocalPatientId"]
    )
    ev_pre, ev_post = _period_counts(refs, "ReferralRequestReceivedDate", cohort[["person_id", "index"]])
    hi_pre, hi_post = _period_counts(refs, "ReferralRequestReceivedDate", historic_index)
    did = (ev_post / ev_pre) / (hi_post / hi_pre)
    assert did > 1.15, (ev_pre, ev_post, hi_pre, hi_post)

    ae = with_person(raw("hes_ae").drop_duplicates(), truth, "hes_ae", "AEKEY")
    a_pre, a_post = _period_counts(ae, "ARRIVALDATE", cohort[["person_id", "index"]])
    h_pre, h_post = _period_counts(ae, "ARRIVALDATE", historic_index)
    assert 0.8 < (a_post / a_pre) / (h_post / h_pre) < 1.25  # no planted effect on A&E


def test_custody_odds_halve_after_index_and_court_duration_falls(raw, truth, cohort):
    pnc = with_person(raw("pnc/offences").drop_duplicates(), truth, "pnc.offences", "offence_id")
    pnc = pnc.merge(cohort[["person_id", "index"]], on="person_id")
    day = pd.to_datetime(pnc["offence_date"], errors="coerce")
    rel = (day.dt.year * 12 + day.dt.month) - (pnc["index"].dt.year * 12 + pnc["index"].dt.month)
    sentenced = pnc["disposal_code"].isin(["1002", "1024", "1081", "1115", "1116", "1015", "1018", "1019"])
    custodial = pnc["disposal_code"].isin(["1002", "1024", "1081"])
    odds = {}
    for name, period in (("pre", rel.between(-12, -1)), ("post", rel.between(0, 11))):
        p = custodial[sentenced & period].mean()
        odds[name] = p / (1 - p)
    assert 0.3 < odds["post"] / odds["pre"] < 0.75, odds

    cases = with_person(raw("hmcts/cases").drop_duplicates(), truth, "hmcts.cases", "case_id")
    cases = cases.merge(cohort[["person_id", "index"]], on="person_id").dropna(subset=["completion_date"])
    off = pd.to_datetime(cases["offence_date"])
    rel = (off.dt.year * 12 + off.dt.month) - (cases["index"].dt.year * 12 + cases["index"].dt.month)
    duration = (
        pd.to_datetime(cases["completion_date"]) - pd.to_datetime(cases["first_hearing_date"], errors="coerce")
    ).dt.days
    diff = duration[rel.between(0, 11)].mean() - duration[rel.between(-12, -1)].mean()
    assert -20 < diff < 0, diff


# --- dirt at its configured rate -------------------------------------------------------------------


def test_a_key_two_rows_share_is_an_exact_resubmission_outside_the_monthly_submissions(raw):
    # Contract: keys are unique unless a duplicate row is an exact resubmission. A copy keyed
    # again with another sex would be a key reused with different content, and bronze would
    # quarantine both copies (sex is miscoded after rows are duplicated, so copies share it).
    for table in TABLES:
        if table in MONTHLY_SUBMISSION_TABLES:
            continue  # a record recurs in later months, as it was then
        df = raw(table)
        shared = df[df.duplicated(KEYS[table], keep=False)]
        assert len(shared) > 0, table  # resubmissions are there to check
        versions = shared.drop_duplicates().groupby(KEYS[table], dropna=False).size()
        assert (versions == 1).all(), (table, versions[versions > 1].head().to_dict())


def test_each_kind_of_dirt_is_present_at_about_its_rate(raw, truth, identity, config):
    dirt = config.generator.dirt
    ids = identity.set_index("person_id")
    pnc = with_person(raw("pnc/offences"), truth, "pnc.offences", "offence_id")
    true = ids.loc[pnc["person_id"]].reset_index(drop=True)
    n = len(pnc)
    assert n > 5000

    def near(measured: float, rate: float, rel: float = 0.35) -> bool:
        return abs(measured - rate) <= rel * rate + 3 / np.sqrt(n)

    swapped = (pnc["forename"] == true["surname"]) & (pnc["surname"] == true["forename"])
    assert near(swapped.mean(), dirt.name_swap, 0.5), swapped.mean()
    has_nick = true["forename"].map(lambda f: f in ident.NICKNAMES)
    nicknamed = pnc["forename"] == true["forename"].map(lambda f: ident.NICKNAMES.get(f, "\0"))
    assert near(nicknamed[has_nick].mean(), dirt.nickname, 0.6), nicknamed[has_nick].mean()
    placeholder = pnc["date_of_birth"].isin(ident.PLACEHOLDER_DOBS)
    assert near(placeholder.mean(), dirt.dob_placeholder, 0.6), placeholder.mean()
    day_month = pnc["date_of_birth"] == ident.dob_day_month_swap(true["date_of_birth"].to_numpy())
    # Only dates whose day could be a month (and differs from it) can be swapped.
    swappable = (true["date_of_birth"].str[8:10].astype(int) <= 12) & (
        true["date_of_birth"].str[8:10] != true["date_of_birth"].str[5:7]
    )
    assert near(day_month[swappable].mean(), dirt.dob_day_month_swap, 0.5), day_month[swappable].mean()
    lower = pnc["postcode"].str.match(r"^[a-z]")
    assert near(lower.mean(), dirt.postcode_lower, 0.4), lower.mean()
    nfa = pnc["postcode"] == "NF1 1NF"
    assert near(nfa.mean(), dirt.postcode_nfa, 0.6), nfa.mean()
    surname_typo_or_variant = (pnc["surname"] != true["surname"]) & ~swapped
    assert 0.03 < surname_typo_or_variant.mean() < 0.10

    hes = with_person(raw("hes_ae"), truth, "hes_ae", "AEKEY")
    hes_true = ids.loc[hes["person_id"]].reset_index(drop=True)
    missing = hes["NEWNHSNO"].isna()
    assert abs(missing.mean() - dirt.nhs_missing["hes_ae"]) < 0.01, missing.mean()
    wrong = ~missing & (hes["NEWNHSNO"] != hes_true["nhs_number"])
    digits = hes.loc[wrong, "NEWNHSNO"].map(lambda s: np.array([int(c) for c in s]))
    invalid = digits.map(lambda d: ident.nhs_check_digit(d[None, :9])[0] != d[9])
    # Mistyped numbers mostly fail the check digit; valid wrong ones are other people's numbers.
    assert 0.5 * dirt.nhs_mistyped < invalid.sum() / len(hes) < 1.5 * dirt.nhs_mistyped
    shared_rows = ~missing & ~wrong.reindex(hes.index, fill_value=False)
    other_people = set(hes_true["nhs_number"]) & set(hes.loc[wrong, "NEWNHSNO"][~invalid.to_numpy()])
    assert other_people, "no shared NHS numbers found"
    assert shared_rows.mean() > 0.9

    duplicates = hes.duplicated(subset=TABLES["hes_ae"]).mean()
    assert near(duplicates, dirt.duplicate_row, 0.4), duplicates
    two_pnc = pnc.groupby("person_id")["pnc_id"].nunique()
    assert 0.005 < (two_pnc > 1).mean() < 0.05


def test_planted_court_times_are_restricted_means_of_the_generators_own_court_process(config):
    from ld_spark.synth.tables_justice import planted_restricted_means

    cfg = config.generator
    # Far below the cap, the restricted-mean difference is the planted shift itself.
    short = cfg.model_copy(update={"court_duration_mean_days": {"magistrates": 20.0, "crown": 30.0}})
    got = planted_restricted_means(short, 365, draws=200_000)
    assert got["court_duration_days_diff"] == pytest.approx(cfg.court_duration_diff_days, abs=0.01)
    # No shift, no difference (the same cases are drawn both ways).
    none = cfg.model_copy(update={"court_duration_diff_days": 0.0})
    assert planted_restricted_means(none, 365, draws=200_000) == {
        "court_duration_days_diff": 0,
        "arrest_to_sentence_days_diff": 0,
    }
    # Long Crown cases: a case still past the cap after the shift does not move. Crown share
    # 0.05 + 0.4 x 0.3; P(8 + Gamma(2, 196) > 372) = exp(-x)(1 + x), x = 364/196.
    long = cfg.model_copy(update={"court_duration_mean_days": {"magistrates": 45.0, "crown": 400.0}})
    shrunk = planted_restricted_means(long, 365, draws=400_000)["court_duration_days_diff"]
    x = 364 / 196
    expected = cfg.court_duration_diff_days * (1 - 0.17 * np.exp(-x) * (1 + x))
    assert shrunk == pytest.approx(expected, abs=0.08)


def test_no_record_is_generated_while_its_person_serves_a_custodial_sentence():
    from ld_spark.synth.tables_justice import outside_custody

    # Person 0: sentenced on day 100 to 60 days (30 served: days 100..129). Person 1: free.
    person = np.array([0, 0, 0, 0, 0, 1, 0])
    day = np.array([90, 100, 129, 130, 110, 110, 120])
    kind = np.array(["background"] * 6 + ["ld_index"], dtype=object)
    sentence = np.array([100, -1, -1, -1, 115, -1, -1])
    days = np.array([60, 0, 0, 0, 400, 0, 0])
    # Record 4 (day 110) is inside record 0's stay, so its own 200-day stay never happens and
    # does not remove record 3 (day 130); the index offence (day 120) is kept whatever.
    keep = outside_custody(person, day, kind, sentence, days, 0.5)
    assert keep.tolist() == [True, False, False, True, False, True, True]


def test_planted_justice_ratios_follow_the_rules_and_reduce_to_the_planted_effects(config):
    from ld_spark.synth.tables_justice import planted_justice

    cfg = config.generator
    offence = cfg.processes["offence"].model_copy(update={"effect": 0.8, "effect_months": 12})
    still = cfg.model_copy(update={"court_duration_diff_days": 0.0, "processes": {**cfg.processes, "offence": offence}})
    got = planted_justice(still, 6, draws=100_000)
    # Courts no faster: the proven share is alike, so the rules leave the planted effect.
    assert got["offending_rr"] == pytest.approx(0.8)
    assert got["police_contact_rr"] == pytest.approx(0.8)
    # Custody not depending on the court: the marginal odds ratio is the planted one.
    assert got["custody_or"] == pytest.approx(cfg.custody_or)
    # Crown cases more often custodial: the marginal odds ratio moves towards 1 (non-collapsible).
    crown = still.model_copy(update={"custody_crown_log_odds": 1.5})
    assert cfg.custody_or < planted_justice(crown, 6, draws=100_000)["custody_or"] < 1
    # A faster court gets more offences proven within the wait in the treated cell only.
    assert (
        planted_justice(cfg.model_copy(update={"court_duration_diff_days": -30.0}), 6, draws=100_000)["offending_rr"]
        > 1.0
    )
