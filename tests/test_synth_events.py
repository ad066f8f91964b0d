import numpy as np
import pandas as pd
import pytest

from ld_spark.synth import calendar as cal
from ld_spark.synth.events import draw_events, planted_rate_ratio, ramp_shape
from ld_spark.synth.persons import COHORT, GENERAL


def test_ramp_rises_before_index_peaks_at_index_and_is_zero_outside_window():
    shape = ramp_shape(np.arange(-14, 14))
    pre = shape[2:14]  # -12..-1
    assert np.all(np.diff(pre) > 0)
    assert shape[14] == pytest.approx(1.0)  # index month
    assert shape[0] == shape[1] == 0.0 and shape[-2] == shape[-1] == 0.0


def test_planted_ratio_is_one_without_effect_and_the_effect_when_it_lasts_all_year(config):
    gen = config.generator
    assert planted_rate_ratio("ae", gen) == pytest.approx(1.0)
    procs = dict(gen.processes)
    procs["ae"] = procs["ae"].model_copy(update={"effect": 1.5, "effect_months": 12})
    assert planted_rate_ratio("ae", gen.model_copy(update={"processes": procs})) == pytest.approx(1.5)


def _people(role, ld_index, hist_index, rate):
    return pd.DataFrame(
        {
            "role": role,
            "ld_index_day": ld_index,
            "hist_index_day": hist_index,
            "rate_ae": rate,
        }
    )


def test_events_follow_the_ramp_and_a_person_with_zero_rate_has_none(config):
    n = 4000
    index = float(cal.day("2017-06-15"))
    people = _people(
        np.r_[np.full(n, COHORT), GENERAL],
        np.r_[np.full(n, index), np.nan],
        np.full(n + 1, np.nan),
        np.r_[np.full(n, 0.05), 0.0],
    )
    events = draw_events(people, "ae", config.generator, np.random.default_rng(1))
    assert not (events["row"] == n).any()
    rel = cal.month_of(events["day"].to_numpy()) - cal.month_of(np.array([int(index)]))[0]
    late_pre = ((rel >= -3) & (rel <= -1)).sum() / 3
    early = ((rel >= -24) & (rel <= -13)).sum() / 12
    # Expected ratio from the ramp: 1 + 1.6 * mean(shape(-3..-1)) ~ 2.3
    assert 2.0 < late_pre / early < 2.6
    assert (events["day"] >= cal.day("2011-01-01")).all() and (events["day"] <= cal.day("2019-12-31")).all()
