import numpy as np
import pandas as pd

from ld_spark.synth import calendar as cal
from ld_spark.synth import identity as ident
from ld_spark.synth.keys import keys


def test_nhs_check_digit_matches_published_example():
    # 943 476 5919 is the NHS's own worked example of a valid number.
    assert ident.nhs_check_digit(np.array([[9, 4, 3, 4, 7, 6, 5, 9, 1]]))[0] == 9


def test_generated_nhs_numbers_are_ten_digits_with_valid_check_digit():
    numbers = ident.nhs_numbers(np.random.default_rng(1), 500)
    digits = np.array([[int(c) for c in n] for n in numbers])
    assert digits.shape == (500, 10)
    assert (ident.nhs_check_digit(digits[:, :9]) == digits[:, 9]).all()


def test_mistyped_nhs_number_differs_in_exactly_one_digit():
    numbers = ident.nhs_numbers(np.random.default_rng(2), 200)
    slipped = ident.mistype_digit(np.random.default_rng(3), numbers)
    diffs = [sum(a != b for a, b in zip(x, y)) for x, y in zip(numbers, slipped)]
    assert set(diffs) == {1}


def test_pnc_id_has_contract_format_and_mod23_check_letter():
    ids = ident.pnc_ids(np.random.default_rng(4), 100)
    for pnc in ids:
        year, rest = pnc.split("/")
        assert len(year) == 4 and len(rest) == 8 and rest[:7].isdigit()
        assert rest[7] == ident.PNC_CHECK[(int(year[2:]) * 10_000_000 + int(rest[:7])) % 23]


def test_postcode_sector_drops_the_unit_letters():
    sectors = ident.postcode_sector(pd.Series(["LS6 2AB", "M1 1AE", "SW20 3HQ"]))
    assert sectors.tolist() == ["LS6 2", "M1 1", "SW20 3"]


def test_dob_day_month_swap_only_where_day_is_a_valid_month():
    out = ident.dob_day_month_swap(np.array(["1980-03-07", "1980-03-25", "1980-05-05"], dtype=object))
    assert out.tolist() == ["1980-07-03", "1980-03-25", "1980-05-05"]


def test_typo_keeps_first_letter_and_changes_the_name_by_one_edit():
    names = np.array(["Jonathan", "Elizabeth", "Smith", "Ali"] * 25, dtype=object)
    out = ident.typo(np.random.default_rng(5), names)
    assert all(o[0] == n[0] for o, n in zip(out, names))
    assert all(abs(len(o) - len(n)) <= 1 for o, n in zip(out, names))
    assert (out != names).mean() > 0.9


def test_nickname_maps_known_names_and_keeps_others():
    assert ident.nickname(np.array(["William", "Zara"], dtype=object)).tolist() == ["Bill", "Zara"]


def test_calendar_months_and_uniq_month_id():
    days = np.array([cal.day("2018-04-30"), cal.day("2016-02-29"), cal.day("2016-03-01")])
    months = cal.month_of(days)
    assert cal.uniq_month_id(months).tolist() == [1417, 1391, 1392]
    assert cal.iso(cal.month_start(months)).tolist() == ["2018-04-01", "2016-02-01", "2016-03-01"]
    assert cal.month_length(months).tolist() == [30, 29, 31]


def test_record_keys_are_unique_and_do_not_repeat_across_blocks():
    all_keys = np.concatenate([keys("AE", b, np.arange(5000), 21, 12) for b in range(20)])
    assert len(set(all_keys)) == len(all_keys)
    assert all(len(k) == 12 and k.startswith("AE") for k in all_keys[:100])


