"""`process_data`: scikit-learn pipelines over a file, a SQL query or the retail stream.

Sources: `file` — CSV, JSONL/NDJSON, JSON or Parquet inside `jobs.data_dir` (a path
outside it is a VALIDATION_ERROR, a missing file NOT_FOUND); `query` — polars SQL
over the table `events` (captured retail events, one row per event: `event_type`,
`category`, `ingest_timestamp`, `trace_id` and the payload's scalar fields);
`stream` — the same rows read straight from the retail stream (`stream_id`
`retail`, or the configured Kafka topic / Redis stream name).

Features are `options.features` (string columns are one-hot encoded) or else every
numeric column but the target; missing values are imputed (median). Pipelines and
their metrics (the held-out split is `options.test_size`, seeded by `jobs.seed`):
- classification — LogisticRegression; accuracy, precision, recall, f1_score
  (weighted) on the test split; rows below `confidence_threshold` are flagged;
- regression — LinearRegression (unscaled, so coefficients read in data units);
  r2, mae, rmse on the test split, plus coefficients and intercept;
- clustering — KMeans (`n_clusters`, `max_iterations`); silhouette, inertia,
  cluster sizes, and adjusted_rand_index when a target column holds true labels;
- anomaly — IsolationForest (`contamination`); anomaly count and rate, and
  precision/recall/f1 when a target column marks the true anomalies.
The target is `options.target`, else a column named `label`, `target` or `class`.
Output (`json` / `csv` / `parquet`) is the input rows plus the model's columns,
written under `jobs.output_dir` (`output.destination` is a folder inside it) and
also served over HTTP at `output_url`. The spec's five phases are reported in turn;
model fitting runs on a worker thread, so a cancel ends the job at once but a fit
already running finishes in the background.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backends.jobs.files import PathOutsideFolder, confined
from backends.jobs.handlers import HandlerRegistry, JobContext
from backends.jobs.models import (
    EVENT_CATEGORIES,
    NOT_FOUND,
    VALIDATION_ERROR,
    PipelineOptions,
    ProcessDataPayload,
    ProcessResult,
    ProcessSummary,
)
from backends.jobs.protocol import JobsProtocolError

TARGET_NAMES = ("label", "target", "class")
_READERS = {
    ".csv": pl.read_csv,
    ".jsonl": pl.read_ndjson,
    ".ndjson": pl.read_ndjson,
    ".json": pl.read_json,
    ".parquet": pl.read_parquet,
}


def _invalid(field: str, message: str, expected: str, received: Any = None) -> JobsProtocolError:
    details = {"field": field, "expected": expected}
    if received is not None:
        details["received"] = received
    return JobsProtocolError(VALIDATION_ERROR, message, details)


def events_frame(events: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per retail event: envelope fields plus the payload's scalar fields."""
    rows = []
    for event in events:
        row: dict[str, Any] = {
            "event_type": event.get("event_type"),
            "category": EVENT_CATEGORIES.get(event.get("event_type", ""), "other"),
            "ingest_timestamp": event.get("ingest_timestamp"),
            "trace_id": event.get("trace_id"),
        }
        for key, value in (event.get("payload") or {}).items():
            if key not in row and (value is None or isinstance(value, str | int | float)):
                row[key] = value
        rows.append(row)
    if not rows:
        return pl.DataFrame({"event_type": [], "category": [], "ingest_timestamp": []})
    return pl.from_dicts(rows, infer_schema_length=None)


