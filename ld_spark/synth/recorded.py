"""How one source records a person at one event: identity with the contract's dirt applied."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ld_spark.config import DirtConf
from ld_spark.synth import calendar as cal
from ld_spark.synth import identity as ident

BAD_DATES = np.array(["2017-02-30", "31/12/2016", "unknown", "2017-13-01", "20170405", "0000-00-00"], dtype=object)
BAD_CODES = np.array(["X", "99Z", "?", "NULL", "-1"], dtype=object)


def _apply(mask: np.ndarray, values: np.ndarray, changed: np.ndarray) -> np.ndarray:
    return np.where(mask, changed, values)


def names(
    rng: np.random.Generator, forename: np.ndarray, surname: np.ndarray, dirt: DirtConf
) -> tuple[np.ndarray, np.ndarray]:
    n = len(forename)
    fore, sur = forename.astype(object).copy(), surname.astype(object).copy()
    nick = rng.random(n) < dirt.nickname
    fore = _apply(nick, fore, ident.nickname(fore))
    typo_f = rng.random(n) < dirt.name_typo
    typo_s = rng.random(n) < dirt.name_typo
    fore = _apply(typo_f, fore, ident.typo(rng, fore))
    sur = _apply(typo_s, sur, ident.typo(rng, sur))
    var_f = rng.random(n) < dirt.name_variant
    var_s = rng.random(n) < dirt.name_variant
    fore = _apply(var_f, fore, ident.variant(rng, fore))
    sur = _apply(var_s, sur, ident.variant(rng, sur))
    swap = rng.random(n) < dirt.name_swap
    return np.where(swap, sur, fore), np.where(swap, fore, sur)


def dob(rng: np.random.Generator, dob_days: np.ndarray, dirt: DirtConf) -> np.ndarray:
    n = len(dob_days)
    out = cal.iso(dob_days)
    swap = rng.random(n) < dirt.dob_day_month_swap
    out = _apply(swap, out, ident.dob_day_month_swap(out))
    slip = rng.random(n) < dirt.dob_digit_slip
    out = _apply(slip, out, ident.dob_digit_slip(rng, out))
    placeholder = rng.random(n) < dirt.dob_placeholder
    return _apply(placeholder, out, np.array(ident.PLACEHOLDER_DOBS, dtype=object)[rng.integers(0, 2, size=n)])


def postcode(rng: np.random.Generator, p: pd.DataFrame, days: np.ndarray, dirt: DirtConf) -> np.ndarray:
    """The postcode at the event date (people who moved use the new one after the move)."""
    n = len(p)
    moved = ~np.isnan(p["move_day"].to_numpy()) & (days >= np.nan_to_num(p["move_day"].to_numpy(), nan=np.inf))
    out = np.where(moved, p["postcode2"].to_numpy(), p["postcode"].to_numpy()).astype(object)
    out = ident.postcode_format(rng, out, dirt.postcode_lower, dirt.postcode_nospace)
    nfa = rng.random(n) < dirt.postcode_nfa
    zz = rng.random(n) < dirt.postcode_zz99
    out = _apply(nfa, out, np.full(n, ident.NFA_POSTCODES[0], dtype=object))
    return _apply(zz, out, np.full(n, ident.NFA_POSTCODES[1], dtype=object))


def nhs_number(rng: np.random.Generator, p: pd.DataFrame, missing: float, dirt: DirtConf) -> np.ndarray:
    n = len(p)
    out = p["nhs_recorded"].to_numpy().astype(object)
    out = _apply(rng.random(n) < dirt.nhs_mistyped, out, ident.mistype_digit(rng, out))
    return _apply(rng.random(n) < missing, out, np.full(n, None, dtype=object))


def blank(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    return _apply(rng.random(len(values)) < rate, values.astype(object), np.full(len(values), None, dtype=object))


def bad_dates(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Replace a share of (non-blank) date strings with unparseable ones."""
    hit = (rng.random(len(values)) < rate) & pd.notna(values)
    return _apply(hit, values, BAD_DATES[rng.integers(0, len(BAD_DATES), size=len(values))])


def bad_codes(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    hit = (rng.random(len(values)) < rate) & pd.notna(values)
    return _apply(hit, values, BAD_CODES[rng.integers(0, len(BAD_CODES), size=len(values))])


SEX_FLIP = {"M": "F", "F": "M", "1": "2", "2": "1"}


def miscode_sex(
    rng: np.random.Generator, values: np.ndarray, rate: float, copies: np.ndarray | None = None
) -> np.ndarray:
    """Recorded sex flipped to the other sex at `rate` (a keying slip), in either coding;
    unknown codes stay as they are. copies: a label per row, equal for exact copies of a row
    (duplicate_rows' resubmissions), which keep the first copy's sex: a resubmission is exact,
    or the contract would call it a key reused with different content."""
    flip = rng.random(len(values)) < rate
    if copies is not None:
        flip = pd.Series(flip).groupby(copies, sort=False).transform("first").to_numpy()
    return np.array([SEX_FLIP.get(v, v) if f else v for v, f in zip(values, flip)], dtype=object)


def sex_code(sex: np.ndarray, coding: str) -> np.ndarray:
    """M/F in a source's own coding: 'MF' keeps letters, '129' is the NHS 1 male / 2 female."""
    if coding == "129":
        return np.where(sex == "M", "1", "2").astype(object)
    return sex.astype(object)


def duplicate_rows(rng: np.random.Generator, table: pd.DataFrame, rate: float) -> pd.DataFrame:
    """Exact resubmissions: a share of rows appear twice."""
    dup = rng.random(len(table)) < rate
    if not dup.any():
        return table
    return pd.concat([table, table[dup]], ignore_index=True)
