"""results/report.html: built from released files only, self-contained, and rendered by a real
browser (Debian's headless Chromium) with every section and every estimand on the page."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ld_spark.config import DisclosureConf
from ld_spark.contract import ESTIMANDS, RESULT_COLUMNS
from ld_spark.release import page

SECTIONS = {
    "summary": "Summary",
    "cohorts": "Cohorts and descriptives",
    "figure1": "Figure 1: events per person-month around the index offence",
    "effects": "Effects of L&D",
    "event-study": "Event study",
    "economics": "Economics",
    "further-findings": "Further findings of the brief",
    "linkage": "Linkage quality",
    "sensitivity": "Sensitivity analyses",
    "subgroups": "Subgroups",
    "disclosure": "Disclosure control",
    "caveats": "Caveats",
}
WITHHELD_REASON = "a cell of the model holds a count above zero and at most the threshold"


class Page(HTMLParser):
    """A page's sections (id -> heading), its estimand rows (name -> cell texts) and image sources."""

    def __init__(self, html: str):
        super().__init__()
        self.sections, self.rows, self.images = {}, {}, []
        self._section = self._row = None
        self._text: list[str] | None = None
        self._in_h2 = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs["id"]
        elif tag == "h2":
            self._in_h2, self._heading = True, ""
        elif tag == "tr" and (attrs.get("id") or "").startswith("estimand-"):
            self._row = attrs["id"].removeprefix("estimand-")
            self.rows.setdefault(self._row, [])
        elif tag == "td" and self._row:
            self._text = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
            self.sections[self._section] = self._heading
        elif tag == "td" and self._text is not None:
            self.rows[self._row].append("".join(self._text).strip())
            self._text = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._in_h2:
            self._heading += data
        if self._text is not None:
            self._text.append(data)


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, columns: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([columns, *rows])


def test_the_page_shows_released_values_withheld_reasons_and_embedded_figures(tmp_path):
    _write(
        tmp_path / "estimates.csv",
        RESULT_COLUMNS,
        [
            ["custody_or", "0.43780395712306464", "0.2198750910345938", "0.8717326913691086", "0.019", "2145", "logit"],
            ["offending_rr", "", "", "", "", "1695", "Poisson GLM"],
            ["savings_total_low_gbp", "28498437.674543377", "4813376.9", "64254855.5", "", "1695", "arithmetic"],
        ],
    )
    _write(
        tmp_path / "sdc_report.csv",
        ["output", "row", "column", "action", "reason"],
        [
            ["estimates.csv", "offending_rr", "estimate", "withheld", WITHHELD_REASON],
            ["reconciliation.csv", "hes_ae", "read", "rounded", "rounded to the rounding base"],
            ["reconciliation.csv", "hes_ae", "loaded", "rounded", "rounded to the rounding base"],
        ],
    )
    figure = _png()
    (tmp_path / "figure1.png").write_bytes(figure)

    html = page.build(tmp_path, "run-1", DisclosureConf())
    parsed = Page(html)

    assert parsed.sections == SECTIONS
    assert parsed.rows["custody_or"][:5] == ["custody_or", "0.438", "0.220 to 0.872", "0.019", "2,145"]
    assert parsed.rows["offending_rr"][1] == f"withheld: {WITHHELD_REASON}"
    assert parsed.rows["savings_total_low_gbp"][1:3] == ["28,498,438", "4,813,377 to 64,254,856"]
    assert parsed.rows["ae_attendance_rr"][1] == "not in this run's results"
    # Figure 1 is the released file's bytes, inline; a figure not released says so instead.
    assert parsed.images == [f"data:image/png;base64,{base64.b64encode(figure).decode()}"]
    assert "forest_plot.png was not released in this run." in html
    assert "The sensitivity analyses were not run in this run." in html
    # The disclosure summary counts cells per file and action: 1 withheld, 2 rounded.
    assert re.search(r"<td>estimates.csv</td><td>0</td><td>1</td>", html)
    assert re.search(r"<td>reconciliation.csv</td><td>2</td><td>0</td>", html)
    # Nothing is fetched: no address and no script.
    assert not re.search(r"(src|href)=\"(https?:|//)|url\(|<script|<link", html)


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the test suite runs as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    return subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_the_run_report_renders_in_chromium_with_every_section_and_estimand(finished_run, tmp_path):
    from PIL import Image

    out, _ = finished_run
    results = out / "results"
    report = results / "report.html"
    assert "report.html" in json.loads((results / "manifest.json").read_text())["files"]

    shot = tmp_path / "report.png"
    _chromium(["--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()], tmp_path / "profile-shot")
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 2400)
    low, high = image.getextrema()
    assert high - low > 200, "the rendered page is blank"

    dom = _chromium(["--dump-dom", report.as_uri()], tmp_path / "profile-dom").stdout
    parsed = Page(dom)
    assert parsed.sections == SECTIONS
    assert set(ESTIMANDS) <= set(parsed.rows), set(ESTIMANDS) - set(parsed.rows)
    # Withheld exactly where results/estimates.csv is blank; every figure inline.
    with (results / "estimates.csv").open(newline="") as handle:
        blank = {r["estimand"] for r in csv.DictReader(handle) if r["estimate"] == ""}
    shown_withheld = {name for name, cells in parsed.rows.items() if cells[1].startswith("withheld")}
    assert shown_withheld == blank
    assert len(parsed.images) >= 15 and all(src.startswith("data:image/png;base64,") for src in parsed.images)
