"""The reviewer notebooks, executed headless against the session's runs, so they never rot.

They are stored as jupytext percent-format .py files (readable diffs), turned into notebooks
and run by nbclient in a real kernel, on the session's finished run and (for the comparison)
its rerun after a killed run (the `killed_and_rerun` fixture).
"""

from __future__ import annotations

from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, tmp_path: Path, monkeypatch, env: dict):
    import jupytext
    from nbclient import NotebookClient

    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits the environment
    notebook = jupytext.read(NOTEBOOKS / name)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return notebook


def outputs(notebook, kind: str) -> list:
    return [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if kind in o.get("data", {})
    ]


def finished_runs(run_config) -> list[str]:
    import mlflow

    mlflow.set_tracking_uri(run_config.mlflow.tracking_uri)
    runs = mlflow.search_runs(
        experiment_names=[run_config.mlflow.experiment],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["start_time DESC"],
    )
    return list(runs["run_id"])


def test_review_notebook_shows_figure1_estimates_linkage_and_funnel(finished_run, run_config, tmp_path, monkeypatch):
    run_id = finished_runs(run_config)[-1]
    notebook = execute(
        "review_run.py",
        tmp_path,
        monkeypatch,
        {
            "MLFLOW_TRACKING_URI": run_config.mlflow.tracking_uri,
            "LD_SPARK_RUN_ID": run_id,
            "LD_SPARK_EXPERIMENT": run_config.mlflow.experiment,
        },
    )
    assert len(outputs(notebook, "image/png")) == 3  # Figure 1, forest plot, funnel plot
    tables = "\n".join(o["data"]["text/html"] for o in outputs(notebook, "text/html"))
    for shown in ("custody_or", "pct_no_prior_contact", "hes_ae", "LD01", "figure1.csv", "rel_month"):
        assert shown in tables, shown


def test_compare_notebook_lines_up_two_runs(finished_run, killed_and_rerun, run_config, tmp_path, monkeypatch):
    runs = finished_runs(run_config)
    assert len(runs) >= 2
    notebook = execute(
        "compare_runs.py",
        tmp_path,
        monkeypatch,
        {
            "MLFLOW_TRACKING_URI": run_config.mlflow.tracking_uri,
            "LD_SPARK_EXPERIMENT": run_config.mlflow.experiment,
            "LD_SPARK_RUN_IDS": f"{runs[1]},{runs[0]}",
        },
    )
    assert len(outputs(notebook, "image/png")) == 1
    tables = "\n".join(o["data"]["text/html"] for o in outputs(notebook, "text/html"))
    for shown in ("offending_rr", "change / CI width", "outside first CI", "stage_seconds", runs[0][:8], runs[1][:8]):
        assert shown in tables, shown
