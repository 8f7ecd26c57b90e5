"""Each pipeline on data with a known answer; sources confined to the data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from backends.jobs.handlers.pipelines import (
    engineer,
    events_frame,
    model_step,
    pick_target,
    preprocess,
    read_file,
    run_query,
)
from backends.jobs.models import PipelineOptions
from backends.jobs.protocol import JobsProtocolError

rng = np.random.default_rng(0)


def run(frame: pl.DataFrame, pipeline: str, **options: Any) -> dict[str, Any]:
    opts = PipelineOptions(**options)
    target = pick_target(frame, opts, required=pipeline in ("classification", "regression"))
    prepared = engineer(preprocess(frame, opts, target), opts, target)
    return model_step(prepared, pipeline, opts, seed=42)


def test_classification_separable_classes() -> None:
    n = 400
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = np.where(x1 + x2 > 0, "high", "low")
    out = run(pl.DataFrame({"x1": x1, "x2": x2, "label": label}), "classification")
    metrics = out["metrics"]
    assert metrics["accuracy"] > 0.95 and metrics["f1_score"] > 0.95
    assert metrics["classes"] == 2 and metrics["test_records"] == 100
    assert set(out["columns"]["prediction"]) == {"high", "low"}


def test_classification_confidence_threshold_flags_rows() -> None:
    x = rng.normal(size=300)
    frame = pl.DataFrame({"x": x, "y": (x + rng.normal(scale=2, size=300) > 0).astype(int)})
    out = run(frame, "classification", target="y", confidence_threshold=0.99)
    assert 0 < out["metrics"]["low_confidence_share"] <= 1
    assert out["columns"]["low_confidence"].sum() > 0


def test_regression_recovers_the_line() -> None:
    x = rng.uniform(0, 10, size=500)
    frame = pl.DataFrame({"x": x, "target": 3 * x + 2 + rng.normal(scale=0.1, size=500)})
    metrics = run(frame, "regression")["metrics"]
    assert metrics["r2"] > 0.99 and metrics["rmse"] < 0.2
    assert metrics["coefficients"]["x"] == pytest.approx(3, abs=0.02)
    assert metrics["intercept"] == pytest.approx(2, abs=0.1)


def test_clustering_finds_the_blobs() -> None:
    centres = np.array([[0, 0], [10, 10], [-10, 10]])
    truth = np.repeat([0, 1, 2], 100)
    points = centres[truth] + rng.normal(scale=0.5, size=(300, 2))
    frame = pl.DataFrame({"a": points[:, 0], "b": points[:, 1], "label": truth})
    metrics = run(frame, "clustering", features=["a", "b"], n_clusters=3)["metrics"]
    assert metrics["silhouette"] > 0.8
    assert sorted(metrics["cluster_sizes"]) == [100, 100, 100]
    assert metrics["adjusted_rand_index"] == pytest.approx(1.0)


def test_anomaly_finds_the_outliers() -> None:
    normal = rng.normal(size=(490, 2))
    outliers = rng.uniform(8, 12, size=(10, 2)) * rng.choice([-1, 1], size=(10, 2))
    values = np.vstack([normal, outliers])
    frame = pl.DataFrame({"u": values[:, 0], "v": values[:, 1], "label": [0] * 490 + [1] * 10})
    metrics = run(frame, "anomaly", features=["u", "v"], contamination=0.02)["metrics"]
    assert metrics["anomalies"] == 10
    assert metrics["recall"] >= 0.9 and metrics["precision"] >= 0.9


def test_string_features_are_one_hot_encoded() -> None:
    kind = rng.choice(["a", "b"], size=300)
    frame = pl.DataFrame({"kind": kind, "noise": rng.normal(size=300), "label": kind == "a"})
    out = run(frame, "classification", features=["kind", "noise"])
    assert out["metrics"]["accuracy"] == 1.0


def test_files_of_each_format_inside_the_data_folder(tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0], "label": ["a", "b"]})
    frame.write_csv(tmp_path / "d.csv")
    frame.write_ndjson(tmp_path / "d.jsonl")
    frame.write_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.jsonl", "d.parquet", str(tmp_path / "d.csv")):
        assert read_file(tmp_path, name).equals(frame)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../secret.csv", "VALIDATION_ERROR"),
        ("/etc/passwd.csv", "NOT_FOUND"),  # read as {data}/etc/passwd.csv
        ("/../../etc/passwd.csv", "VALIDATION_ERROR"),
        ("sub/../../x.csv", "VALIDATION_ERROR"),
        ("missing.csv", "NOT_FOUND"),
        ("data.txt", "VALIDATION_ERROR"),
    ],
)
def test_bad_paths(tmp_path: Path, path: str, code: str) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(JobsProtocolError) as caught:
        read_file(tmp_path / "data", path)
    assert caught.value.code == code


def test_query_over_events() -> None:
    events = [
        {
            "event_type": "receipt_created",
            "ingest_timestamp": "2024-01-15T10:00:00Z",
            "trace_id": "a",
            "payload": {"store_id": 1, "total": 5.0},
        },
        {
            "event_type": "receipt_created",
            "ingest_timestamp": "2024-01-15T10:00:01Z",
            "trace_id": "b",
            "payload": {"store_id": 1, "total": 7.0},
        },
        {
            "event_type": "store_opened",
            "ingest_timestamp": "2024-01-15T10:00:02Z",
            "trace_id": "c",
            "payload": {"store_id": 2, "operation_type": "opened"},
        },
    ]
    frame = events_frame(events)
    result = run_query(
        frame,
        "SELECT store_id, SUM(total) AS s FROM events WHERE category = 'sales' GROUP BY store_id",
    )
    assert result.rows() == [(1, 12.0)]
    with pytest.raises(JobsProtocolError) as caught:
        run_query(frame, "SELECT nope FROM events")
    assert caught.value.details["field"] == "payload.data_source.query"


def test_missing_target_is_a_validation_error() -> None:
    with pytest.raises(JobsProtocolError) as caught:
        run(pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0]}), "regression")
    assert caught.value.details["field"] == "payload.options.target"
