"""People of the synthetic national extracts: who they are, and what happens to them.

One call makes one block of people from its own random stream, so a block is the same
whatever Spark partition generates it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ld_spark.config import GeneratorConf
from ld_spark.synth import calendar as cal
from ld_spark.synth import identity as ident

# Roles of a person in the L&D case records.
GENERAL, COHORT, NON_CONSENT, OUTSIDE_WINDOW = 0, 1, 2, 3

OTHER_VULNS = (
    "suicide_self_harm",
    "learning_disability",
    "physical_health",
    "accommodation",
    "abuse_victim",
    "financial",
    "communication",
)


def process_source(process: str) -> str:
    """The source table family a monthly process belongs to."""
    return {
        "ae": "ae",
        "mh_referral": "mh",
        "mh_contact": "mh",
        "mha_detention": "mh",
        "iapt_referral": "iapt",
        "iapt_contact": "iapt",
        "drug_referral": "drug",
        "drug_start": "drug",
        "offence": "offence",
        "police_contact": "offence",
    }[process]


HEALTH_PROCESSES = (
    "ae",
    "mh_referral",
    "mh_contact",
    "mha_detention",
    "iapt_referral",
    "iapt_contact",
    "drug_referral",
    "drug_start",
)


def population_size(cfg: GeneratorConf, scale: float) -> int:
    return max(1, int(round(cfg.population_per_scale * scale)))


def n_blocks(cfg: GeneratorConf, scale: float) -> int:
    return -(-population_size(cfg, scale) // cfg.block_size)


def block_rng(seed: int, block: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, block, stream])


def site_onward_rates(cfg: GeneratorConf, seed: int) -> dict[str, np.ndarray]:
    """Per-site onward referral rates, drawn once per seed (IAPT varies most between sites)."""
    rng = np.random.default_rng([seed, 999_999])
    return {
        kind: rng.beta(o.rate * o.concentration, (1 - o.rate) * o.concentration, size=cfg.sites)
        for kind, o in cfg.onward.items()
    }


def _role_probabilities(cfg: GeneratorConf) -> np.ndarray:
    pop = cfg.population_per_scale
    cohort = cfg.cohort_per_scale / pop
    non_consent = cfg.cohort_per_scale * cfg.non_consent_share / (1 - cfg.non_consent_share) / pop
    outside = cfg.outside_window_per_scale / pop
    return np.array([1 - cohort - non_consent - outside, cohort, non_consent, outside])


def _vulnerabilities(cfg: GeneratorConf, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw vulnerabilities so that the brief's shares hold among referred people."""
    v = cfg.vulnerability
    any_v = rng.random(n) < v["any"]
    out = {
        "mental_health": any_v & (rng.random(n) < v["mental_health"] / v["any"]),
        "substance_misuse": any_v & (rng.random(n) < v["substance_misuse"] / v["any"]),
    }
    for name in OTHER_VULNS:
        out[name] = any_v & (rng.random(n) < v[name] / v["any"])
    # Someone screened as vulnerable has at least one recorded vulnerability.
    none_recorded = any_v & ~np.logical_or.reduce(list(out.values()))
    fallback = rng.choice(np.array(OTHER_VULNS), size=n)
    for name in OTHER_VULNS:
        out[name] = out[name] | (none_recorded & (fallback == name))
    multiple = out["mental_health"] & (rng.random(n) < v["multiple_mh_needs"] / v["mental_health"])
    out["mh_needs"] = np.where(out["mental_health"], np.where(multiple, rng.integers(2, 6, size=n), 1), 0)
    return out


def _window_days(rng: np.random.Generator, n: int, start: str | int, end: str | int) -> np.ndarray:
    """A day in [start, end] (ISO dates, or day numbers as cal.day gives) for each of n people."""
    start, end = (cal.day(d) if isinstance(d, str) else d for d in (start, end))
    return rng.integers(start, end + 1, size=n)


