"""Tools of the data-analysis agent: pandas over one CSV file, and a chart drawn with matplotlib.

The CSV is the file named by `DATA_ANALYSIS_CSV`, or the sample `sample/sales.csv` beside
this file. Each tool computes its numbers with pandas and returns them as short text, so the
agent answers with numbers that were computed, not guessed. Bad arguments (an unknown column,
an aggregation that needs numbers on a text column) raise `ValueError` naming the columns that
do exist, so the model can correct itself.
"""

# No `from __future__ import annotations`: pydantic resolves these models' annotations at
# class creation, and this file may be loaded by path, outside sys.modules.
import difflib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmflow import ConfigError

try:
    import pandas as pd
    from matplotlib.figure import Figure
except ImportError as e:  # an optional extra: say how to get it
    raise ConfigError(
        f"the data-analysis template needs pandas and matplotlib ({e.name} is missing):"
        " pip install 'llmflow[analysis]'"
    ) from e

SAMPLE_CSV = Path(__file__).parent / "sample" / "sales.csv"
MAX_ROWS_SHOWN = 10
"""Rows a tool returns at most: enough to read, short enough for a small model's context."""

Aggregation = Literal["sum", "mean", "count", "min", "max"]
Operator = Literal["==", "!=", ">", ">=", "<", "<="]


def csv_path() -> Path:
    """The CSV the tools read: `DATA_ANALYSIS_CSV`, else the sample."""
    configured = os.environ.get("DATA_ANALYSIS_CSV")
    return Path(configured) if configured else SAMPLE_CSV


def load_data() -> pd.DataFrame:
    """The CSV as a data frame (read once per file version)."""
    path = csv_path()
    try:
        stat = path.stat()
    except OSError as e:
        raise ValueError(f"cannot read the CSV {path}: {e.strerror}; set DATA_ANALYSIS_CSV") from e
    return _read(path, stat.st_mtime_ns, stat.st_size).copy()


@lru_cache(maxsize=4)
def _read(path: Path, mtime_ns: int, size: int) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a readable CSV file: {e}") from e
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _column(frame: pd.DataFrame, name: str) -> str:
    """`name` as a column of `frame`, forgiving case and spaces; else a clear error."""
    columns = [str(c) for c in frame.columns]
    wanted = (name or "").strip()
    if wanted in columns:
        return wanted
    by_key = {re.sub(r"[\s_]+", "_", c.lower()): c for c in columns}
    key = re.sub(r"[\s_]+", "_", wanted.lower())
    if key in by_key:
        return by_key[key]
    close = difflib.get_close_matches(key, list(by_key), n=1)
    hint = f" (did you mean {by_key[close[0]]!r}?)" if close else ""
    raise ValueError(f"no column {wanted!r}{hint}: the columns are {', '.join(columns)}")


def _numeric(frame: pd.DataFrame, column: str, agg: str) -> None:
    if agg != "count" and not pd.api.types.is_numeric_dtype(frame[column]):
        numeric = [str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        raise ValueError(
            f"{agg} needs a numeric column and {column!r} holds text: use count, or one of"
            f" {', '.join(numeric)}"
        )


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def describe_data() -> str:
    """Describe the data: number of rows, each column with its type, and for numeric
    columns the minimum, mean and maximum. Call this first."""
    frame = load_data()
    lines = [f"{len(frame)} rows from {csv_path().name}. Columns:"]
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series):
            lines.append(
                f"- {name} (number): min {_number(float(series.min()))},"
                f" mean {_number(float(series.mean()))}, max {_number(float(series.max()))}"
            )
        else:
            values = series.dropna().astype(str).unique()
            shown = ", ".join(values[:6]) + (", ..." if len(values) > 6 else "")
            lines.append(f"- {name} (text, {len(values)} values): {shown}")
    return "\n".join(lines)


def _filtered(frame: pd.DataFrame, column: str, op: Operator, value: str) -> pd.DataFrame:
    name = _column(frame, column)
    series = frame[name]
    target: Any
    if pd.api.types.is_numeric_dtype(series):
        try:
            target = float(value)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{name!r} holds numbers: compare it with a number, not {value!r}"
            ) from e
    else:
        if op not in ("==", "!="):
            raise ValueError(f"{name!r} holds text: use == or != to filter it")
        series = series.astype(str).str.strip().str.lower()
        target = str(value).strip().lower()
    masks = {
        "==": series == target,
        "!=": series != target,
        ">": series > target,
        ">=": series >= target,
        "<": series < target,
        "<=": series <= target,
    }
    if op not in masks:
        raise ValueError(f"unknown operator {op!r}: use one of {', '.join(masks)}")
    selected: pd.DataFrame = frame.loc[masks[op]]
    return selected