def test_miscoded_sex_flips_only_the_sex_columns_on_a_stream_of_its_own():
    """Every identity table's sex is flipped at dirt.sex_miscoded, in its own coding, and no
    other value of the extract moves (the miscoding draws from a stream of its own)."""
    from ld_spark import config
    from ld_spark.synth.generate import SEX_COLUMNS, generate_block
    from ld_spark.synth.persons import site_onward_rates

    cfg = config.load("test").generator
    clean_cfg = cfg.model_copy(update={"dirt": cfg.dirt.model_copy(update={"sex_miscoded": 0.0})})
    dirty_cfg = cfg.model_copy(update={"dirt": cfg.dirt.model_copy(update={"sex_miscoded": 0.2})})
    rates = site_onward_rates(cfg, 3)
    clean, dirty = (generate_block(c, 3, 0.05, 0, rates) for c in (clean_cfg, dirty_cfg))

    assert clean.keys() == dirty.keys()
    flipped = total = 0
    for table in clean:
        column = SEX_COLUMNS.get(table)
        others = [c for c in clean[table].columns if c != column]
        pd.testing.assert_frame_equal(clean[table][others], dirty[table][others])
        if column is None:
            continue
        before, after = clean[table][column].to_numpy(), dirty[table][column].to_numpy()
        changed = before != after
        pairs = set(zip(before[changed], after[changed]))
        assert pairs <= {("M", "F"), ("F", "M"), ("1", "2"), ("2", "1")}, (table, pairs)
        flipped, total = flipped + changed.sum(), total + np.isin(before, ["M", "F", "1", "2"]).sum()
    # 20% of the ~3,300 records with a known sex: 17-23% is more than 4 SDs either side.
    assert total > 3000 and 0.17 < flipped / total < 0.23, (flipped, total)


def test_twins_share_the_previous_persons_identity_but_their_forename_and_numbers():
    from ld_spark.synth.persons import twins

    referred = np.array([False, False, False, True, True, False])
    sex = np.array(["M", "F", "M", "F", "M", "F"])
    dob = np.array([100, 200, 300, 400, 500, 600])
    forename = np.array(["James", "Mary", "John", "Emma", "Liam", "Ann"], dtype=object)
    surname = np.array(["Smith", "Jones", "Brown", "Khan", "Patel", "Lee"], dtype=object)
    postcode = np.array(["LS6 2AB", "M1 1AA", "B2 2BB", "L3 3CC", "S4 4DD", "N5 5EE"], dtype=object)
    postcode2 = np.array([None, "M2 2AA", None, None, None, None], dtype=object)
    move_day = np.array([np.nan, 900.0, np.nan, np.nan, np.nan, np.nan])
    identity = {"sex": sex, "dob": dob, "forename": forename, "surname": surname}
    identity |= {"postcode": postcode, "postcode2": postcode2, "move_day": move_day}
    got = twins(1.0, np.random.default_rng(1), referred, identity)
    sex2, dob2, forename2, surname2 = got["sex"], got["dob"], got["forename"], got["surname"]
    postcode_2, postcode2_2, move_day2 = got["postcode"], got["postcode2"], got["move_day"]
    # 1 twins 0; 2's older twin is a twin already; 3 differs from 2 in being referred; 4 twins 3;
    # 5 differs from 4 in being referred.
    assert list(dob2) == [100, 100, 300, 400, 400, 600]
    assert list(sex2) == ["M", "M", "M", "F", "F", "F"]
    assert list(surname2) == ["Smith", "Smith", "Brown", "Khan", "Khan", "Lee"]
    assert list(postcode_2) == ["LS6 2AB", "LS6 2AB", "B2 2BB", "L3 3CC", "L3 3CC", "N5 5EE"]
    assert list(postcode2_2) == [None, None, None, None, None, None] and np.isnan(move_day2[1])
    assert forename2[1] in ident.MALE_FORENAMES and forename2[1] != "James"
    assert forename2[4] in ident.FEMALE_FORENAMES and forename2[4] != "Emma"
    assert [forename2[i] for i in (0, 2, 3, 5)] == ["James", "John", "Emma", "Ann"]
    assert list(dob) == [100, 200, 300, 400, 500, 600]  # the inputs are not changed


def test_generated_twins_keep_their_own_nhs_numbers_and_change_no_other_draw():
    from ld_spark import config
    from ld_spark.synth.persons import make_persons

    cfg = config.load("test").generator
    without = make_persons(cfg.model_copy(update={"twins_share": 0.0}), 3, 0.05, 0)
    made = make_persons(cfg.model_copy(update={"twins_share": 0.05}), 3, 0.05, 0)
    identity = ["sex", "dob", "forename", "surname", "postcode", "postcode2", "move_day"]
    others = [c for c in made.columns if c not in identity]
    pd.testing.assert_frame_equal(without[others], made[others])
    changed = (without["dob"] != made["dob"]).to_numpy()
    assert 25 < changed.sum() < 75  # 5% of 1,000 people, less those not eligible
    twin = np.flatnonzero(changed)
    assert (made["dob"].to_numpy()[twin] == made["dob"].to_numpy()[twin - 1]).all()
    assert (made["nhs_number"].to_numpy()[twin] != made["nhs_number"].to_numpy()[twin - 1]).all()
