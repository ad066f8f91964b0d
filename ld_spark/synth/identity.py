"""Identities as the national systems hold them, and the ways they get recorded wrongly.

Everything here is vectorised numpy over one block of people; `rng` is the block's generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MALE_FORENAMES = """James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel
Matthew Anthony Mark Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Edward Jason
Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel
Gregory Alexander Patrick Frank Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Zachary
Douglas Peter Kyle Noah Ethan Jeremy Walter Christian Keith Roger Terry Austin Sean Gerald Carl Harold
Dylan Arthur Lawrence Jordan Jesse Bryan Billy Bruce Gabriel Joe Logan Alan Juan Albert Willie Elijah
Wayne Randy Vincent Mohammed Liam Connor Callum Kieran Lewis Harry Oliver Jamie Dean Craig Lee Darren
Shane Wesley Ashley Gavin Declan Aidan Owen Rhys Ahmed Imran Tariq Kwame Tomasz Piotr""".split()

FEMALE_FORENAMES = """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy
Betty Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah
Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma Nicole
Helen Samantha Katherine Christine Debra Rachel Carolyn Janet Catherine Maria Heather Diane Ruth Julie
Olivia Joyce Virginia Victoria Kelly Lauren Christina Joan Evelyn Judith Megan Andrea Cheryl Hannah
Jacqueline Martha Gloria Teresa Ann Sara Madison Frances Kathryn Janice Jean Abigail Alice Judy Sophia
Grace Denise Amber Doris Marilyn Danielle Beverly Isabella Theresa Diana Natalie Brittany Charlotte
Marie Kayleigh Chloe Leanne Gemma Stacey Jade Siobhan Niamh Aisha Fatima Zara Agnieszka""".split()

SURNAMES = """Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson
Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner
Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips
Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins
Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson Simpson Ellis Adams Singh Begum Wilkinson
Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain Campbell Matthews Owen Palmer Holmes
Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins Murray Dixon Harvey Graham
Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews Stewart Elliott Reynolds Saunders Payne Fox
Ford Pearce Day Brooks West Lawrence Cole Atkinson Bradley Spencer Gill Dawson Ball Burton O'Brien
Watts Rose Booth Perry Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster
Hunter Gregory Carr Lowe Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins Harding
Porter Robertson Newton Oliver Reed Kennedy Williamson Bird Gardner Shah Dean Lane Cooke Bates Henderson
Parry Burgess Bishop Walton Burns Nicholson Shepherd Ross Cross Long Freeman Warren Nicholls Hamilton
Byrne Sutton McDonald Yates Hodgson Robson Curtis Hopkins O'Connor Harper Coleman Watkins Moss McCarthy
Chambers O'Neill Griffin Sharp Hardy Wheeler Potter Osborne Johnston Gordon Doyle Wallace George Jordan
Hutchinson Rowe Burke May Pritchard Gilbert Willis Higgins Read Miles Stevenson Stephenson Hammond
Arnold Buckley Walters Hewitt Barber Nelson Slater Austin Sullivan Whitehead Mann Frost Lambert
Stephens Blake Akhtar Lynch Goodwin Barton Woodward Thomson Cunningham Quinn Barnett Baxter Bibi
Clayton Nash Greenwood Jennings Holt Kemp Poole Gallagher Bond Stokes Tucker Davidson Fowler Heath
Norman Middleton Lawson Banks French Stanley Jarvis Gibbs Ferguson Hayward Carroll Douglas Dickinson
Todd Barlow Peters Lucas Knowles Hartley Miah Simmons Morton Alexander Field Morrison Norris Townsend
Preston Hancock Thornton Baldwin Burrows Briggs Storey Pugh Smith-Jones Ashworth-Hale Lloyd-Davies
Taylor-Brown Bennett-Clarke Okafor Mensah Kowalski Nowak""".split()

NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Richard": "Dick",
    "James": "Jim",
    "Michael": "Mike",
    "Thomas": "Tom",
    "Joseph": "Joe",
    "Christopher": "Chris",
    "Daniel": "Dan",
    "Matthew": "Matt",
    "Anthony": "Tony",
    "Steven": "Steve",
    "Stephen": "Steve",
    "Andrew": "Andy",
    "Joshua": "Josh",
    "Kenneth": "Ken",
    "Timothy": "Tim",
    "Edward": "Ed",
    "Nicholas": "Nick",
    "Jonathan": "Jon",
    "Benjamin": "Ben",
    "Samuel": "Sam",
    "Gregory": "Greg",
    "Alexander": "Alex",
    "Patrick": "Pat",
    "Raymond": "Ray",
    "Gerald": "Gerry",
    "Lawrence": "Larry",
    "Harold": "Harry",
    "Peter": "Pete",
    "Elizabeth": "Liz",
    "Margaret": "Maggie",
    "Jennifer": "Jenny",
    "Patricia": "Pat",
    "Susan": "Sue",
    "Rebecca": "Becky",
    "Katherine": "Kate",
    "Catherine": "Cathy",
    "Christine": "Chris",
    "Samantha": "Sam",
    "Victoria": "Vicky",
    "Deborah": "Debbie",
    "Pamela": "Pam",
    "Kimberly": "Kim",
    "Jacqueline": "Jackie",
    "Abigail": "Abby",
    "Alexandra": "Alex",
    "Stephanie": "Steph",
}

POSTCODE_AREAS = """LS M B L S NE BD HU NG LE CV SO BS PL EX NR IP CB OX RG SE E N SW W BN ME CT TN DN WF HD
HX OL BL WN PR BB LA CA DH SR TS YO HG DE ST WV WS DY""".split()
UNIT_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
PNC_CHECK = "ZABCDEFGHJKLMNPQRTUVWXY"
NFA_POSTCODES = ("NF1 1NF", "ZZ99 3VZ")
PLACEHOLDER_DOBS = ("1900-01-01", "1800-01-01")


def nhs_check_digit(first_nine: np.ndarray) -> np.ndarray:
    """Mod-11 check digit for rows of 9 digits; 10 means the number is not issuable."""
    weights = np.arange(10, 1, -1)
    remainder = (first_nine * weights).sum(axis=1) % 11
    check = 11 - remainder
    return np.where(check == 11, 0, check)


def nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """n valid 10-digit NHS numbers (first digit 4-6, as issued in England and Wales)."""
    digits = rng.integers(0, 10, size=(n, 9))
    digits[:, 0] = rng.integers(4, 7, size=n)
    check = nhs_check_digit(digits)
    bad = check == 10
    while bad.any():  # re-draw the last digit until issuable (about 1 in 11 rows)
        digits[bad, 8] = rng.integers(0, 10, size=bad.sum())
        check = nhs_check_digit(digits)
        bad = check == 10
    full = np.concatenate([digits, check[:, None]], axis=1)
    return np.array(["".join(map(str, row)) for row in full], dtype=object)


def pnc_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """PNC IDs `YYYY/NNNNNNNA`, the letter a mod-23 check over YY and the serial."""
    years = rng.integers(1995, 2013, size=n)
    serial = rng.integers(0, 10_000_000, size=n)
    check = (((years % 100) * 10_000_000 + serial) % 23).astype(int)
    return np.array([f"{y}/{s:07d}{PNC_CHECK[c]}" for y, s, c in zip(years, serial, check)], dtype=object)


def cro_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    serial = rng.integers(1, 999_999, size=n)
    years = rng.integers(0, 13, size=n)
    letters = np.array(list("ABCDEFGHJKLMNPQRTUVWXYZ"))[rng.integers(0, 23, size=n)]
    return np.array([f"{s:06d}/{y:02d}{c}" for s, y, c in zip(serial, years, letters)], dtype=object)


def postcodes(rng: np.random.Generator, areas: np.ndarray) -> np.ndarray:
    """Full postcodes `AA9 9AA` within the given areas."""
    n = len(areas)
    district = rng.integers(1, 21, size=n)
    sector = rng.integers(0, 10, size=n)
    u1 = UNIT_LETTERS[rng.integers(0, len(UNIT_LETTERS), size=n)]
    u2 = UNIT_LETTERS[rng.integers(0, len(UNIT_LETTERS), size=n)]
    return np.array([f"{a}{d} {s}{x}{y}" for a, d, s, x, y in zip(areas, district, sector, u1, u2)], dtype=object)


def postcode_sector(postcode: pd.Series) -> pd.Series:
    """`LS6 2AB` -> `LS6 2` (NDTMS holds the sector only)."""
    return postcode.str.slice(0, -2)


# --- dirt: each function takes clean values and returns recorded values -------------------------


def _pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return rng.random(n) < rate


def typo(rng: np.random.Generator, names: np.ndarray) -> np.ndarray:
    """One keying slip: a substituted, dropped, doubled or transposed letter."""
    out = names.copy()
    kinds = rng.integers(0, 4, size=len(names))
    positions = rng.random(len(names))
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))[rng.integers(0, 26, size=len(names))]
    for i, name in enumerate(names):
        if not isinstance(name, str) or len(name) < 3:
            continue
        p = 1 + int(positions[i] * (len(name) - 2))  # never the first letter
        k = kinds[i]
        if k == 0:
            out[i] = name[:p] + letters[i] + name[p + 1 :]
        elif k == 1:
            out[i] = name[:p] + name[p + 1 :]
        elif k == 2:
            out[i] = name[:p] + name[p] + name[p:]
        elif p + 1 < len(name):
            out[i] = name[:p] + name[p + 1] + name[p] + name[p + 2 :]
        else:
            out[i] = name[:p]
    return out


def variant(rng: np.random.Generator, names: np.ndarray) -> np.ndarray:
    """Case and punctuation variants: UPPER, lower, hyphen <-> space, apostrophe dropped."""
    out = names.copy()
    kinds = rng.integers(0, 3, size=len(names))
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if "-" in name:
            out[i] = name.replace("-", " ") if kinds[i] != 0 else name.replace("-", "")
        elif "'" in name:
            out[i] = name.replace("'", "")
        elif kinds[i] == 0:
            out[i] = name.upper()
        elif kinds[i] == 1:
            out[i] = name.lower()
        else:
            out[i] = name.upper()
    return out


def nickname(names: np.ndarray) -> np.ndarray:
    return np.array([NICKNAMES.get(n, n) for n in names], dtype=object)


def dob_day_month_swap(dobs: np.ndarray) -> np.ndarray:
    """YYYY-MM-DD -> YYYY-DD-MM where that is still a date (day <= 12)."""
    out = dobs.copy()
    for i, d in enumerate(dobs):
        if isinstance(d, str) and len(d) == 10 and int(d[8:10]) <= 12 and d[5:7] != d[8:10]:
            out[i] = f"{d[:4]}-{d[8:10]}-{d[5:7]}"
    return out


def dob_digit_slip(rng: np.random.Generator, dobs: np.ndarray) -> np.ndarray:
    """One digit of the day or year keyed wrongly, keeping a valid date."""
    out = dobs.copy()
    shifts = rng.choice([-10, -1, 1, 10], size=len(dobs))
    for i, d in enumerate(dobs):
        if not isinstance(d, str):
            continue
        ts = pd.Timestamp(d)
        if rng.random() < 0.5:
            out[i] = (ts + pd.Timedelta(days=int(shifts[i]))).strftime("%Y-%m-%d")
        else:
            year = ts.year + int(np.sign(shifts[i])) * (1 if abs(shifts[i]) == 1 else 10)
            day = min(ts.day, 28)
            out[i] = f"{year:04d}-{ts.month:02d}-{day:02d}"
    return out


def mistype_digit(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """One digit of a number string changed (an NHS number so changed usually fails mod-11)."""
    out = values.copy()
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v:
            continue
        p = int(rng.integers(0, len(v)))
        if v[p].isdigit():
            out[i] = v[:p] + str((int(v[p]) + int(rng.integers(1, 10))) % 10) + v[p + 1 :]
    return out


def postcode_format(rng: np.random.Generator, pcs: np.ndarray, lower: float, nospace: float) -> np.ndarray:
    out = pcs.copy()
    n = len(pcs)
    lo = _pick(rng, n, lower)
    ns = _pick(rng, n, nospace)
    for i in np.nonzero(lo | ns)[0]:
        v = out[i]
        if not isinstance(v, str):
            continue
        if lo[i]:
            v = v.lower()
        if ns[i]:
            v = v.replace(" ", "")
        out[i] = v
    return out