def read_file(data_dir: Path, relative: str) -> pl.DataFrame:
    field = "payload.data_source.path"
    try:
        path = confined(data_dir, relative)
    except PathOutsideFolder:
        raise _invalid(
            field, "Path is outside the data folder", "a path inside the data folder", relative
        ) from None
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise _invalid(
            field, "Unsupported file type", "a .csv, .jsonl, .json or .parquet file", relative
        )
    if not path.is_file():
        raise JobsProtocolError(NOT_FOUND, f"Data file {relative!r} not found", {"path": relative})
    try:
        return reader(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise _invalid(
            field,
            f"Cannot read {relative!r}: {type(exc).__name__}",
            "a readable data file",
            str(exc)[:200],
        ) from None


def run_query(frame: pl.DataFrame, query: str) -> pl.DataFrame:
    try:
        return pl.SQLContext(events=frame).execute(query, eager=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise _invalid(
            "payload.data_source.query",
            "Query failed",
            "a polars SQL query over the table `events`",
            str(exc)[:200],
        ) from None


@dataclass
class Prepared:
    frame: pl.DataFrame
    x: np.ndarray
    y: np.ndarray | None
    features: list[str]
    target: str | None


def pick_target(frame: pl.DataFrame, options: PipelineOptions, required: bool) -> str | None:
    if options.target is not None:
        if options.target not in frame.columns:
            raise _invalid(
                "payload.options.target",
                f"No column {options.target!r}",
                f"one of {', '.join(frame.columns)}",
                options.target,
            )
        return options.target
    target = next((name for name in TARGET_NAMES if name in frame.columns), None)
    if required and target is None:
        raise _invalid(
            "payload.options.target",
            "This pipeline needs a target column",
            "options.target naming a column (or a column label/target/class)",
        )
    return target


def preprocess(frame: pl.DataFrame, options: PipelineOptions, target: str | None) -> pl.DataFrame:
    frame = frame.head(options.max_records)
    if target is not None:
        frame = frame.filter(pl.col(target).is_not_null())
    return frame


def engineer(frame: pl.DataFrame, options: PipelineOptions, target: str | None) -> Prepared:
    if options.features is not None:
        missing = [name for name in options.features if name not in frame.columns]
        if missing:
            raise _invalid(
                "payload.options.features",
                f"No column {missing[0]!r}",
                f"columns of {', '.join(frame.columns)}",
                missing,
            )
        names = [name for name in options.features if name != target]
    else:
        names = [
            name for name, dtype in frame.schema.items() if dtype.is_numeric() and name != target
        ]
    if not names:
        raise _invalid(
            "payload.options.features",
            "No feature columns",
            "at least one numeric column besides the target",
        )
    selected = frame.select(names)
    text = [name for name, dtype in selected.schema.items() if not dtype.is_numeric()]
    numeric = selected.drop(text).cast(pl.Float64)
    parts = [numeric.to_numpy()] if numeric.width else []
    columns = list(numeric.columns)
    if text:
        dummies = selected.select(text).fill_null("∅").to_dummies()
        parts.append(dummies.to_numpy().astype(float))
        columns += dummies.columns
    x = np.hstack(parts) if len(parts) > 1 else parts[0]
    if np.isnan(x).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-null column: median 0
            medians = np.nan_to_num(np.nanmedian(x, axis=0))
        x = np.where(np.isnan(x), medians, x)
    y = frame.get_column(target).to_numpy() if target is not None else None
    return Prepared(frame, x, y, columns, target)


def _split(p: Prepared, options: PipelineOptions, seed: int, stratify: bool) -> tuple:
    from sklearn.model_selection import train_test_split

    labels = p.y if stratify else None
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() < 2:
            labels = None
    return train_test_split(
        p.x, p.y, test_size=options.test_size, random_state=seed, stratify=labels
    )


def model_step(p: Prepared, pipeline: str, options: PipelineOptions, seed: int) -> dict[str, Any]:
    """Fit and score; returns metrics and the columns added to every row."""
    from sklearn import metrics as m
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(p.x) < 4:
        raise _invalid(
            "payload.data_source", "Too few records for a model", "at least 4 records", len(p.x)
        )
    if pipeline == "classification":
        assert p.y is not None
        if len(np.unique(p.y)) < 2:
            raise _invalid(
                "payload.options.target", "The target has a single class", "at least two classes"
            )
        x_train, x_test, y_train, y_test = _split(p, options, seed, stratify=True)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=options.max_iterations))
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        proba = model.predict_proba(p.x)
        confidence = proba.max(axis=1)
        low = confidence < options.confidence_threshold
        return {
            "model": "LogisticRegression",
            "metrics": {
                "accuracy": float(m.accuracy_score(y_test, predicted)),
                "precision": float(
                    m.precision_score(y_test, predicted, average="weighted", zero_division=0)
                ),
                "recall": float(
                    m.recall_score(y_test, predicted, average="weighted", zero_division=0)
                ),
                "f1_score": float(
                    m.f1_score(y_test, predicted, average="weighted", zero_division=0)
                ),
                "classes": len(model.classes_),
                "train_records": len(x_train),
                "test_records": len(x_test),
                "low_confidence_share": float(low.mean()),
            },
            "columns": {
                "prediction": model.predict(p.x),
                "confidence": confidence,
                "low_confidence": low,
            },
        }
    if pipeline == "regression":
        assert p.y is not None
        try:
            y = p.y.astype(float)
        except (TypeError, ValueError):
            raise _invalid(
                "payload.options.target", "The target is not numeric", "a numeric target column"
            ) from None
        p = Prepared(p.frame, p.x, y, p.features, p.target)
        x_train, x_test, y_train, y_test = _split(p, options, seed, stratify=False)
        model = LinearRegression().fit(x_train, y_train)
        predicted = model.predict(x_test)
        return {
            "model": "LinearRegression",
            "metrics": {
                "r2": float(m.r2_score(y_test, predicted)),
                "mae": float(m.mean_absolute_error(y_test, predicted)),
                "rmse": float(np.sqrt(m.mean_squared_error(y_test, predicted))),
                "coefficients": dict(zip(p.features, map(float, model.coef_), strict=True)),
                "intercept": float(model.intercept_),
                "train_records": len(x_train),
                "test_records": len(x_test),
            },
            "columns": {"prediction": model.predict(p.x)},
        }
    if pipeline == "clustering":
        k = min(options.n_clusters, len(p.x) - 1)
        scaled = StandardScaler().fit_transform(p.x)
        model = KMeans(
            n_clusters=k, max_iter=options.max_iterations, n_init=10, random_state=seed
        ).fit(scaled)
        labels = model.labels_
        sample = min(len(scaled), 5000)
        found = {
            "n_clusters": k,
            "inertia": float(model.inertia_),
            "silhouette": float(
                m.silhouette_score(scaled, labels, sample_size=sample, random_state=seed)
            ),
            "cluster_sizes": [int(n) for n in np.bincount(labels, minlength=k)],
        }
        if p.y is not None:
            found["adjusted_rand_index"] = float(m.adjusted_rand_score(p.y, labels))
        return {"model": "KMeans", "metrics": found, "columns": {"cluster": labels}}
    forest = IsolationForest(contamination=options.contamination, random_state=seed)
    flags = forest.fit_predict(p.x) == -1
    found = {
        "anomalies": int(flags.sum()),
        "anomaly_rate": float(flags.mean()),
    }
    if p.y is not None:
        truth = np.asarray(p.y).astype(bool)
        found["precision"] = float(m.precision_score(truth, flags, zero_division=0))
        found["recall"] = float(m.recall_score(truth, flags, zero_division=0))
        found["f1_score"] = float(m.f1_score(truth, flags, zero_division=0))
    return {
        "model": "IsolationForest",
        "metrics": found,
        "columns": {"anomaly": flags, "anomaly_score": -forest.score_samples(p.x)},
    }


