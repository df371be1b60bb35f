"""The ЦУР taxonomy: topics and the categories inside them, loaded from YAML.

A region extends the bundled taxonomy with a file that says
`extends: <path>` and lists only new topics or new categories of existing
topics; the mandatory sector blocks can never be removed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.paths import default_taxonomy_path
from model.text import fold
from model.yaml_source import DataFileError, pydantic_problems, read_yaml

MANDATORY_TOPICS = (
    "health",
    "education",
    "social",
    "housing",
    "waste",
    "roads",
    "transport",
    "energy",
    "other",
)
MIN_CATEGORIES_PER_TOPIC = 3
_TOPIC_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_CATEGORY_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")


class _CategorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    name: str = Field(min_length=1)
    description: str = ""
    catch_all: bool = False
    deadline_days: int | None = Field(default=None, gt=0)


class _TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    name: str | None = None
    description: str = ""
    deadline_days: int | None = Field(default=None, gt=0)
    categories: list[_CategorySpec] = Field(default_factory=list)


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deadline_days: int = Field(default=30, gt=0)
    incident_deadline_hours: int = Field(default=4, gt=0)


class _TaxonomySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    extends: str | None = None
    defaults: _Defaults | None = None
    topics: list[_TopicSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    topic: str
    description: str = ""
    catch_all: bool = False
    deadline_days: int | None = None


@dataclass(frozen=True)
class Topic:
    code: str
    name: str
    description: str
    categories: tuple[Category, ...]
    deadline_days: int | None = None


@dataclass
class Taxonomy:
    topics: tuple[Topic, ...]
    deadline_days: int = 30
    incident_deadline_hours: int = 4
    sources: tuple[str, ...] = ()
    _by_topic: dict[str, Topic] = field(init=False, repr=False)
    _by_category: dict[str, Category] = field(init=False, repr=False)
    _topic_lookup: dict[str, str] = field(init=False, repr=False)
    _category_lookup: dict[str, list[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_topic = {t.code: t for t in self.topics}
        self._by_category = {c.code: c for t in self.topics for c in t.categories}
        self._topic_lookup = {}
        for t in self.topics:
            self._topic_lookup[fold(t.code)] = t.code
            self._topic_lookup[fold(t.name)] = t.code
        # Category names repeat across topics («прочее по направлению»), so a
        # name may stand for several codes; the topic settles which one.
        self._category_lookup = {}
        for c in self._by_category.values():
            for key in {fold(c.code), fold(c.name)}:
                self._category_lookup.setdefault(key, []).append(c.code)

    @property
    def topic_codes(self) -> list[str]:
        return [t.code for t in self.topics]

    @property
    def category_codes(self) -> list[str]:
        return [c.code for t in self.topics for c in t.categories]

    def topic(self, code: str) -> Topic:
        return self._by_topic[code]

    def category(self, code: str) -> Category:
        return self._by_category[code]

    def has_topic(self, code: str) -> bool:
        return code in self._by_topic

    def has_category(self, code: str) -> bool:
        return code in self._by_category

    def catch_all(self, topic: str) -> Category:
        return next(c for c in self._by_topic[topic].categories if c.catch_all)

    def resolve_topic(self, value: str) -> str | None:
        """A topic code from its code or Russian name, in any case; None if unknown."""
        return self._topic_lookup.get(fold(value))

    def resolve_category(self, value: str, topic: str | None = None) -> list[str]:
        """Category codes matching a code or Russian name, narrowed to `topic` if given.

        Also accepts the bare slug inside a known topic («heating» with topic housing).
        """
        key = fold(value)
        found = list(self._category_lookup.get(key, []))
        if topic is not None:
            found = [c for c in found if self._by_category[c].topic == topic]
            if not found and f"{topic}.{key}" in self._by_category:
                found = [f"{topic}.{key}"]
        return found

    def deadline_days_for(self, category: str) -> int:
        cat = self._by_category[category]
        if cat.deadline_days:
            return cat.deadline_days
        return self._by_topic[cat.topic].deadline_days or self.deadline_days

    def labels_dict(self) -> dict[str, Any]:
        """The part that a trained model depends on: codes and their structure."""
        return {
            "topics": [{"code": t.code, "categories": [c.code for c in t.categories]} for t in self.topics]
        }

    @property
    def hash(self) -> str:
        """Changes when a code is added, removed or moved; not when a description changes."""
        canonical = json.dumps(self.labels_dict(), ensure_ascii=False, sort_keys=True)
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "defaults": {
                "deadline_days": self.deadline_days,
                "incident_deadline_hours": self.incident_deadline_hours,
            },
            "topics": [
                {
                    "code": t.code,
                    "name": t.name,
                    "description": t.description,
                    "categories": [
                        {
                            "code": c.code,
                            "name": c.name,
                            "description": c.description,
                            "catch_all": c.catch_all,
                            "deadline_days": self.deadline_days_for(c.code),
                        }
                        for c in t.categories
                    ],
                }
                for t in self.topics
            ],
        }


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Load, merge `extends` chains and validate; raises DataFileError listing every problem."""
    path = Path(path) if path is not None else default_taxonomy_path()
    specs = _read_chain(path.resolve(), seen=[])
    return _build(specs)


