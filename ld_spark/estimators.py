"""Difference-in-differences estimators on small pandas frames collected from Spark.

The evaluation cohort and the historic control are largely the same people, and each person
contributes a pre and a post period, so every model clusters its standard errors by person
(cluster-robust sandwich on a GLM/OLS fit: a GEE with independence working correlation).

Every estimator takes a frame with columns `person` (cluster id), `evaluation` (1 for the
evaluation cohort, 0 for the historic control), `post` (1 for months 0..+11, 0 for -12..-1) and
its outcome, and returns an Estimate of the cohort x period interaction.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

Z = 1.959963984540054  # the 97.5% normal quantile


@dataclass(frozen=True)
class Estimate:
    estimand: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int
    method: str
    # What disclosure control needs: people behind the fit, and its residual degrees of freedom
    # for inference (clusters - 1 with person-clustered SEs, at most the model's own).
    people: int | None = None
    df_resid: int | None = None
    summarised_values: int | None = None  # values behind a mean or median the estimate rests on
    # How concentrated those values are, per cohort x period cell (concentration()).
    top_share: float | None = None
    p_ratio: float | None = None
    # The smallest non-zero count (events, people with events, outcomes either way) in a cell the
    # estimate is an exact function of: a saturated ratio reveals the cells it is made of.
    smallest_cell: int | None = None
    # A percentage of events (not of people): the count it is k of n, so disclosure control can
    # recompute it from the rounded counts.
    share_k: int | None = None
    test_df: int | None = None  # a chi-square test's degrees of freedom (disclosure control rounds it)

    def row(self) -> dict:
        return asdict(self)


def concentration(cells) -> dict[str, float | None]:
    """How far a few values dominate the means an estimate rests on (for disclosure control).

    cells: arrays of non-negative values, one per mean. top_share: the largest share of a cell's
    total that its two largest values hold; p_ratio: the smallest (total - two largest) / largest.
    A cell of all zeros dominates nothing.
    """
    top_share, p_ratio = None, None
    for values in cells:
        v = np.sort(np.abs(np.asarray(values, float)))[::-1]
        total = v.sum()
        if total <= 0:
            continue
        share, rest = v[:2].sum() / total, (total - v[:2].sum()) / v[0]
        top_share = share if top_share is None else max(top_share, share)
        p_ratio = rest if p_ratio is None else min(p_ratio, rest)
    return {"top_share": top_share, "p_ratio": p_ratio}


COHORT_PERIOD = ["evaluation", "post"]


def _cells(df: pd.DataFrame, column: str, cap: float | None = None) -> list[np.ndarray]:
    values = df[column].to_numpy(float)
    if cap is not None:
        values = np.minimum(values, cap)
    return [values[rows] for rows in df.groupby(COHORT_PERIOD).indices.values()]


def _smallest_cell(df: pd.DataFrame) -> int:
    """The fewest values behind any of the four cohort x period means."""
    return int(df.groupby(COHORT_PERIOD).size().min())


def smallest_count(df: pd.DataFrame, by: list[str], *columns: str) -> int | None:
    """The smallest non-zero count in the cells of `by`: for each of `columns`, its sum and the
    number of people with a non-zero value. None when every count is zero."""
    counts = []
    for column in columns:
        counts += list(df.groupby(by)[column].sum().to_numpy())
        counts += list(df[df[column] > 0].groupby(by)["person"].nunique().to_numpy())
    return min((int(v) for v in counts if v > 0), default=None)


def did_design(df: pd.DataFrame) -> np.ndarray:
    """Columns: intercept, evaluation, post, evaluation x post (the DiD term, last)."""
    e, p = df["evaluation"].to_numpy(float), df["post"].to_numpy(float)
    return np.column_stack([np.ones(len(df)), e, p, e * p])


def _clusters(df: pd.DataFrame) -> np.ndarray:
    return pd.factorize(df["person"])[0]


def _empty_cell(df: pd.DataFrame, column: str) -> bool:
    """True when a cohort x period cell has no data or (for counts) no events: no finite estimate."""
    cells = df.groupby(COHORT_PERIOD)[column].agg(["size", "sum"])
    return len(cells) < 4 or bool((cells["size"] == 0).any())


UNOBSERVED_CELL = "a cohort x period cell has no month its source covers"


def _withheld(estimand: str, n: int, method: str, why: str) -> Estimate:
    return Estimate(estimand, None, None, None, None, n, f"{method}; not estimable: {why}")


def _sizes(df: pd.DataFrame, result) -> dict:
    people = int(df["person"].nunique())
    return {"people": people, "df_resid": int(min(result.df_resid, people - 1))}


def _interaction(result, exponentiate: bool) -> tuple[float, float, float, float]:
    b, se, p = float(result.params[-1]), float(result.bse[-1]), float(result.pvalues[-1])
    low, high = b - Z * se, b + Z * se
    if exponentiate:
        return float(np.exp(b)), float(np.exp(low)), float(np.exp(high)), p
    return b, low, high, p


def cells_optimum(y: np.ndarray, X: np.ndarray, exposure: np.ndarray, cells: np.ndarray) -> np.ndarray | None:
    """The maximum-likelihood parameters of a Poisson GLM (log link, log-exposure offset), fitted
    on the sums of y and exposure per cell: `cells` numbers the rows, rows in one cell having the
    same design row. The Poisson likelihood depends on the rows only through those sums, so this
    is the rows' own optimum, from a few dozen rows instead of hundreds of thousands. None when
    that fit does not converge (a parameter without a finite optimum)."""
    import statsmodels.api as sm

    first = np.unique(cells, return_index=True)[1]
    with warnings.catch_warnings():  # a saturated design fits its cells exactly, and says so
        warnings.simplefilter("ignore")
        fit = sm.GLM(
            np.bincount(cells, y),
            X[first],
            family=sm.families.Poisson(),
            exposure=np.bincount(cells, exposure),
        ).fit()
    return np.asarray(fit.params) if fit.converged else None


def poisson_clustered(y: np.ndarray, X: np.ndarray, exposure: np.ndarray, groups: np.ndarray, start: np.ndarray | None):
    """A Poisson GLM with a log-exposure offset and the person-clustered sandwich (statsmodels),
    started at its optimum (cells_optimum or a closed form): Newton's method then confirms it in
    one step, where IRLS from zero would refit the whole design matrix six or seven times.
    Without a start, or where Newton does not settle in a few steps or leaves a standard error
    that is not finite (a parameter without a finite optimum), IRLS fits it, as it always did."""
    import statsmodels.api as sm

    model = sm.GLM(y, X, family=sm.families.Poisson(), exposure=exposure)
    clustered = {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
    if start is not None:
        with warnings.catch_warnings():  # a Newton that does not converge is refitted below
            warnings.simplefilter("ignore")
            result = model.fit(start_params=start, method="newton", maxiter=10, disp=0, **clustered)
        if result.mle_retvals.get("converged") and np.isfinite(result.bse).all():
            return result
    return model.fit(**clustered)


def count_did(estimand: str, df: pd.DataFrame, outcome: str, exposure: str = "months") -> Estimate:
    """Rate ratio: Poisson GLM, log-exposure offset, person-clustered SE; exp(interaction).
    Rows without exposure (months the outcome's source did not cover) are left out.

    With the saturated cohort x period design the point estimate is exactly
    (post/pre in the evaluation cohort) / (post/pre in the historic control) of event rates.
    """
    import statsmodels.api as sm

    method = "Poisson GLM DiD (cohort x period), log exposure offset, person-clustered SE"
    cells = df.groupby(COHORT_PERIOD).ngroups
    df = df[df[exposure] > 0]  # rows the outcome is not observed in (its source had not begun)
    n = int(df["person"].nunique())
    if df.groupby(COHORT_PERIOD).ngroups < cells:
        return _withheld(estimand, n, method, UNOBSERVED_CELL)
    sums = df.groupby(COHORT_PERIOD)[outcome].sum()
    if _empty_cell(df, outcome) or (sums == 0).any():
        return _withheld(estimand, n, method, "a cohort x period cell has no events")
    model = sm.GLM(
        df[outcome].to_numpy(float), did_design(df), family=sm.families.Poisson(), exposure=df[exposure].to_numpy(float)
    )
    result = model.fit(cov_type="cluster", cov_kwds={"groups": _clusters(df)})
    return Estimate(
        estimand,
        *_interaction(result, exponentiate=True),
        n=n,
        method=method,
        **_sizes(df, result),
        smallest_cell=smallest_count(df, COHORT_PERIOD, outcome),
    )


def count_did_months(estimand: str, df: pd.DataFrame, outcome: str, exposure: str = "at_risk") -> Estimate:
    """Rate ratio with a shared month profile: Poisson GLM of person-month counts on cohort,
    one effect per month relative to the index, and evaluation x post; log exposure offset,
    person-clustered SE; exp(interaction).

    df: person, evaluation, post, rel_month, the outcome and the exposure (months at risk). Rows
    with no time at risk carry no information and are dropped. Where both cohorts are observed
    in every month this is the pooled DiD; where a cohort's months are missing by design (the
    historic control cannot have an arrest charged in its charge window before its index) the
    month profile comes from the months both share, so a pre-index rise that only one cohort's
    observed months contain cannot masquerade as an effect.
    """
    method = (
        "Poisson GLM DiD (cohort + month relative to index + evaluation x post), log months-at-risk "
        "offset, person-clustered SE"
    )
    df = df[df[exposure] > 0]
    n = int(df["person"].nunique())
    sums = df.groupby(COHORT_PERIOD)[outcome].sum()
    if _empty_cell(df, outcome) or (sums == 0).any():
        return _withheld(estimand, n, method, "a cohort x period cell has no events")
    # A month with no event in either cohort has no finite profile: leave it out.
    months = df.groupby("rel_month")[outcome].sum()
    df = df[df["rel_month"].isin(months[months > 0].index)]
    levels = sorted(pd.unique(df["rel_month"]))
    e, post = df["evaluation"].to_numpy(float), df["post"].to_numpy(float)
    dummies = np.column_stack([(df["rel_month"] == m).to_numpy(float) for m in levels])
    X = np.column_stack([dummies, e, e * post])
    if np.linalg.matrix_rank(X.T @ X) < X.shape[1]:
        return _withheld(
            estimand, n, method, "the cohorts share too few months to tell the effect from the month profile"
        )
    y, offset = df[outcome].to_numpy(float), df[exposure].to_numpy(float)
    cells = df.groupby(["rel_month", "evaluation", "post"], sort=False).ngroup().to_numpy()
    result = poisson_clustered(y, X, offset, _clusters(df), cells_optimum(y, X, offset, cells))
    return Estimate(
        estimand,
        *_interaction(result, exponentiate=True),
        n=n,
        method=method,
        **_sizes(df, result),
        smallest_cell=smallest_count(df, COHORT_PERIOD, outcome),
    )


def binary_did(estimand: str, df: pd.DataFrame, outcome: str) -> Estimate:
    """Odds ratio: logistic GLM, person-clustered SE; exp(interaction)."""
    import statsmodels.api as sm

    method = "logistic GLM DiD (cohort x period) on sentenced offences, person-clustered SE"
    n = len(df)
    cells = df.groupby(COHORT_PERIOD)[outcome].agg(["size", "sum"])
    if len(cells) < 4 or ((cells["sum"] == 0) | (cells["sum"] == cells["size"])).any():
        return _withheld(estimand, n, method, "a cohort x period cell is all one outcome")
    model = sm.GLM(df[outcome].to_numpy(float), did_design(df), family=sm.families.Binomial())
    result = model.fit(cov_type="cluster", cov_kwds={"groups": _clusters(df)})
    either_way = df.assign(_other=1 - df[outcome])
    return Estimate(
        estimand,
        *_interaction(result, exponentiate=True),
        n=n,
        method=method,
        **_sizes(df, result),
        smallest_cell=smallest_count(either_way, COHORT_PERIOD, outcome, "_other"),
    )


def linear_did(estimand: str, df: pd.DataFrame, outcome: str, log: bool = False) -> Estimate:
    """Difference in means (or, with log, ratio of geometric means): OLS, person-clustered SE."""
    import statsmodels.api as sm

    method = (
        "OLS DiD on log(value), ratio of geometric means" if log else "OLS DiD, difference in days"
    ) + " (cohort x period), person-clustered SE"
    df = df[df[outcome].notna() & ((df[outcome] > 0) if log else True)]
    n = len(df)
    if _empty_cell(df, outcome) or df.groupby(COHORT_PERIOD).size().min() < 2:
        return _withheld(estimand, n, method, "a cohort x period cell has fewer than 2 values")
    y = df[outcome].to_numpy(float)
    result = sm.OLS(np.log(y) if log else y, did_design(df)).fit(cov_type="cluster", cov_kwds={"groups": _clusters(df)})
    return Estimate(
        estimand,
        *_interaction(result, exponentiate=log),
        n=n,
        method=method,
        **_sizes(df, result),
        summarised_values=_smallest_cell(df),
        **concentration(_cells(df, outcome)),
    )


def _saturated_optimum(
    df: pd.DataFrame, outcome: str, levels: list, reference: str, exposure: str = "months"
) -> np.ndarray | None:
    """The event study's maximum-likelihood parameters in closed form, or None (some cell empty).

    The model is saturated in cohort x level, so its fitted rate in each cell is the cell's own
    events / months: intercept and cohort from the reference cells, then per level its difference
    from the reference (control) and the extra difference in the evaluation cohort. Newton started
    here confirms it in one step (the sandwich comes from the fit), instead of iterating towards it.
    """
    cells = df.groupby(["evaluation", "level"])[[outcome, exposure]].sum()
    wanted = pd.MultiIndex.from_product([[0, 1], [reference, *levels]])
    if not wanted.isin(cells.index).all() or (cells.loc[wanted, outcome] <= 0).any():
        return None
    log_rate = np.log(cells[outcome] / cells[exposure])
    control, evaluation = log_rate.loc[0], log_rate.loc[1]
    c = np.array([control[lvl] - control[reference] for lvl in levels])
    d = np.array([evaluation[lvl] - evaluation[reference] for lvl in levels]) - c
    return np.concatenate([[control[reference], evaluation[reference] - control[reference]], c, d])


def event_study(df: pd.DataFrame, outcome: str, reference: str = "ref", exposure: str = "months") -> pd.DataFrame:
    """A DiD rate ratio per month against a pooled reference window, with 95% CIs.

    df: person, evaluation, level (month label or `reference`), the exposure (months; rows
    without any, where the outcome's source had not begun, are left out), outcome.
    Returns level, rr, ci_low, ci_high (one row per non-reference level), and the fit's people
    and residual df (for disclosure control).
    """
    levels = [lvl for lvl in pd.unique(df["level"]) if lvl != reference]
    df = df[df[exposure] > 0]
    # A month one cohort is not observed in (its source began within the series) has no ratio;
    # the other months are fitted without it.
    cohorts = df.groupby("level")["evaluation"].nunique()
    shared = [lvl for lvl in levels if cohorts.get(lvl, 0) == 2]
    if cohorts.get(reference, 0) == 2 and shared and len(shared) < len(levels):
        fitted = event_study(df[df["level"].isin([reference, *shared])], outcome, reference, exposure)
        unfitted = pd.DataFrame({"level": [lvl for lvl in levels if lvl not in shared]}).assign(
            rr=np.nan,
            ci_low=np.nan,
            ci_high=np.nan,
            people=fitted["people"].iloc[0],
            df_resid=fitted["df_resid"].iloc[0],
            smallest_cell=lambda u: [_smallest_count(df, outcome, [lvl, reference]) for lvl in u["level"]],
        )
        return pd.concat([fitted, unfitted]).set_index("level").loc[levels].reset_index()
    e = df["evaluation"].to_numpy(float)
    dummies = np.column_stack([(df["level"] == lvl).to_numpy(float) for lvl in levels])
    X = np.column_stack([np.ones(len(df)), e, dummies, dummies * e[:, None]])
    smallest = [_smallest_count(df, outcome, [lvl, reference]) for lvl in levels]
    if len(df) == 0 or np.linalg.matrix_rank(X.T @ X) < X.shape[1]:
        # A cohort without a month (or without the reference window): that month's ratio, or every
        # one, is not identified. No ratio then, rather than a fit that cannot invert its Hessian.
        nothing = {"rr": np.nan, "ci_low": np.nan, "ci_high": np.nan}
        people = int(df["person"].nunique())
        return pd.DataFrame({"level": levels, **nothing}).assign(people=people, df_resid=0, smallest_cell=smallest)
    result = poisson_clustered(
        df[outcome].to_numpy(float),
        X,
        df[exposure].to_numpy(float),
        _clusters(df),
        _saturated_optimum(df, outcome, levels, reference, exposure),
    )
    k = len(levels)
    b, se = np.asarray(result.params)[-k:], np.asarray(result.bse)[-k:]
    # A month (or the reference) without events in either cohort has no finite ratio.
    events = (
        df.groupby(["level", "evaluation"])[outcome].sum().unstack(fill_value=0).reindex(columns=[0, 1], fill_value=0)
    )
    ref_empty = bool((events.loc[reference] == 0).any()) if reference in events.index else True
    empty = np.array([ref_empty or bool((events.loc[lvl] == 0).any()) for lvl in levels])
    with np.errstate(over="ignore"):
        out = pd.DataFrame(
            {"level": levels, "rr": np.exp(b), "ci_low": np.exp(b - Z * se), "ci_high": np.exp(b + Z * se)}
        )
    out.loc[empty, ["rr", "ci_low", "ci_high"]] = np.nan
    sizes = _sizes(df, result)
    return out.assign(people=sizes["people"], df_resid=sizes["df_resid"], smallest_cell=smallest)


def _smallest_count(df: pd.DataFrame, outcome: str, levels: list) -> int:
    """The smallest non-zero count of events or people in the cohort x level cells a month's ratio
    is made of (its own and the reference's): a saturated ratio is an exact function of them."""
    cells = (
        df[df["level"].isin(levels)]
        .groupby(["level", "evaluation"])
        .agg(events=(outcome, "sum"), people=("person", "nunique"))
    )
    counts = [int(c) for c in cells.to_numpy().ravel() if c > 0]
    return min(counts, default=0)


def km_restricted_mean(time: np.ndarray, event: np.ndarray, tau: float) -> float:
    """Kaplan-Meier restricted mean: the area under the survival curve from 0 to tau.

    time: days to the event, or to the extract's end for a case still open (event 0).
    A time past tau counts as followed to tau; an event at tau or later does not move the area.
    Without censoring this is exactly the mean of min(time, tau).
    """
    t = np.minimum(np.asarray(time, float), tau)
    e = np.asarray(event, bool) & (np.asarray(time, float) < tau)
    if len(t) == 0:
        return float("nan")
    ordered = np.sort(t)
    knots, deaths = np.unique(t[e], return_counts=True)
    at_risk = len(t) - np.searchsorted(ordered, knots, side="left")
    survival = np.concatenate([[1.0], np.cumprod(1 - deaths / at_risk)])
    widths = np.diff(np.concatenate([[0.0], knots, [tau]]))
    return float((survival * widths).sum())


def restricted_mean_pseudo(time: np.ndarray, event: np.ndarray, tau: float) -> np.ndarray:
    """Jackknife pseudo-observations of the KM restricted mean (Andersen, Hansen & Klein 2004).

    pseudo_i = n * theta - (n - 1) * theta_without_i. Their mean is the restricted mean (exactly
    so without censoring, where pseudo_i = min(time_i, tau)), and a regression on them gives
    differences in restricted means with ordinary (here person-clustered) sandwich errors.
    Records with the same (time, event) share a pseudo-value, so one leave-one-out fit per
    distinct pair serves them all: at most two per day up to tau.
    """
    t = np.minimum(np.asarray(time, float), tau)
    e = np.asarray(event, bool) & (np.asarray(time, float) < tau)
    n = len(t)
    theta = km_restricted_mean(t, e, tau)
    _, first, inverse = np.unique(np.column_stack([t, e]), axis=0, return_index=True, return_inverse=True)
    left_out = np.array([km_restricted_mean(np.delete(t, i), np.delete(e, i), tau) for i in first])
    return n * theta - (n - 1) * left_out[np.asarray(inverse).ravel()]


def restricted_mean_did(estimand: str, df: pd.DataFrame, time: str, event: str, tau: float) -> Estimate:
    """Difference in differences of KM restricted means up to tau days, person-clustered.

    Every case stays in its cell: one still open at the extract's end is censored there (event
    0), never dropped, so a cell with slow cases near the end is not biased towards fast ones.
    OLS on the cell-wise pseudo-observations; its interaction is the DiD of restricted means.
    """
    import statsmodels.api as sm

    method = (
        f"KM restricted mean to {tau:g} days, open cases censored at the extract end; OLS DiD on "
        "jackknife pseudo-observations (cohort x period), person-clustered SE"
    )
    df = df[df[time].notna()]
    n = len(df)
    if _empty_cell(df, time) or df.groupby(COHORT_PERIOD).size().min() < 2:
        return _withheld(estimand, n, method, "a cohort x period cell has fewer than 2 cases")
    pseudo = np.empty(n)
    for _, rows in df.groupby(COHORT_PERIOD).indices.items():
        pseudo[rows] = restricted_mean_pseudo(df[time].to_numpy()[rows], df[event].to_numpy()[rows], tau)
    result = sm.OLS(pseudo, did_design(df)).fit(cov_type="cluster", cov_kwds={"groups": _clusters(df)})
    return Estimate(
        estimand,
        *_interaction(result, exponentiate=False),
        n=n,
        method=method,
        **_sizes(df, result),
        summarised_values=_smallest_cell(df),
        **concentration(_cells(df, time, cap=tau)),
    )


# Pre-trend test: the families of the DiD estimators above, one column per month of the pre
# period, so each estimand is tested with the model its own estimate comes from.
PRE_TREND_FAMILIES = ("poisson", "binomial", "log_linear", "linear", "restricted_mean")


# A month's cohort cell enters the test with at least this many events (counts), of each outcome
# (binary) or values (means): the sandwich of a cell resting on one or two records is far too
# small, and a single month would then decide the test.
PRE_TREND_MIN_CELL = 5


def _testable(df: pd.DataFrame, outcome: str, family: str) -> pd.Series:
    """Per level: True where both cohorts' cells hold enough to fit and test (PRE_TREND_MIN_CELL
    events for a count, of either outcome for a binary one, values for a mean)."""
    cells = df.groupby(["level", "evaluation"])[outcome].agg(["size", "sum"])
    least = PRE_TREND_MIN_CELL
    if family == "poisson":
        ok = cells["sum"] >= least
    elif family == "binomial":
        ok = (cells["sum"] >= least) & (cells["size"] - cells["sum"] >= least)
    else:
        ok = cells["size"] >= least
    return ok.unstack(fill_value=False).reindex(columns=[0, 1], fill_value=False).all(axis=1)


def pre_trend(
    estimand: str,
    df: pd.DataFrame,
    outcome: str,
    family: str,
    exposure: str | None = None,
    event: str | None = None,
    tau: float | None = None,
) -> Estimate:
    """Joint Wald test that the cohort difference in each pre-index month equals its difference
    in the reference months (parallel trends before the index); estimate = chi-square.

    df: person, evaluation, level (`ref` for the pooled reference months, else the month), the
    outcome (and the exposure for poisson; `event` and `tau` for restricted_mean, whose cells
    get jackknife pseudo-observations as restricted_mean_did's do). The model has cohort, one
    effect per level and one evaluation x level term per month; the test is on those terms,
    with the person-clustered covariance. A month either cohort has too little in (_testable)
    is left out, and its degree of freedom with it.
    """
    import statsmodels.api as sm
    from scipy import stats

    if family not in PRE_TREND_FAMILIES:
        raise ValueError(f"pre_trend family {family!r} is not one of {PRE_TREND_FAMILIES}")
    method = f"joint Wald test (chi-square), evaluation x month terms of a {family} model, person-clustered"
    df = df[df[outcome].notna() & ((df[outcome] > 0) if family == "log_linear" else True)]
    n = int(df["person"].nunique())
    testable = _testable(df, outcome, family) if len(df) else pd.Series(dtype=bool)
    if not bool(testable.get("ref", False)):
        return _withheld(estimand, n, method, "the reference months cannot be fitted in both cohorts")
    months = [lvl for lvl in testable.index if lvl != "ref" and testable[lvl]]
    if not months:
        return _withheld(estimand, n, method, "no pre-index month can be fitted in both cohorts")
    df = df[df["level"].isin(["ref", *months])].reset_index(drop=True)
    if family == "poisson":
        # Counts and exposure summed per person and level: the same likelihood and the same
        # per-person scores (so the same clustered covariance), in about half the rows.
        df = df.groupby(["person", "evaluation", "level"], as_index=False)[[outcome, exposure]].sum()
    y = df[outcome].to_numpy(float)
    if family == "log_linear":
        y = np.log(y)
    elif family == "restricted_mean":
        y = np.empty(len(df))
        for _, rows in df.groupby(["evaluation", "level"]).indices.items():
            y[rows] = restricted_mean_pseudo(df[outcome].to_numpy()[rows], df[event].to_numpy()[rows], tau)
    e = df["evaluation"].to_numpy(float)
    dummies = np.column_stack([(df["level"] == lvl).to_numpy(float) for lvl in months])
    X = np.column_stack([np.ones(len(df)), e, dummies, dummies * e[:, None]])
    fit = {"cov_type": "cluster", "cov_kwds": {"groups": _clusters(df)}}
    if family == "poisson":
        offset = df[exposure].to_numpy(float)
        cells = df.groupby(["evaluation", "level"], sort=False).ngroup().to_numpy()
        result = poisson_clustered(y, X, offset, _clusters(df), cells_optimum(y, X, offset, cells))
    elif family == "binomial":
        result = sm.GLM(y, X, family=sm.families.Binomial()).fit(**fit)
    else:
        result = sm.OLS(y, X).fit(**fit)
    k = len(months)
    b = np.asarray(result.params)[-k:]
    cov = np.asarray(result.cov_params())[-k:, -k:]
    # A generalised inverse: with few clusters the sandwich can be rank-deficient, and the test
    # then has as many degrees of freedom as the covariance has rank.
    chi2 = float(b @ np.linalg.pinv(cov) @ b)
    rank = int(np.linalg.matrix_rank(cov))
    return Estimate(
        estimand,
        chi2,
        None,
        None,
        float(stats.chi2.sf(chi2, rank)),
        n,
        f"{method}; {rank} degrees of freedom ({k} of the pre-index months fitted)",
        **_sizes(df, result),
        test_df=rank,
    )


# The further findings of contract section 4c: the same frames, other contrasts.


def count_did_ratio(estimand: str, df: pd.DataFrame, outcome: str, group: str, exposure: str = "months") -> Estimate:
    """Ratio of two rate ratios: the DiD rate ratio where `group` is 1 over where it is 0.

    Poisson GLM with every cohort x period x group term, log exposure offset (rows without
    exposure left out), person-clustered SE; exp(evaluation x post x group). Saturated, so the
    estimate is exactly the ratio of the two groups' count_did estimates.
    """
    import statsmodels.api as sm

    method = f"Poisson GLM DiD (cohort x period x {group}), log exposure offset, person-clustered SE"
    cells = df.groupby(COHORT_PERIOD).ngroups
    df = df[df[exposure] > 0]
    n = int(df["person"].nunique())
    if df.groupby(COHORT_PERIOD).ngroups < cells:
        return _withheld(estimand, n, method, UNOBSERVED_CELL)
    sums = df.groupby(["evaluation", "post", group])[outcome].sum()
    if len(sums) < 8 or (sums == 0).any():
        return _withheld(estimand, n, method, f"a cohort x period x {group} cell has no events")
    e, p, g = (df[c].to_numpy(float) for c in ("evaluation", "post", group))
    X = np.column_stack([np.ones(len(df)), e, p, g, e * p, e * g, p * g, e * p * g])
    model = sm.GLM(df[outcome].to_numpy(float), X, family=sm.families.Poisson(), exposure=df[exposure].to_numpy(float))
    result = model.fit(cov_type="cluster", cov_kwds={"groups": _clusters(df)})
    return Estimate(
        estimand,
        *_interaction(result, exponentiate=True),
        n=n,
        method=method,
        **_sizes(df, result),
        smallest_cell=smallest_count(df, [*COHORT_PERIOD, group], outcome),
    )


def adjusted_rate_ratio(
    estimand: str, df: pd.DataFrame, outcome: str, exposure: str, covariates: list[str]
) -> Estimate:
    """Rate ratio of `outcome` for the first covariate, adjusted for the rest: Poisson GLM, one row
    per person, log exposure offset, robust (HC1) SE. A covariate that never varies is left out."""
    import statsmodels.api as sm

    first, *others = covariates
    method = f"Poisson GLM of {outcome} on {first} adjusted for {', '.join(others)}, log exposure offset, HC1 SE"
    n = len(df)
    others = [c for c in others if df[c].nunique() > 1]
    totals = df.groupby(first)[outcome].sum()
    if len(totals) < 2 or (totals == 0).any():
        return _withheld(estimand, n, method, f"a level of {first} has no events")
    X = sm.add_constant(df[[first, *others]].to_numpy(float), has_constant="add")
    model = sm.GLM(df[outcome].to_numpy(float), X, family=sm.families.Poisson(), exposure=df[exposure].to_numpy(float))
    result = model.fit(cov_type="HC1")
    b, se, p = float(result.params[1]), float(result.bse[1]), float(result.pvalues[1])
    return Estimate(
        estimand,
        float(np.exp(b)),
        float(np.exp(b - Z * se)),
        float(np.exp(b + Z * se)),
        p,
        n,
        method,
        people=n,
        df_resid=int(result.df_resid),
        smallest_cell=smallest_count(df, [first], outcome),
    )


def _clustered_variance(influence: np.ndarray, clusters: np.ndarray) -> float:
    """Variance of a sum of per-row influence values, summed within clusters first (n/(n-1))."""
    per_cluster = np.bincount(clusters, weights=influence)
    g = len(per_cluster)
    return float((per_cluster**2).sum() * g / (g - 1)) if g > 1 else float("nan")


def weighted_share(estimand: str, df: pd.DataFrame, weight: str, flag: str) -> Estimate:
    """Percentage of all `weight` (events) that fall on rows where `flag` is 1: sum(w f) / sum(w).

    A ratio estimator: its person-clustered SE by linearisation, the 95% interval on the logit
    scale (so it stays inside 0..100).
    """
    from scipy import stats

    method = f"share of {weight} where {flag}, ratio estimator, person-clustered SE, logit interval"
    df = df[df[weight] > 0]
    people = int(df["person"].nunique())
    w, f = df[weight].to_numpy(float), df[flag].to_numpy(float)
    total = w.sum()
    if people < 2 or total == 0:
        return _withheld(estimand, int(total), method, "fewer than two people with events")
    share = float((w * f).sum() / total)
    if share in (0.0, 1.0):
        return _withheld(estimand, int(total), method, "every event is on one side")
    se = np.sqrt(_clustered_variance(w * (f - share) / total, _clusters(df)))
    logit, se_logit = np.log(share / (1 - share)), se / (share * (1 - share))
    low, high = (1 / (1 + np.exp(-(logit + s * Z * se_logit))) for s in (-1, 1))
    return Estimate(
        estimand,
        100 * share,
        100 * float(low),
        100 * float(high),
        float(2 * stats.norm.sf(abs(logit) / se_logit)),
        int(total),
        method,
        people=people,
        df_resid=people - 1,
        smallest_cell=smallest_count(df, [flag], weight),
        share_k=int((w * f).sum()),
    )


def ratio_did(estimand: str, df: pd.DataFrame, numerator: str, denominator: str) -> Estimate:
    """Difference in differences of a ratio of sums (e.g. attendances per referral) between the
    cohort x period cells: (E post - E pre) - (H post - H pre), each cell's ratio sum(num) / sum(den).

    Person-clustered SE by linearisation: a row's influence on its cell's ratio is
    (num - ratio x den) / sum(den) in its cell, signed as the cell enters the difference.
    """
    from scipy import stats

    method = f"DiD of {numerator} per {denominator} (ratio of sums per cohort x period), person-clustered SE"
    present = df.groupby(COHORT_PERIOD).ngroups
    df = df[df[denominator].notna()]  # person-periods the source did not cover hold no count
    n = int(df["person"].nunique())
    if df.groupby(COHORT_PERIOD).ngroups < present:
        return _withheld(estimand, n, method, UNOBSERVED_CELL)
    cells = df.groupby(COHORT_PERIOD)[[numerator, denominator]].sum()
    if len(cells) < 4 or (cells[denominator] == 0).any():
        return _withheld(estimand, n, method, f"a cohort x period cell has no {denominator}")
    ratio = cells[numerator] / cells[denominator]
    sign = {(1, 1): 1.0, (1, 0): -1.0, (0, 1): -1.0, (0, 0): 1.0}
    diff = float(sum(sign[c] * ratio[c] for c in sign))
    keys = list(zip(df["evaluation"].astype(int), df["post"].astype(int)))
    r = np.array([ratio[k] for k in keys])
    d = np.array([cells.loc[k, denominator] for k in keys])
    s = np.array([sign[k] for k in keys])
    influence = s * (df[numerator].to_numpy(float) - r * df[denominator].to_numpy(float)) / d
    se = float(np.sqrt(_clustered_variance(influence, _clusters(df))))
    return Estimate(
        estimand,
        diff,
        diff - Z * se,
        diff + Z * se,
        float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else None,
        n,
        method,
        people=n,
        df_resid=n - 1,
        smallest_cell=smallest_count(df, COHORT_PERIOD, numerator, denominator),
    )


def slope(estimand: str, df: pd.DataFrame, outcome: str, x: str) -> Estimate:
    """Linear trend of `outcome` per unit of `x`: OLS of every value on x, person-clustered SE."""
    import statsmodels.api as sm

    method = f"OLS of {outcome} on {x}, every value, person-clustered SE"
    df = df[df[outcome].notna()]
    n = len(df)
    if df[x].nunique() < 2:
        return _withheld(estimand, n, method, f"fewer than two values of {x}")
    X = sm.add_constant(df[x].to_numpy(float), has_constant="add")
    result = sm.OLS(df[outcome].to_numpy(float), X).fit(cov_type="cluster", cov_kwds={"groups": _clusters(df)})
    return Estimate(
        estimand,
        *_interaction(result, exponentiate=False),
        n=n,
        method=method,
        **_sizes(df, result),
        summarised_values=n,
    )
