"""The generator's court records as real extracts hold them (conf/shape_realistic.yaml), read back
by the job's own rules: a case sent on to the Crown Court is two records that the job joins again
into the one case whose days and hearings the planted values describe."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from ld_spark.justice import case_offences, committals, through_committals
from ld_spark.synth import calendar as cal
from ld_spark.synth.tables_justice import committal_split, court_charge_dates, with_committals

END = "2019-06-30"
# Four charged offences' cases, unsplit, with the days of their hearings (the last at completion):
# CS0 a Crown case that ends before END; CS1 a Crown case whose committal would fall after END;
# CS2 a magistrates' case; CS3 a Crown case committed before END and not yet heard there.
HEARING_DAYS = {
    0: ["2018-01-05", "2018-02-01", "2018-03-15", "2018-09-20"],
    1: ["2019-06-01", "2019-07-05", "2019-08-20"],
    2: ["2018-05-01", "2018-05-30"],
    3: ["2019-05-02", "2019-06-20", "2019-09-01"],
}
CASE_IDS = np.array(["CS0", "CS1", "CS2", "CS3"], dtype=object)


def _days(isos) -> np.ndarray:
    return np.array([cal.day(d) for d in isos], dtype="int64")


def _unsplit_cases() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": CASE_IDS,
            "source_system": ["XHIBIT", "XHIBIT", "LIBRA", "XHIBIT"],
            "court_code": ["C011", "C022", "B033", "C044"],
            "defendant_forename": ["ANN", "BEN", "CAL", "DOT"],
            "defendant_surname": ["ASH", "BAY", "COX", "DEE"],
            "defendant_dob": ["1980-01-01", "1981-02-02", "1982-03-03", "1983-04-04"],
            "defendant_sex": ["F", "M", "M", "F"],
            "defendant_postcode": ["AB1 2CD", "AB1 2CE", "AB1 2CF", "AB1 2CG"],
            "pnc_id": [None] * 4,
            "offence_date": ["2017-12-01", "2019-05-01", "2018-04-01", "2019-04-01"],
            "charge_date": ["2017-12-20", "2019-05-20", "2018-04-20", "2019-04-20"],
            "first_hearing_date": ["2018-01-05", "2019-06-01", "2018-05-01", "2019-05-02"],
            "completion_date": ["2018-09-20", None, "2018-05-30", None],
            "case_outcome": ["convicted", None, "withdrawn", None],
            "sentence_date": ["2018-09-20", None, None, None],
        }
    )


def _unsplit_hearings() -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """Every hearing's case and day, the hearings held by END as records, and which those are."""
    h_case = np.array([c for c, days in HEARING_DAYS.items() for _ in days])
    h_day = _days([d for days in HEARING_DAYS.values() for d in days])
    observed = h_day <= cal.day(END)
    hearings = pd.DataFrame(
        {
            "hearing_id": [f"HR{i}" for i in range(len(h_case))],
            "case_id": CASE_IDS[h_case],
            "hearing_date": cal.iso(h_day),
        }
    )
    return h_case, h_day, hearings[observed].reset_index(drop=True), observed


def test_a_sent_case_is_cut_after_one_of_its_hearings_but_the_last_and_unsent_ones_are_not():
    h_case, h_day, _, _ = _unsplit_hearings()
    sent = np.array([True, True, False, False])
    cuts = set()
    for seed in range(30):
        at_magistrates, committal_day, crown_first_day = committal_split(
            np.random.default_rng(seed), h_case, h_day, sent
        )
        days = h_day[h_case == 0]
        cut = int(at_magistrates[h_case == 0].sum())
        cuts.add(cut)
        # A prefix of case 0's hearings, never all of them: the Crown Court hears the rest.
        assert list(at_magistrates[h_case == 0]) == [True] * cut + [False] * (4 - cut)
        assert (committal_day[0], crown_first_day[0]) == (days[cut - 1], days[cut])
        assert not at_magistrates[h_case >= 2].any() and list(committal_day[2:]) == [-1, -1]
    assert cuts == {1, 2, 3}
    # A case with one hearing cannot be cut: it is not sent.
    at_magistrates, committal_day, _ = committal_split(
        np.random.default_rng(0), np.array([0]), _days(["2018-01-05"]), np.array([True])
    )
    assert not at_magistrates.any() and committal_day[0] == -1


def _split(config):
    """The four cases with CS0, CS1 and CS3 sent on after their second hearing."""
    cfg = config.generator.model_copy(update={"extract_end": END})
    h_case, h_day, hearings, observed = _unsplit_hearings()
    persons = pd.DataFrame(
        {"forename": ["ANN", "BEN", "CAL", "DOT"], "surname": ["ASH", "BAY", "COX", "DEE"], "dob": np.zeros(4, int)}
    )
    sent = np.array([True, True, False, True])
    second = np.array([(h_case == c).nonzero()[0][1] for c in range(4)])
    committal_day = np.where(sent, h_day[second], -1)
    crown_first_day = np.where(sent, h_day[second + 1], -1)
    at_magistrates = sent[h_case] & (np.arange(len(h_case)) <= second[h_case])
    cases, hearing_case = with_committals(
        np.random.default_rng(1),
        _unsplit_cases(),
        persons,
        hearings["case_id"].to_numpy(),
        at_magistrates[observed],
        sent,
        committal_day,
        crown_first_day,
        cfg,
        block=0,
    )
    return cases, hearings.assign(case_id=hearing_case)


