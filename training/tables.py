"""Reading exported tables (CSV, JSONL, JSON, Parquet, XLSX) row by row.

Every row keeps the number a person would look for: the spreadsheet row for
CSV and XLSX (the header is row 1), the line for JSONL, the position for JSON
arrays and Parquet.  Problems with the file itself come back as issues, never
as exceptions, so one broken file does not hide the others.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet", ".xlsx")


@dataclass(frozen=True)
class RowIssue:
    file: str
    row: int | None
    column: str | None
    reason: str
    severity: str = "error"  # or "warning": the row is kept

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.severity}: {self.reason}"


@dataclass
class RawTable:
    path: str
    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]]
    issues: list[RowIssue]


def read_table(path: Path | str) -> RawTable:
    path = Path(path)
    name = str(path)
    if not path.exists():
        return RawTable(name, [], [], [RowIssue(name, None, None, "file not found")])
    suffix = path.suffix.lower()
    readers = {
        ".csv": _read_csv,
        ".tsv": _read_csv,
        ".jsonl": _read_jsonl,
        ".ndjson": _read_jsonl,
        ".json": _read_json,
        ".parquet": _read_parquet,
        ".xlsx": _read_xlsx,
    }
    reader = readers.get(suffix)
    if reader is None:
        reason = f"unsupported file type {suffix or '(none)'}; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        return RawTable(name, [], [], [RowIssue(name, None, None, reason)])
    table = reader(path)
    if not table.rows and not any(i.severity == "error" for i in table.issues):
        table.issues.append(RowIssue(name, None, None, "file has no data rows"))
    return table


def _decode(path: Path, data: bytes, issues: list[RowIssue]) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    # Exports from Russian office software are often Windows-1251.
    best = from_bytes(data).best()
    if best is None:
        issues.append(
            RowIssue(
                str(path),
                None,
                None,
                f"not UTF-8 (bad byte at offset {utf8_error.start}) and no other encoding fits",
            )
        )
        return None
    issues.append(
        RowIssue(str(path), None, None, f"not UTF-8; decoded as {best.encoding}", severity="warning")
    )
    return str(best)


def _read_csv(path: Path) -> RawTable:
    issues: list[RowIssue] = []
    text = _decode(path, path.read_bytes(), issues)
    if text is None:
        return RawTable(str(path), [], [], issues)
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return RawTable(str(path), [], [], [RowIssue(str(path), None, None, "file is empty")])
    columns = [h.strip() for h in header]
    rows = []
    try:
        for row_number, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(columns):
                issues.append(
                    RowIssue(
                        str(path), row_number, None, f"has {len(values)} fields, header has {len(columns)}"
                    )
                )
                continue
            rows.append((row_number, dict(zip(columns, values, strict=True))))
    except csv.Error as exc:
        issues.append(RowIssue(str(path), reader.line_num, None, f"broken CSV: {exc}"))
    return RawTable(str(path), columns, rows, issues)


def _read_jsonl(path: Path) -> RawTable:
    issues: list[RowIssue] = []
    text = _decode(path, path.read_bytes(), issues)
    if text is None:
        return RawTable(str(path), [], [], issues)
    rows, columns = [], {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            issues.append(
                RowIssue(str(path), line_number, None, f"invalid JSON at character {exc.colno}: {exc.msg}")
            )
            continue
        if not isinstance(record, dict):
            issues.append(RowIssue(str(path), line_number, None, "line is not a JSON object"))
            continue
        columns.update(dict.fromkeys(record))
        rows.append((line_number, record))
    return RawTable(str(path), list(columns), rows, issues)


def _read_json(path: Path) -> RawTable:
    issues: list[RowIssue] = []
    text = _decode(path, path.read_bytes(), issues)
    if text is None:
        return RawTable(str(path), [], [], issues)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        issues.append(
            RowIssue(
                str(path), None, None, f"invalid JSON at line {exc.lineno}, character {exc.colno}: {exc.msg}"
            )
        )
        return RawTable(str(path), [], [], issues)
    if not isinstance(document, list):
        issues.append(RowIssue(str(path), None, None, "a JSON file must hold an array of objects"))
        return RawTable(str(path), [], [], issues)
    rows, columns = [], {}
    for index, record in enumerate(document, start=1):
        if not isinstance(record, dict):
            issues.append(RowIssue(str(path), index, None, "array item is not an object"))
            continue
        columns.update(dict.fromkeys(record))
        rows.append((index, record))
    return RawTable(str(path), list(columns), rows, issues)


def _read_parquet(path: Path) -> RawTable:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        table = pq.read_table(path)
    except (ArrowException, OSError) as exc:
        return RawTable(str(path), [], [], [RowIssue(str(path), None, None, f"cannot read Parquet: {exc}")])
    records = table.to_pylist()
    return RawTable(str(path), table.column_names, [(i, r) for i, r in enumerate(records, start=1)], [])


def _read_xlsx(path: Path) -> RawTable:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many unrelated types for a broken file
        return RawTable(str(path), [], [], [RowIssue(str(path), None, None, f"cannot read XLSX: {exc}")])
    try:
        sheet = workbook.worksheets[0]
        row_iter: Iterator[tuple[Any, ...]] = sheet.iter_rows(values_only=True)
        header = next(row_iter, None)
        if header is None:
            return RawTable(str(path), [], [], [RowIssue(str(path), None, None, "sheet is empty")])
        columns = ["" if h is None else str(h).strip() for h in header]
        rows = []
        for row_number, values in enumerate(row_iter, start=2):
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            rows.append((row_number, dict(zip(columns, values, strict=False))))
        return RawTable(str(path), columns, rows, [])
    finally:
        workbook.close()