def filter_rows(column: str, op: Operator, value: str) -> str:
    """Rows where `column op value` holds (e.g. region == North, units > 20): how many, and
    the first few."""
    frame = load_data()
    rows = _filtered(frame, column, op, value)
    if rows.empty:
        return f"No rows where {column} {op} {value}."
    shown = rows.head(MAX_ROWS_SHOWN).to_string(index=False)
    more = f"\n(first {MAX_ROWS_SHOWN} of {len(rows)})" if len(rows) > MAX_ROWS_SHOWN else ""
    return f"{len(rows)} rows where {column} {op} {value}:\n{shown}{more}"


class Aggregate(BaseModel):
    """One aggregation: a numeric column summarised per group (or over all rows)."""

    column: str = Field(description="The column to aggregate, e.g. revenue_eur.")
    agg: Aggregation = Field(description="How: sum, mean, count, min or max.")
    group_by: str | None = Field(
        default=None, description="A column to group by, e.g. region; none for all rows."
    )


def aggregate_table(spec: Aggregate) -> "pd.Series[Any]":
    """The aggregation's values, largest first: one per group, or one named 'all rows'."""
    frame = load_data()
    column = _column(frame, spec.column)
    _numeric(frame, column, spec.agg)
    if spec.group_by:
        group = _column(frame, spec.group_by)
        result = frame.groupby(group)[column].agg(spec.agg)
        return result.sort_values(ascending=False)
    return pd.Series({"all rows": frame[column].agg(spec.agg)}, name=column)


def group_and_aggregate(column: str, agg: Aggregation, group_by: str | None = None) -> str:
    """Aggregate a column (sum, mean, count, min or max), per group of another column
    (e.g. revenue_eur sum by region) or over all rows (group_by omitted)."""
    frame = load_data()
    spec = Aggregate(
        column=_column(frame, column),
        agg=agg,
        group_by=_column(frame, group_by) if group_by else None,
    )
    values = aggregate_table(spec)
    title = f"{spec.agg} of {spec.column}" + (f" by {spec.group_by}" if spec.group_by else "")
    lines = [f"{key}: {_number(_plain(v))}" for key, v in values.head(MAX_ROWS_SHOWN * 2).items()]
    return title + ":\n" + "\n".join(lines)


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python int or float, for formatting and JSON."""
    return value.item() if hasattr(value, "item") else value


class Chart(BaseModel):
    """A bar or line chart of one aggregation."""

    column: str = Field(description="The column to aggregate, e.g. revenue_eur.")
    agg: Aggregation = Field(description="How: sum, mean, count, min or max.")
    group_by: str = Field(description="The column along the x axis, e.g. region or month.")
    kind: Literal["bar", "line"] = Field(default="bar", description="bar or line.")


def draw_chart(chart: Chart, path: Path) -> Path:
    """Draw `chart` as a PNG at `path` (matplotlib's Agg renderer; no display needed)."""
    values = aggregate_table(Aggregate(column=chart.column, agg=chart.agg, group_by=chart.group_by))
    if chart.kind == "line":
        values = values.sort_index()  # a line runs along its x axis, e.g. months in order
    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.subplots()
    labels = [str(k) for k in values.index]
    numbers = [float(_plain(v)) for v in values.to_numpy()]
    if chart.kind == "line":
        axes.plot(labels, numbers, marker="o")
    else:
        axes.bar(labels, numbers)
    axes.set_title(f"{chart.agg} of {chart.column} by {chart.group_by}")
    axes.set_xlabel(chart.group_by)
    axes.set_ylabel(f"{chart.agg}({chart.column})")
    axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def profile(item: Any = None) -> str:
    """The data's description for the agent's instructions (the item is not needed)."""
    return describe_data()


class Answer(BaseModel):
    """The analyst's answer."""

    answer: str = Field(
        max_length=300, description="The answer, quoting the numbers the tools computed."
    )
    chart: Chart | None = Field(default=None, description="A chart that shows the answer.")


class ChartResult(BaseModel):
    """Where the chart was drawn, or why it was not."""

    path: str | None = None
    """The PNG, relative to the run's output folder."""
    error: str | None = None


def chart_for(payload: dict[str, Any], ctx: Any) -> ChartResult:
    """Draw the chart the analyst suggested into `charts/<name>.png` in the run's output
    folder. A chart the data cannot draw (an unknown column, text summed) is reported in
    `error`, and the answer stands."""
    answer = Answer.model_validate(payload["answer"])
    if answer.chart is None:
        return ChartResult(error="the analyst suggested no chart")
    out_dir: Path | None = getattr(ctx, "out_dir", None)
    if out_dir is None:
        return ChartResult(error="the run has no output folder")
    name = re.sub(r"[^\w-]+", "-", str(payload.get("name") or "chart")).strip("-") or "chart"
    relative = Path("charts") / f"{name}.png"
    try:
        draw_chart(answer.chart, out_dir / relative)
    except ValueError as e:
        return ChartResult(error=str(e))
    return ChartResult(path=relative.as_posix())