def test_a_case_sent_on_is_a_committed_magistrates_record_and_a_crown_record_until_the_end(config):
    cases, hearings = _split(config)
    legs = cases[~cases["case_id"].isin(CASE_IDS)].set_index("court_code")
    by_id = cases.set_index("case_id")
    # CS0 and CS3 were committed by the end: a LIBRA record each, completed on the committal day.
    assert len(cases) == 6 and sorted(legs.index) == ["B011", "B044"]
    assert list(legs["source_system"].unique()) == ["LIBRA"] and list(legs["case_outcome"].unique()) == ["committed"]
    assert list(legs["completion_date"]) == ["2018-02-01", "2019-06-20"] and legs["sentence_date"].isna().all()
    assert list(legs["first_hearing_date"]) == ["2018-01-05", "2019-05-02"]
    assert list(legs["offence_date"]) == ["2017-12-01", "2019-04-01"]
    assert list(legs["charge_date"]) == ["2017-12-20", "2019-04-20"]
    # The Crown records: first heard on or after the committal day.
    assert by_id.loc["CS0", ["source_system", "first_hearing_date", "completion_date"]].tolist() == [
        "XHIBIT",
        "2018-03-15",
        "2018-09-20",
    ]
    # CS3's Crown hearing is listed for after the end: its record has that date all the same.
    assert by_id.loc["CS3", ["source_system", "first_hearing_date"]].tolist() == ["XHIBIT", "2019-09-01"]
    # CS1's committal falls after the end: it is one open magistrates' case.
    assert by_id.loc["CS1", ["source_system", "court_code", "first_hearing_date"]].tolist() == [
        "LIBRA",
        "B022",
        "2019-06-01",
    ]
    assert pd.isna(by_id.loc["CS1", "completion_date"])
    # Each hearing belongs to the court that held it.
    leg_ids = dict(zip(legs.index, legs["case_id"]))
    assert hearings["case_id"].tolist() == [
        leg_ids["B011"],
        leg_ids["B011"],
        "CS0",
        "CS0",
        "CS1",
        "CS2",
        "CS2",
        leg_ids["B044"],
        leg_ids["B044"],
    ]


def test_the_jobs_rules_join_a_case_sent_on_back_into_the_case_before_the_split(spark, config):
    cases, hearings = _split(config)
    dates = ["offence_date", "charge_date", "first_hearing_date", "completion_date", "sentence_date"]
    people = dict(zip(CASE_IDS, ["p0", "p1", "p2", "p3"]))
    legs = cases[~cases["case_id"].isin(CASE_IDS)]
    people.update(zip(legs["case_id"], legs["court_code"].map({"B011": "p0", "B044": "p3"})))

    def date(value):
        return None if value is None or pd.isna(value) else dt.date.fromisoformat(value)

    rows = [
        (r.case_id, people[r.case_id], r.source_system, *[date(getattr(r, d)) for d in dates], r.case_outcome)
        for r in cases.itertuples()
    ]
    sp_cases = spark.createDataFrame(
        rows,
        "case_id string, person_key string, source_system string, offence_date date, charge_date date, "
        "first_hearing_date date, completion_date date, sentence_date date, case_outcome string",
    )
    unsplit = _unsplit_cases()
    offences = spark.createDataFrame(
        [
            (people[c], f"OF{c}", date(o), date(o), date(ch))
            for c, o, ch in zip(unsplit["case_id"], unsplit["offence_date"], unsplit["charge_date"])
        ],
        "person_key string, offence_id string, offence_date date, arrest_date date, charge_date date",
    )
    no_index = spark.createDataFrame([], "person_key string, offence_id string")
    sp_hearings = spark.createDataFrame(
        [(r.hearing_id, r.case_id, date(r.hearing_date)) for r in hearings.itertuples()],
        "hearing_id string, case_id string, hearing_date date",
    )
    found = committals(sp_cases, case_offences(sp_cases, offences, no_index, 7))
    merged, merged_hearings = through_committals(sp_cases, sp_hearings, found)

    got = {r.case_id: (r.first_hearing_date, r.completion_date, r.case_outcome) for r in merged.collect()}
    assert got == {
        r.case_id: (date(r.first_hearing_date), date(r.completion_date), r.case_outcome) for r in unsplit.itertuples()
    }
    _, _, held, _ = _unsplit_hearings()
    heard = merged_hearings.groupBy("case_id").agg(F.sort_array(F.collect_list("hearing_id")).alias("ids"))
    assert {r.case_id: r.ids for r in heard.collect()} == {
        c: sorted(g["hearing_id"]) for c, g in held.groupby("case_id")
    }


