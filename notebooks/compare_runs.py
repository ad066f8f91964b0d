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
# # Compare two `ld-spark run`s side by side
#
# Two seeds, two linkage thresholds, two code versions: which estimates moved, by how much
# against their intervals (highlighted when the second falls outside the first's interval), and
# which settings differ.
#
# Set `MLFLOW_TRACKING_URI` (default `sqlite:///mlflow.db`) and `LD_SPARK_RUN_IDS` as
# `FIRST,SECOND` (default: the two latest finished runs of the `ld-spark` experiment).

# %%
import os

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
experiment = os.environ.get("LD_SPARK_EXPERIMENT", "ld-spark")
runs = mlflow.search_runs(
    experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'", order_by=["start_time DESC"]
)
chosen = os.environ.get("LD_SPARK_RUN_IDS")
ids = chosen.split(",") if chosen else list(runs["run_id"][:2])[::-1]
assert len(ids) == 2, f"need two finished runs, found {len(runs)}"
pair = runs.set_index("run_id").loc[ids]
labels = [f"{i[:8]} (seed {pair.loc[i].get('params.synthetic.seed')})" for i in ids]
print(labels)

# %% [markdown]
# ## Settings that differ

# %%
params = pair[[c for c in pair.columns if c.startswith("params.")]].T
params.columns = labels
params[params.iloc[:, 0].astype(str) != params.iloc[:, 1].astype(str)]

# %% [markdown]
# ## Every estimand, side by side

# %%
names = sorted({c.split(".")[1] for c in pair.columns if c.startswith("metrics.") and c.endswith(".estimate")})
table = pd.DataFrame(
    {
        name: {
            f"{label} {field}": pair.loc[i].get(f"metrics.{name}.{field}")
            for i, label in zip(ids, labels)
            for field in ("estimate", "ci_low", "ci_high")
        }
        for name in names
    }
).T
first, second = (table[f"{label} estimate"] for label in labels)
table["change"] = second - first
widths = table[f"{labels[0]} ci_high"] - table[f"{labels[0]} ci_low"]
table["change / CI width"] = table["change"] / widths.replace(0, np.nan)
# Highlighted: the second run's estimate outside the first run's interval (or released in only one).
table["outside first CI"] = (second < table[f"{labels[0]} ci_low"]) | (second > table[f"{labels[0]} ci_high"])
table["outside first CI"] |= first.isna() != second.isna()


def highlight(row: pd.Series) -> list[str]:
    return ["background-color: #ffd966" if row["outside first CI"] else ""] * len(row)


table.round(4).style.apply(highlight, axis=1).format(precision=4, na_rep="withheld")

# %% [markdown]
# ## Ratios with their intervals, both runs

# %%
ratios = [n for n in names if n.endswith(("_rr", "_or", "_ratio"))]
fig, ax = plt.subplots(figsize=(8, 0.45 * len(ratios) + 1.2))
for k, (i, label, colour) in enumerate(zip(ids, labels, ("#1f5fa8", "#d9822b"))):
    y = np.arange(len(ratios)) + (k - 0.5) * 0.3
    est = [pair.loc[i].get(f"metrics.{n}.estimate") for n in ratios]
    low = [pair.loc[i].get(f"metrics.{n}.ci_low") for n in ratios]
    high = [pair.loc[i].get(f"metrics.{n}.ci_high") for n in ratios]
    ax.hlines(y, low, high, color=colour)
    ax.plot(est, y, "s", color=colour, label=label)
ax.axvline(1, color="grey", linestyle="--", linewidth=0.8)
ax.set_xscale("log")
ax.set_yticks(range(len(ratios)), ratios, fontsize=8)
ax.invert_yaxis()
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Linkage and timing

# %%
other = [c for c in pair.columns if c.startswith(("metrics.linkage.f1", "metrics.stage_seconds"))]
comparison = pair[other].T
comparison.columns = labels
comparison.round(4)