def _read_chain(path: Path, seen: list[Path]) -> list[tuple[Path, _TaxonomySpec]]:
    if path in seen:
        chain = " -> ".join(str(p) for p in [*seen, path])
        raise DataFileError(path, [f"extends: circular chain {chain}"])
    document = read_yaml(path)
    try:
        spec = _TaxonomySpec.model_validate(document)
    except ValidationError as exc:
        raise DataFileError(path, pydantic_problems(exc, document)) from None
    chain: list[tuple[Path, _TaxonomySpec]] = []
    if spec.extends:
        base = (path.parent / spec.extends).resolve()
        chain = _read_chain(base, [*seen, path])
    return [*chain, (path, spec)]


def _build(specs: list[tuple[Path, _TaxonomySpec]]) -> Taxonomy:
    topics: dict[str, dict[str, Any]] = {}
    defaults = _Defaults()
    for path, spec in specs:
        problems: list[str] = []
        if spec.defaults is not None:
            defaults = spec.defaults
        for ti, t in enumerate(spec.topics):
            where = f"topics[{ti}] (code {t.code!r})"
            if not _TOPIC_CODE.match(t.code):
                problems.append(f"{where}: topic code must be lower-case latin, digits, '_'")
                continue
            entry = topics.get(t.code)
            if entry is None:
                if not t.name:
                    problems.append(f"{where}: a new topic needs a name")
                    continue
                entry = {"spec": t, "categories": {}}
                topics[t.code] = entry
            elif t.name and t.name != entry["spec"].name:
                problems.append(f"{where}: cannot rename topic {entry['spec'].name!r}")
            for ci, c in enumerate(t.categories):
                cwhere = f"{where}.categories[{ci}] (code {c.code!r})"
                topic_part, _, slug = c.code.partition(".")
                if topic_part != t.code or not _CATEGORY_SLUG.match(slug):
                    problems.append(f"{cwhere}: category code must be '{t.code}.<slug>'")
                elif c.code in entry["categories"]:
                    problems.append(f"{cwhere}: duplicate category code")
                else:
                    entry["categories"][c.code] = c
        if problems:
            raise DataFileError(path, problems)

    problems = []
    for code in MANDATORY_TOPICS:
        if code not in topics:
            problems.append(f"mandatory topic {code!r} is missing")
    built: list[Topic] = []
    names_seen: dict[str, str] = {}
    for code, entry in topics.items():
        spec: _TopicSpec = entry["spec"]
        cats = entry["categories"]
        if fold(spec.name) in names_seen:
            problems.append(
                f"topic {code!r}: name {spec.name!r} already used by {names_seen[fold(spec.name)]!r}"
            )
        names_seen[fold(spec.name)] = code
        if len(cats) < MIN_CATEGORIES_PER_TOPIC:
            problems.append(
                f"topic {code!r}: has {len(cats)} categories, needs at least {MIN_CATEGORIES_PER_TOPIC}"
            )
        catch_alls = [c.code for c in cats.values() if c.catch_all]
        if len(catch_alls) != 1:
            problems.append(
                f"topic {code!r}: needs exactly one catch_all category, has {catch_alls or 'none'}"
            )
        cat_names: dict[str, str] = {}
        for c in cats.values():
            if fold(c.name) in cat_names:
                problems.append(
                    f"category {c.code!r}: name {c.name!r} already used by {cat_names[fold(c.name)]!r}"
                )
            cat_names[fold(c.name)] = c.code
        built.append(
            Topic(
                code=code,
                name=spec.name or code,
                description=spec.description,
                deadline_days=spec.deadline_days,
                categories=tuple(
                    Category(
                        code=c.code,
                        name=c.name,
                        topic=code,
                        description=c.description,
                        catch_all=c.catch_all,
                        deadline_days=c.deadline_days,
                    )
                    for c in cats.values()
                ),
            )
        )
    if problems:
        raise DataFileError(specs[-1][0], problems)
    return Taxonomy(
        topics=tuple(built),
        deadline_days=defaults.deadline_days,
        incident_deadline_hours=defaults.incident_deadline_hours,
        sources=tuple(str(p) for p, _ in specs),
    )