# The twins' own random stream, so that making twins changes no other draw (generate.FAMILIES).
TWINS_STREAM = 8
# What a twin shares with the other, and what they do not (a forename of their own, same sex).
TWIN_SHARED = ("sex", "dob", "surname", "postcode", "postcode2", "move_day")
TWIN_COLUMNS = (*TWIN_SHARED, "forename")


def twins(share: float, rng: np.random.Generator, referred: np.ndarray, identity: dict[str, np.ndarray]) -> dict:
    """Same-sex twins at one address: a share of people become the twin of the person before them
    in the block (when both are referred or both are not): the same sex, date of birth, surname
    and addresses, a forename of their own. Their NHS numbers, PNC IDs and lives stay their own.
    To a Fellegi-Sunter model they differ only by forename, so a record without an NHS number can
    match both (link.components.split_conflicts). identity: TWIN_COLUMNS -> their arrays; returns
    them changed (copies)."""
    n = len(referred)
    drawn = rng.random(n) < share
    pick = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(drawn):
        # the older twin is nobody's twin itself
        pick[i] = i > 0 and not pick[i - 1] and referred[i] == referred[i - 1]
    out = {column: values.copy() for column, values in identity.items()}
    for i in np.flatnonzero(pick):
        for column in TWIN_SHARED:
            out[column][i] = out[column][i - 1]
        names = ident.MALE_FORENAMES if out["sex"][i] == "M" else ident.FEMALE_FORENAMES
        others = [name for name in names if name != out["forename"][i - 1]]
        out["forename"][i] = others[rng.integers(0, len(others))]
    return out