def test_court_charge_dates_are_blank_for_summonses_and_days_off_for_slips_only_at_their_shares(config):
    n = 20_000
    charge_day = np.full(n, cal.day("2018-04-20"))
    crown = np.arange(n) % 4 == 0
    cfg = config.generator.model_copy(update={"summons_share": 0.15, "court_charge_slip_share": 0.05})
    got = court_charge_dates(np.random.default_rng(3), charge_day, crown, cfg)
    blank = pd.isna(got)
    assert not blank[crown].any()  # a Crown case is always charged in the court record
    assert abs(blank[~crown].mean() - 0.15) < 0.015
    off = np.array([cal.day(d) for d in got[~blank]]) - cal.day("2018-04-20")
    assert set(np.unique(off)) == {-3, -2, -1, 0, 1, 2, 3}
    assert abs((off != 0).mean() - 0.05) < 0.01
    plain = court_charge_dates(np.random.default_rng(3), charge_day, crown, config.generator)
    assert list(plain) == ["2018-04-20"] * n


def test_build_justice_sends_crown_cases_on_and_folded_back_they_are_the_extract_without_committals():
    from ld_spark import config as config_module
    from ld_spark.synth.generate import FAMILIES
    from ld_spark.synth.persons import block_rng, make_persons
    from ld_spark.synth.tables_justice import build_justice

    shape = config_module.load("test", "shape_realistic").generator
    plain_cfg = shape.model_copy(update={"committal_share": 0.0, "summons_share": 0.0, "court_charge_slip_share": 0.0})
    sent_cfg = plain_cfg.model_copy(update={"committal_share": 1.0})
    persons = make_persons(plain_cfg, 5, 1.0, 2)

    def built(cfg):
        tables, truth = build_justice(persons, cfg, block_rng(5, 2, FAMILIES["justice"]), 2)
        person = truth[truth["source_table"] == "hmcts.cases"].set_index("record_key")["person_id"]
        cases, hearings = (tables[t].drop_duplicates() for t in ("hmcts/cases", "hmcts/hearings"))
        return tables["pnc/offences"].drop_duplicates(), cases.assign(person=cases["case_id"].map(person)), hearings

    offences0, cases0, hearings0 = built(plain_cfg)
    offences1, cases1, hearings1 = built(sent_cfg)
    # Nothing else moves: the PNC, and every hearing but for which record holds it.
    pd.testing.assert_frame_equal(offences0.reset_index(drop=True), offences1.reset_index(drop=True))
    assert hearings1.drop(columns="case_id").equals(hearings0.drop(columns="case_id"))
    assert cases1["case_id"].is_unique and cases1["person"].notna().all()

    # Each committed magistrates' record is its person's, with its Crown record's offence and charge.
    legs = cases1[~cases1["case_id"].isin(cases0["case_id"])]
    assert len(legs) > 20 and set(legs["case_outcome"]) == {"committed"} and set(legs["source_system"]) == {"LIBRA"}
    twin_key = ["person", "offence_date", "charge_date"]
    crown = cases1[cases1["case_id"].isin(cases0["case_id"]) & (cases1["source_system"] == "XHIBIT")]
    twins = legs.merge(crown, on=twin_key, suffixes=("", "_crown"), validate="one_to_one")
    assert len(twins) == len(legs)

    # Folded back (the Crown record with the magistrates' first listing and both records'
    # hearings), they are the cases without committals; cases still waiting to be sent at the
    # end are the same cases, at the magistrates' court.
    crown_of = dict(zip(twins["case_id"], twins["case_id_crown"]))
    first_of = dict(zip(twins["case_id_crown"], twins["first_hearing_date"]))
    folded = cases1[~cases1["case_id"].isin(legs["case_id"])].copy()
    folded["first_hearing_date"] = folded["case_id"].map(first_of).fillna(folded["first_hearing_date"])
    folded = folded.set_index("case_id").sort_index()
    plain = cases0.set_index("case_id").sort_index()
    waiting = (plain["source_system"] == "XHIBIT") & (folded["source_system"] == "LIBRA")
    assert (
        folded[waiting]["completion_date"].isna().all()
        and (plain[waiting]["court_code"].str[1:] == folded[waiting]["court_code"].str[1:]).all()
    )
    moved = ["source_system", "court_code"]
    pd.testing.assert_frame_equal(folded.drop(columns=moved), plain.drop(columns=moved))
    assert (folded[~waiting][moved] == plain[~waiting][moved]).all().all()
    held = dict(zip(hearings1["hearing_id"], hearings1["case_id"].map(lambda c: crown_of.get(c, c))))
    assert held == dict(zip(hearings0["hearing_id"], hearings0["case_id"]))
