# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Review one `ld-spark run`
#
# Opens one MLflow run and shows what a reviewer checks: Figure 1, the estimates table with its
# forest plot, linkage quality, the site funnel plot and what disclosure control changed.
# Everything shown is the run's released output (after disclosure control).
#
# Set `MLFLOW_TRACKING_URI` (default `sqlite:///mlflow.db`) and `LD_SPARK_RUN_ID` (default: the
# latest finished run of the `ld-spark` experiment). Open it with `jupytext --to notebook` or
# run it headless: `jupytext --to notebook --execute notebooks/review_run.py`.

# %%
import os
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from IPython.display import Image, display

mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
experiment = os.environ.get("LD_SPARK_EXPERIMENT", "ld-spark")
run_id = os.environ.get("LD_SPARK_RUN_ID")
if not run_id:
    finished = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["start_time DESC"],
        max_results=1,
    )
    run_id = finished.iloc[0]["run_id"]
run = mlflow.get_run(run_id)
artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=tempfile.mkdtemp()))
results = artifacts / "results"
print(f"run {run_id}, started {pd.Timestamp(run.info.start_time, unit='ms')}, status {run.info.status}")
pd.Series(
    {
        k: run.data.params.get(k)
        for k in (
            "git_commit",
            "synthetic.scale",
            "synthetic.seed",
            "linkage.match_threshold",
            "analysis.follow_up_end_used",
            "analysis.source_starts_used",
        )
    }
)

# %% [markdown]
# ## Figure 1: unadjusted rates around the index offence

# %%
display(Image(filename=str(results / "figure1.png")))
figure1 = pd.read_csv(results / "figure1.csv")
figure1.pivot_table(index="rel_month", columns=["outcome", "cohort"], values="rate").loc[-3:3].round(3)

# %% [markdown]
# ## Estimates (contract section 4) and the forest plot

# %%
estimates = pd.read_csv(results / "estimates.csv")
display(estimates[["estimand", "estimate", "ci_low", "ci_high", "p_value", "n"]].round(4))
display(Image(filename=str(results / "forest_plot.png")))

# %% [markdown]
# ## Linkage quality (precision/recall/F1 against `_truth`, blank for real data)

# %%
pd.read_csv(artifacts / "results" / "linkage_quality.csv")

# %% [markdown]
# ## Site variation: onward referral to IAPT

# %%
display(Image(filename=str(results / "site_funnel_iapt.png")))
sites = pd.read_csv(results / "site_onward_referrals.csv")
sites.assign(iapt_share=sites["iapt"] / sites["referrals"]).sort_values("iapt_share")[
    ["site_code", "referrals", "iapt", "iapt_share"]
]

# %% [markdown]
# ## What disclosure control changed

# %%
sdc = pd.read_csv(results / "sdc_report.csv")
sdc.groupby(["output", "action"]).size().rename("cells").reset_index()