def write_output(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        frame.write_json(path)
    elif fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)


def register_process_data(registry: HandlerRegistry) -> None:
    @registry.handler(
        "process_data", payload=ProcessDataPayload, estimated_duration=300, permission="write"
    )
    async def process_data(ctx: JobContext, payload: ProcessDataPayload) -> dict[str, Any]:
        import sklearn

        resources = ctx.resources
        started = time.perf_counter()
        options, source, seed = payload.options, payload.data_source, resources.settings.seed
        pipeline = payload.pipeline
        destination = _destination(resources.output_dir, payload.output.destination)

        step = "data_ingestion"
        await ctx.progress(0, f"Reading {source.type} source", step=step)
        if source.type == "file":
            assert source.path is not None
            frame = await asyncio.to_thread(read_file, resources.data_dir, source.path)
        else:
            if source.type == "stream":
                _check_stream(source.stream_id or "", resources)

            async def fetched(count: int) -> None:
                await ctx.progress(10, f"Read {count} events", step=step, processed=count)

            events = await resources.events.read(fetched, limit=options.max_records)
            frame = await asyncio.to_thread(events_frame, events)
            if source.type == "query":
                assert source.query is not None
                frame = await asyncio.to_thread(run_query, frame, source.query)
        total = frame.height
        await ctx.progress(20, f"Ingested {total} records", step=step, processed=total, total=total)

        step = "preprocessing"
        await ctx.progress(20, "Cleaning records", step=step, total=total)
        target = pick_target(frame, options, required=pipeline in ("classification", "regression"))
        frame = await asyncio.to_thread(preprocess, frame, options, target)
        await ctx.progress(
            40, f"{frame.height} records kept", step=step, processed=frame.height, total=total
        )

        step = "feature_engineering"
        await ctx.progress(40, "Building features", step=step, total=frame.height)
        prepared = await asyncio.to_thread(engineer, frame, options, target)
        await ctx.progress(
            60,
            f"{len(prepared.features)} features",
            step=step,
            processed=frame.height,
            total=frame.height,
        )

        step = "model_processing"
        await ctx.progress(60, f"Fitting the {pipeline} model", step=step, total=frame.height)
        fitted = await asyncio.to_thread(model_step, prepared, pipeline, options, seed)
        await ctx.progress(
            85, f"{fitted['model']} fitted", step=step, processed=frame.height, total=frame.height
        )

        step = "post_processing"
        await ctx.progress(85, f"Writing {payload.output.format} output", step=step)
        result = frame.with_columns(
            pl.Series(name, np.asarray(values)) for name, values in fitted["columns"].items()
        )
        path = destination / f"results.{payload.output.format}"
        await asyncio.to_thread(write_output, result, path, payload.output.format)
        url, _ = resources.files.publish(path, resources.settings.report_ttl_seconds)
        sample = (
            result.head(options.sample_size).to_dicts() if payload.output.format == "json" else []
        )
        await ctx.progress(100, "Done", step=step, processed=result.height, total=result.height)
        return ProcessResult(
            summary=ProcessSummary(
                total_records=result.height,
                processing_time=round(time.perf_counter() - started, 3),
                model_version=f"sklearn-{sklearn.__version__}/{fitted['model']}",
                pipeline=pipeline,
                metrics=fitted["metrics"],
            ),
            data=sample,
            output_location=str(path),
            output_url=url,
        ).model_dump()


def _destination(output_dir: Path, destination: str | None) -> Path:
    unique = f"results-{secrets.token_hex(6)}"
    if destination is None:
        return output_dir / "results" / unique
    if "://" in destination:
        raise _invalid(
            "payload.output.destination",
            "Remote destinations are not supported",
            "a folder inside the configured output folder",
            destination,
        )
    try:
        return confined(output_dir, destination) / unique
    except PathOutsideFolder:
        raise _invalid(
            "payload.output.destination",
            "Destination is outside the output folder",
            "a folder inside the configured output folder",
            destination,
        ) from None


def _check_stream(stream_id: str, resources: Any) -> None:
    known = {"retail", *resources.extra.get("stream_ids", ())}
    if stream_id not in known:
        raise JobsProtocolError(
            NOT_FOUND,
            f"Stream {stream_id!r} not found",
            {"stream_id": stream_id, "available": sorted(known)},
        )
