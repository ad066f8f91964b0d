"""The generator's detentions that run on into the next section (conf/shape_realistic.yaml),
read back by the job's own rule: a run-on record is part of the detention it continues."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ld_spark.events import with_new_detention
from ld_spark.synth import calendar as cal
from ld_spark.synth.tables_health import _run_on

END = "2019-06-30"
COLUMNS = (
    "MHActLegalStatusClassPeriodId string, LocalPatientId string, OrgIDProv string, LegalStatusCode string, "
    "StartDateMHActLegalStatusClass string, EndDateMHActLegalStatusClass string, UniqMonthID string"
)


def _periods() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    starts = ["2017-01-07", "2017-03-01", "2017-05-10", "2017-07-01", "2019-06-29", "2017-09-01"]
    codes = np.array(["20", "02", "03", "01", "02", "19"], dtype=object)
    lengths = np.array([1, 20, 100, 30, 10, 1])
    start = np.array([cal.day(d) for d in starts], dtype="int64")
    end = start + lengths
    frame = pd.DataFrame(
        {
            "MHActLegalStatusClassPeriodId": [f"P{i}" for i in range(len(starts))],
            "LocalPatientId": ["L1", "L1", "L2", "L3", "L4", "L5"],
            "OrgIDProv": "RX1",
            "LegalStatusCode": codes,
            "StartDateMHActLegalStatusClass": starts,
            "EndDateMHActLegalStatusClass": cal.iso(np.where(end <= cal.day(END), end, np.nan)),
            "UniqMonthID": "1201",
        }
    )
    return frame, codes, end


def test_every_detention_that_can_run_on_does_at_share_1_and_the_job_counts_each_once(spark):
    frame, codes, end = _periods()
    out = _run_on(frame, codes, end, cal.day(END), block=0, share=1.0, rng=np.random.default_rng(7))
    run_ons = out.iloc[len(frame) :]
    # s136 -> s2 the day after, s2 -> s3 the day it ends, s135 -> s2; not the s3 (nothing to run
    # on into), not the informal 01, not the s2 still open at the end.
    got = sorted(zip(run_ons["LocalPatientId"], run_ons["LegalStatusCode"], run_ons["StartDateMHActLegalStatusClass"]))
    assert got == [("L1", "02", "2017-01-09"), ("L1", "03", "2017-03-21"), ("L5", "02", "2017-09-03")]
    assert out["MHActLegalStatusClassPeriodId"].is_unique
    assert out.iloc[: len(frame)].equals(frame)  # the records it continues are as they were
    flagged = {
        r.MHActLegalStatusClassPeriodId: r.new_detention
        for r in with_new_detention(spark.createDataFrame(out.astype(object), COLUMNS)).collect()
    }
    # L1's s136, its s2 a day later and that s2's s3 are one detention (the s2 run-on from P0
    # starts the day after P0 ends; P1 is a detention of its own a month later, run on too).
    assert sorted(k for k, new in flagged.items() if new) == ["P0", "P1", "P2", "P4", "P5"]


def test_no_detention_runs_on_at_share_0():
    frame, codes, end = _periods()
    out = _run_on(frame, codes, end, cal.day(END), block=0, share=0.0, rng=np.random.default_rng(7))
    assert out.equals(frame)
