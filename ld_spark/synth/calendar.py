"""Day and month arithmetic on numpy arrays: days are int days since 1970-01-01."""

from __future__ import annotations

import numpy as np

EPOCH = np.datetime64("1970-01-01", "D")


def day(iso: str) -> int:
    return int((np.datetime64(iso, "D") - EPOCH).astype(int))


def month_of(days: np.ndarray) -> np.ndarray:
    """Calendar month number (year*12 + month-1) of each day."""
    m = (EPOCH + np.asarray(days, dtype="int64")).astype("datetime64[M]")
    return m.astype("int64") + 1970 * 12


def month_start(months: np.ndarray) -> np.ndarray:
    """First day (days since epoch) of each calendar month number."""
    m = (np.asarray(months, dtype="int64") - 1970 * 12).astype("datetime64[M]")
    return (m.astype("datetime64[D]") - EPOCH).astype("int64")


def month_length(months: np.ndarray) -> np.ndarray:
    return month_start(np.asarray(months) + 1) - month_start(months)


def iso(days: np.ndarray) -> np.ndarray:
    """ISO date strings; NaN/None stay None."""
    days = np.asarray(days, dtype="float64")
    out = np.empty(len(days), dtype=object)
    ok = ~np.isnan(days)
    out[ok] = (EPOCH + days[ok].astype("int64")).astype(str)
    out[~ok] = None
    return out


def uniq_month_id(months: np.ndarray) -> np.ndarray:
    """NHS Digital's UniqMonthID for a calendar month number (April 2018 = 1417)."""
    return np.asarray(months) - 1900 * 12 - 2
