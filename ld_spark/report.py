"""Figures for reviewers (written as PNG files, logged to MLflow)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def match_weights(model_json: str) -> list[tuple[str, str, float]]:
    """(comparison, level, match weight log2(m/u)) for every non-null level of a Splink model."""
    model = json.loads(model_json)
    rows = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if m and u:
                rows.append((comparison["output_column_name"], level["label_for_charts"], math.log2(m / u)))
    return rows


def match_weights_chart(model_json: str, path: Path) -> Path:
    """A horizontal bar per comparison level: the evidence each level gives for 'same person'."""
    rows = match_weights(model_json)
    prior = json.loads(model_json)["probability_two_random_records_match"]
    labels = [f"{c}: {lvl}"[:70] for c, lvl, _ in rows] + ["prior (two random records)"]
    weights = [w for _, _, w in rows] + [math.log2(prior / (1 - prior))]
    limit = 25  # near-vetoes (weights far below zero) are drawn to the limit and labelled
    shown = [max(-limit, min(limit, w)) for w in weights]
    fig, ax = plt.subplots(figsize=(11, 0.3 * len(labels) + 1.2))
    ax.barh(range(len(labels)), shown, color=["#2a7" if w > 0 else "#c44" for w in weights])
    for i, w in enumerate(weights):
        if abs(w) > limit:
            ax.text(shown[i], i, f" {w:.0f} ", va="center", ha="left" if w < 0 else "right", fontsize=7, color="white")
    ax.set_xlim(-limit, limit)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("match weight, log2(m/u)")
    ax.set_title("Linkage model: evidence per comparison level", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
