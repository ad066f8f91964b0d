"""Monthly event processes around index dates: the crisis ramp and the planted effects.

A person's expected events in calendar month m for process k are
    rate_k  x  (1 + ramp_k * shape(m - e) + ramp_k * shape(m - h))  x  effect_k(m - e)
with e and h the months of their evaluation and historic index dates (terms dropped when a
person has none), and effect_k applied in the evaluation cohort only. Counts are Poisson.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ld_spark.config import GeneratorConf
from ld_spark.synth import calendar as cal
from ld_spark.synth.persons import COHORT


def ramp_shape(rel_month: np.ndarray) -> np.ndarray:
    """Crisis ramp: rises over the 12 months before index, peaks at index, fades by +11."""
    r = np.asarray(rel_month, dtype="float64")
    pre = np.where((r >= -12) & (r <= -1), ((r + 13) / 12) ** 2, 0.0)
    post = np.where((r >= 0) & (r <= 11), np.exp(-r / 2), 0.0)
    return pre + post


def offence_spike(rel_month: np.ndarray) -> np.ndarray:
    """Offending rises only in the one to two months before the index arrest."""
    r = np.asarray(rel_month)
    return ((r == -2) | (r == -1)).astype("float64")


def top_decline_months(rel_month: np.ndarray) -> np.ndarray:
    """How many months self-rated health has been falling: 1 at month -12 up to 12 at month -1,
    0 outside (so over months -12..-1 the score's mean falls linearly, by the configured slope)."""
    r = np.asarray(rel_month, dtype="float64")
    return np.where((r >= -12) & (r <= -1), r + 13, 0.0)


def effect_multiplier(rel_month: np.ndarray, effect: float, months: int) -> np.ndarray:
    r = np.asarray(rel_month)
    return np.where((r >= 0) & (r < months), effect, 1.0)


def _month_grid(cfg: GeneratorConf) -> np.ndarray:
    first = cal.month_of(np.array([cal.day(cfg.extract_start)]))[0]
    last = cal.month_of(np.array([cal.day(cfg.extract_end)]))[0]
    return np.arange(first, last + 1)


def expected_counts(
    persons: pd.DataFrame, process: str, cfg: GeneratorConf
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(months, expected counts [person x month], share of each cell due to the planted effect)."""
    proc = cfg.processes[process]
    months = _month_grid(cfg)
    rate = persons[f"rate_{process}"].to_numpy()[:, None]
    mult = np.ones((len(persons), len(months)))
    effect = np.ones_like(mult)
    for col in ("ld_index_day", "hist_index_day"):
        index_day = persons[col].to_numpy()
        has = ~np.isnan(index_day)
        index_month = np.where(has, cal.month_of(np.nan_to_num(index_day).astype("int64")), 0)
        rel = months[None, :] - index_month[:, None]
        bump = proc.ramp * ramp_shape(rel)
        if process == "offence":
            bump = bump + cfg.offence_pre_spike * offence_spike(rel)
        mult += np.where(has[:, None], bump, 0.0)
        if col == "ld_index_day":
            treated = has & (persons["role"].to_numpy() == COHORT)
            effect = np.where(treated[:, None], effect_multiplier(rel, proc.effect, proc.effect_months), 1.0)
    lam = rate * mult * effect
    induced_share = np.where(effect > 1, 1 - 1 / effect, 0.0)
    return months, lam, induced_share


def draw_events(persons: pd.DataFrame, process: str, cfg: GeneratorConf, rng: np.random.Generator) -> pd.DataFrame:
    """One row per event: the person's row position, the event day, and whether the planted
    effect caused it (drawn with the effect's share, used for referral-source codes)."""
    months, lam, induced_share = expected_counts(persons, process, cfg)
    counts = rng.poisson(lam)
    rows, cols = np.nonzero(counts)
    reps = counts[rows, cols]
    rows, cols = np.repeat(rows, reps), np.repeat(cols, reps)
    start = cal.month_start(months[cols])
    length = cal.month_length(months[cols])
    days = start + (rng.random(len(rows)) * length).astype("int64")
    induced = rng.random(len(rows)) < induced_share[rows, cols]
    order = np.lexsort((days, rows))
    return pd.DataFrame({"row": rows[order], "day": days[order], "induced": induced[order]})


def planted_rate_ratio(process: str, cfg: GeneratorConf) -> float:
    """The difference-in-differences rate ratio the generator plants for a process.

    Both cohorts share the ramp, so pre-period sums cancel; what is left is the effect's
    weight over the post months, weighted by the expected profile."""
    proc = cfg.processes[process]
    post = np.arange(0, 12)
    base = 1 + proc.ramp * ramp_shape(post)
    return float((base * effect_multiplier(post, proc.effect, proc.effect_months)).sum() / base.sum())