def make_persons(cfg: GeneratorConf, seed: int, scale: float, block: int) -> pd.DataFrame:
    """One block of people with identity, L&D role, cohort index dates and event propensities."""
    rng = block_rng(seed, block, 0)
    first = block * cfg.block_size
    last = min(first + cfg.block_size, population_size(cfg, scale))
    n = max(0, last - first)
    person_id = np.arange(first, last)

    role = rng.choice(4, size=n, p=_role_probabilities(cfg))
    referred = role != GENERAL
    male = np.where(referred, rng.random(n) < cfg.male_share_referred, rng.random(n) < 0.5)
    sex = np.where(male, "M", "F")

    # Age: referred people are mostly 18-50 at referral (2017); a few are youths.
    youth = referred & (rng.random(n) < cfg.youth_share)
    birth_year = np.where(
        youth,
        rng.integers(2000, 2003, size=n),
        np.where(referred, rng.integers(1962, 1999, size=n), rng.integers(1940, 2001, size=n)),
    )
    year_start = (birth_year - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype("int64")
    dob = year_start + rng.integers(0, 365, size=n)

    forename = np.where(
        male,
        np.array(ident.MALE_FORENAMES, dtype=object)[rng.integers(0, len(ident.MALE_FORENAMES), size=n)],
        np.array(ident.FEMALE_FORENAMES, dtype=object)[rng.integers(0, len(ident.FEMALE_FORENAMES), size=n)],
    )
    surname = np.array(ident.SURNAMES, dtype=object)[rng.integers(0, len(ident.SURNAMES), size=n)]

    site = rng.integers(1, cfg.sites + 1, size=n)
    home_area = np.where(
        referred,
        np.array(ident.POSTCODE_AREAS, dtype=object)[(site - 1) % len(ident.POSTCODE_AREAS)],
        np.array(ident.POSTCODE_AREAS, dtype=object)[rng.integers(0, len(ident.POSTCODE_AREAS), size=n)],
    )
    postcode = ident.postcodes(rng, home_area)
    moved = rng.random(n) < cfg.dirt.moved_share
    postcode2 = np.where(moved, ident.postcodes(rng, home_area), None)
    move_day = np.where(moved, _window_days(rng, n, cfg.extract_start, cfg.extract_end), np.nan)

    nhs = ident.nhs_numbers(rng, n)
    # A few people carry someone else's NHS number in every health record (a known data fault).
    shared = rng.random(n) < cfg.dirt.nhs_shared_persons
    nhs_recorded = np.where(shared, nhs[rng.integers(0, max(n, 1), size=n)], nhs)
    pnc = ident.pnc_ids(rng, n)
    pnc2 = np.where(rng.random(n) < cfg.two_pnc_ids_share, ident.pnc_ids(rng, n), None)
    cro = np.where(rng.random(n) < 0.5, ident.cro_numbers(rng, n), None)

    # L&D referral (index) dates. Cohort: first consenting referral in the evaluation window.
    # Others were referred in the three months before the window or the six after it.
    in_window = (role == COHORT) | (role == NON_CONSENT)
    start, end = (cal.day(d) for d in cfg.evaluation_window)
    referral_day = np.where(
        in_window,
        _window_days(rng, n, start, end),
        np.where(
            rng.random(n) < 0.4,
            _window_days(rng, n, start - 92, start - 1),
            _window_days(rng, n, end + 1, end + 182),
        ),
    ).astype("float64")
    referral_day[~referred] = np.nan
    index_lag = np.where(rng.random(n) < 0.6, 0, rng.integers(1, 4, size=n))
    ld_index_day = referral_day - index_lag
    repeat = (role == COHORT) & (rng.random(n) < cfg.repeat_referral_share)

    # Historic control: cohort members with an offence charged in the historic window (FY 2013/14;
    # arrested by 11 days before its end, so that the charge, a few days later, stays inside it).
    historic = (role == COHORT) & (rng.random(n) < cfg.historic_share)
    hist_start, hist_end = (cal.day(d) for d in cfg.historic_charge_window)
    hist_index_day = np.where(historic, _window_days(rng, n, hist_start, hist_end - 11), np.nan)

    vulns = _vulnerabilities(cfg, rng, n)
    for name in vulns:
        vulns[name] = np.where(referred, vulns[name], 0 if name == "mh_needs" else False)
    substance = vulns["substance_misuse"]
    declined = referred & (rng.random(n) < np.where(substance, cfg.decline_rate_substance, cfg.decline_rate))
    health_naive = referred & (rng.random(n) < cfg.health_naive_share)

    frame = {
        "person_id": person_id,
        "sex": sex,
        "dob": dob,
        "forename": forename,
        "surname": surname,
        "postcode": postcode,
        "postcode2": postcode2,
        "move_day": move_day,
        "nhs_number": nhs,
        "nhs_recorded": nhs_recorded,
        "pnc_id": pnc,
        "pnc_id2": pnc2,
        "cro_number": cro,
        "role": role,
        "site": site,
        "referral_day": referral_day,
        "ld_index_day": ld_index_day,
        "repeat_referral": repeat,
        "hist_index_day": hist_index_day,
        "declined": declined,
        "health_naive": health_naive,
        **{f"vuln_{k}" if k != "mh_needs" else k: v for k, v in vulns.items()},
    }
    twin_rng = block_rng(seed, block, TWINS_STREAM)
    frame.update(twins(cfg.twins_share, twin_rng, referred, {c: frame[c] for c in TWIN_COLUMNS}))

    # Monthly event propensities. Each source has users (people who ever appear in it) and a
    # person-level gamma frailty shared by the source's processes; rate = user x frailty x mean.
    vulnerable = {
        "ae": np.ones(n, bool),
        "mh": vulns["mental_health"],
        "iapt": vulns["mental_health"],
        "drug": substance,
        "offence": np.ones(n, bool),
    }
    users, frailty = {}, {}
    for source, src in cfg.sources.items():
        ld_p = np.where(vulnerable[source], src.ld_users_vulnerable, src.ld_users)
        users[source] = rng.random(n) < np.where(referred, ld_p, src.pop_users)
        if source != "offence":
            users[source] &= ~health_naive
        frame[f"user_{source}"] = users[source]
        frailty[source] = rng.gamma(cfg.frailty_shape, 1 / cfg.frailty_shape, size=n)
    for name, proc in cfg.processes.items():
        source = process_source(name)
        mean = np.where(referred, proc.ld_rate, proc.pop_rate)
        frame[f"rate_{name}"] = users[source] * mean * frailty[source]
    return pd.DataFrame(frame)
