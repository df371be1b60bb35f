"""Turning raw table rows into validated, labelled messages.

A column mapping says which column of an export holds which field; labels are
accepted as codes or as the taxonomy's Russian names.  A row with an error is
rejected with every reason listed; a row with a warning is kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model.gazetteer import Gazetteer
from model.taxonomy import Taxonomy
from training.tables import RawTable, RowIssue, read_table

FLAGS = ("incident", "conflict", "misinformation")
SOURCES = ("pos", "vk", "telegram", "ok", "other")
FIELDS = ("id", "text", "topic", "category", *FLAGS, "source", "municipality", "executor", "created_at")
MAX_TEXT_CHARS = 20_000

_TRUE = {"1", "true", "yes", "y", "да", "д", "+", "истина"}
_FALSE = {"0", "false", "no", "n", "нет", "н", "-", "ложь"}

# ПОС-style exports name their columns in Russian; these are the usual headers.
PRESET_MAPPINGS: dict[str, dict[str, str]] = {
    "tsur": {f: f for f in FIELDS},
    "pos": {
        "id": "Номер обращения",
        "text": "Текст обращения",
        "topic": "Тема",
        "category": "Подтема",
        "municipality": "Муниципальное образование",
        "executor": "Исполнитель",
        "created_at": "Дата поступления",
        "source": "Источник",
    },
}
SOURCE_ALIASES = {
    "госуслуги": "pos",
    "пос": "pos",
    "платформа обратной связи": "pos",
    "gosuslugi": "pos",
    "вконтакте": "vk",
    "вк": "vk",
    "vkontakte": "vk",
    "телеграм": "telegram",
    "tg": "telegram",
    "одноклассники": "ok",
    "ок": "ok",
    "odnoklassniki": "ok",
}


@dataclass
class LabelledMessage:
    id: str
    text: str
    topic: str | None = None
    category: str | None = None
    incident: int | None = None
    conflict: int | None = None
    misinformation: int | None = None
    source: str | None = None
    municipality: str | None = None
    executor: str | None = None
    created_at: str | None = None
    split: str | None = None
    origin: str = ""  # file and row it came from
    augmented_from: str | None = None

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        return {k: v for k, v in record.items() if v is not None and k != "origin"}


@dataclass
class ColumnMapping:
    """Canonical field → column name in the file."""

    columns: dict[str, str]
    name: str = "custom"

    @classmethod
    def load(cls, spec: str | None) -> ColumnMapping:
        """A preset name (`tsur`, `pos`), a YAML file, or `field=Column,field=Column`."""
        if spec is None or spec == "tsur":
            return cls(dict(PRESET_MAPPINGS["tsur"]), "tsur")
        if spec in PRESET_MAPPINGS:
            return cls(dict(PRESET_MAPPINGS[spec]), spec)
        if Path(spec).suffix in (".yaml", ".yml"):
            document = yaml.safe_load(Path(spec).read_text(encoding="utf-8")) or {}
            columns = document.get("columns", document)
            name = spec
        else:
            columns = {}
            for pair in spec.split(","):
                field_name, sep, column = pair.partition("=")
                if not sep:
                    raise ValueError(f"mapping {pair!r}: expected field=Column")
                columns[field_name.strip()] = column.strip()
            name = "inline"
        if not isinstance(columns, dict):
            raise ValueError(f"mapping {spec}: expected field: Column pairs")
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise ValueError(f"mapping {spec}: unknown field(s) {unknown}; known: {list(FIELDS)}")
        if "text" not in columns:
            raise ValueError(f"mapping {spec}: the 'text' field must be mapped")
        return cls({k: str(v) for k, v in columns.items()}, name)


@dataclass
class ReadResult:
    messages: list[LabelledMessage] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # original rows + reasons
    issues: list[RowIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[RowIssue]:
        return [i for i in self.issues if i.severity == "error"]

    def extend(self, other: ReadResult) -> None:
        self.messages.extend(other.messages)
        self.rejected.extend(other.rejected)
        self.issues.extend(other.issues)


class RowValidator:
    def __init__(self, taxonomy: Taxonomy, gazetteer: Gazetteer | None = None, require_labels: bool = True):
        self.taxonomy = taxonomy
        self.gazetteer = gazetteer
        self.require_labels = require_labels

    def read_file(self, path: Path | str, mapping: ColumnMapping, split: str | None = None) -> ReadResult:
        table = read_table(path)
        result = ReadResult(issues=list(table.issues))
        if not table.rows:
            return result
        text_column = mapping.columns["text"]
        if text_column not in table.columns:
            result.issues.append(
                RowIssue(
                    table.path,
                    None,
                    text_column,
                    f"the text column is not in the file; columns present: {table.columns}",
                )
            )
            return result
        missing = [
            f"{f} → {c!r}" for f, c in mapping.columns.items() if c not in table.columns and f != "text"
        ]
        if missing and mapping.name != "tsur":
            result.issues.append(
                RowIssue(
                    table.path,
                    None,
                    None,
                    f"mapped column(s) not in the file, left empty: {', '.join(missing)}",
                    severity="warning",
                )
            )
        for row_number, raw in table.rows:
            self._read_row(table, row_number, raw, mapping, split, result)
        return result

    def _read_row(
        self,
        table: RawTable,
        row_number: int,
        raw: dict[str, Any],
        mapping: ColumnMapping,
        split: str | None,
        result: ReadResult,
    ) -> None:
        issues: list[RowIssue] = []

        def problem(column_field: str, reason: str, severity: str = "error") -> None:
            column = mapping.columns.get(column_field, column_field)
            issues.append(RowIssue(table.path, row_number, column, reason, severity))

        def cell(field_name: str) -> str | None:
            column = mapping.columns.get(field_name)
            if column is None or column not in raw:
                return None
            return _as_text(raw[column])

        text = cell("text")
        if text is None:
            problem("text", "empty text")
        elif len(text) > MAX_TEXT_CHARS:
            problem("text", f"text has {len(text)} characters, more than {MAX_TEXT_CHARS}")

        topic = None
        topic_value = cell("topic")
        if topic_value is not None:
            topic = self.taxonomy.resolve_topic(topic_value)
            if topic is None:
                problem(
                    "topic", f"unknown topic {topic_value!r}; known: {', '.join(self.taxonomy.topic_codes)}"
                )
        category = None
        category_value = cell("category")
        if category_value is not None:
            found = self.taxonomy.resolve_category(category_value, topic)
            if len(found) == 1:
                category = found[0]
                inferred = self.taxonomy.category(category).topic
                if topic is None and topic_value is None:
                    topic = inferred
            elif not found:
                elsewhere = self.taxonomy.resolve_category(category_value)
                if topic is not None and elsewhere:
                    problem(
                        "category",
                        f"category {category_value!r} belongs to topic "
                        f"{self.taxonomy.category(elsewhere[0]).topic!r}, "
                        f"not {topic!r}",
                    )
                else:
                    problem("category", f"unknown category {category_value!r}")
            else:
                problem(
                    "category",
                    f"category {category_value!r} is ambiguous without a topic: {', '.join(found)}",
                )
        if self.require_labels and topic is None and topic_value is None:
            problem("topic", "missing topic label")

        flags: dict[str, int | None] = {}
        for flag in FLAGS:
            value = cell(flag)
            flags[flag] = None
            if value is None:
                continue
            parsed = _as_flag(value)
            if parsed is None:
                problem(flag, f"flag must be 0/1, true/false or да/нет, got {value!r}")
            flags[flag] = parsed

        source = None
        source_value = cell("source")
        if source_value is not None:
            source = _as_source(source_value)
            if source is None:
                problem(
                    "source",
                    f"unknown source {source_value!r}, kept as 'other'; known: {', '.join(SOURCES)}",
                    severity="warning",
                )
                source = "other"

        municipality = None
        municipality_value = cell("municipality")
        if municipality_value is not None and self.gazetteer is not None:
            municipality = self.gazetteer.resolve(municipality_value)
            if municipality is None:
                problem("municipality", f"unknown municipality {municipality_value!r}")
        elif municipality_value is not None:
            municipality = municipality_value

        message_id = cell("id") or f"{Path(table.path).stem}-{row_number}"
        result.issues.extend(issues)
        if any(i.severity == "error" for i in issues):
            result.rejected.append(
                {
                    "file": table.path,
                    "row": row_number,
                    "reasons": [str(i) for i in issues if i.severity == "error"],
                    "record": {k: _json_safe(v) for k, v in raw.items()},
                }
            )
            return
        result.messages.append(
            LabelledMessage(
                id=message_id,
                text=text,
                topic=topic,
                category=category,
                source=source,
                municipality=municipality,
                executor=cell("executor"),
                created_at=cell("created_at"),
                split=split,
                origin=f"{table.path}:{row_number}",
                **flags,
            )
        )


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _as_flag(value: str) -> int | None:
    folded = value.strip().casefold()
    if folded in _TRUE:
        return 1
    if folded in _FALSE:
        return 0
    try:
        number = float(folded)
    except ValueError:
        return None
    return int(number) if number in (0.0, 1.0) else None


def _as_source(value: str) -> str | None:
    folded = value.strip().casefold()
    if folded in SOURCES:
        return folded
    return SOURCE_ALIASES.get(folded)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return str(value)
