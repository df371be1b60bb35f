"""Routing tables: topic × category × municipality → the responsible body.

A rule names a topic or a category, optionally a municipality, and a body.
The most specific matching rule wins (category beats topic, a named
municipality beats any municipality).  A rule whose body is `@municipality`
sends the message to the administration of the municipality it mentions and is
skipped when no municipality is known, so the next, broader rule decides.
Every topic must end in a rule that needs no municipality: nothing is unroutable
by construction, though low-specificity routes are reported as fallbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from model.gazetteer import Gazetteer, load_gazetteer
from model.paths import default_region, routing_path
from model.taxonomy import Taxonomy, load_taxonomy
from model.yaml_source import DataFileError, pydantic_problems, read_yaml

MUNICIPALITY_BODY = "@municipality"


class BodyType(StrEnum):
    REGIONAL = "ОИГВ"  # regional executive body (ministry, agency, inspection)
    MUNICIPAL = "ОМСУ"  # local self-government (municipal administration)
    ORGANISATION = "организация"  # utility, operator, state institution


class _BodySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: BodyType
    municipality: str | None = None


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str | None = None
    category: str | None = None
    municipality: str | None = None
    body: str = Field(min_length=1)
    note: str = ""

    @model_validator(mode="after")
    def _topic_or_category(self) -> _RuleSpec:
        if (self.topic is None) == (self.category is None):
            raise ValueError("a rule names exactly one of topic or category")
        return self


class _RoutingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str
    name: str
    gazetteer: str
    default_body: str
    bodies: list[_BodySpec] = Field(min_length=1)
    rules: list[_RuleSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Body:
    id: str
    name: str
    type: BodyType
    municipality: str | None = None


@dataclass(frozen=True)
class Rule:
    index: int
    topic: str
    category: str | None
    municipality: str | None
    body: str
    note: str = ""

    @property
    def specificity(self) -> int:
        return 2 * (self.category is not None) + (self.municipality is not None)

    def describe(self) -> str:
        parts = [f"category={self.category}" if self.category else f"topic={self.topic}"]
        if self.municipality:
            parts.append(f"municipality={self.municipality}")
        return f"rule {self.index}: " + ", ".join(parts) + f" -> {self.body}"


@dataclass(frozen=True)
class Route:
    body: Body
    rule: str
    specificity: int
    fallback: bool


class RoutingTable:
    def __init__(
        self,
        region: str,
        name: str,
        bodies: dict[str, Body],
        rules: list[Rule],
        default_body: str,
        taxonomy: Taxonomy,
        gazetteer: Gazetteer,
    ):
        self.region = region
        self.name = name
        self.bodies = bodies
        self.rules = rules
        self.default_body = default_body
        self.taxonomy = taxonomy
        self.gazetteer = gazetteer
        self._administration = {
            b.municipality: b for b in bodies.values() if b.type == BodyType.MUNICIPAL and b.municipality
        }

    def administration_of(self, municipality: str) -> Body | None:
        return self._administration.get(municipality)

    def route(self, topic: str, category: str | None = None, municipality: str | None = None) -> Route:
        """The responsible body; falls back to the region's default body for unknown labels."""
        candidates = [
            r
            for r in self.rules
            if (r.category == category if r.category else r.topic == topic)
            and r.municipality in (None, municipality)
        ]
        candidates.sort(key=lambda r: (-r.specificity, r.index))
        for rule in candidates:
            if rule.body == MUNICIPALITY_BODY:
                body = self.administration_of(municipality) if municipality else None
                if body is None:
                    continue
            else:
                body = self.bodies[rule.body]
            # A topic-wide rule with a fixed body is the «we don't know better» route.
            fallback = rule.category is None and rule.municipality is None and rule.body != MUNICIPALITY_BODY
            return Route(body=body, rule=rule.describe(), specificity=rule.specificity, fallback=fallback)
        return Route(body=self.bodies[self.default_body], rule="default body", specificity=-1, fallback=True)


def load_routing_table(
    path: Path | str | None = None, taxonomy: Taxonomy | None = None, gazetteer: Gazetteer | None = None
) -> RoutingTable:
    path = Path(path) if path is not None else routing_path(default_region())
    document = read_yaml(path)
    try:
        spec = _RoutingSpec.model_validate(document)
    except ValidationError as exc:
        raise DataFileError(path, pydantic_problems(exc, document)) from None
    taxonomy = taxonomy or load_taxonomy()
    gazetteer = gazetteer or load_gazetteer(path.parent / spec.gazetteer)

    problems: list[str] = []
    bodies: dict[str, Body] = {}
    for i, b in enumerate(spec.bodies):
        where = f"bodies[{i}] (id {b.id!r})"
        if b.id in bodies:
            problems.append(f"{where}: duplicate body id")
        if b.municipality is not None and not gazetteer.has(b.municipality):
            problems.append(f"{where}: unknown municipality {b.municipality!r}")
        if b.type == BodyType.MUNICIPAL and b.municipality is None:
            problems.append(f"{where}: a body of type ОМСУ names its municipality")
        bodies[b.id] = Body(id=b.id, name=b.name, type=b.type, municipality=b.municipality)
    if spec.default_body not in bodies:
        problems.append(f"default_body: unknown body {spec.default_body!r}")

    rules: list[Rule] = []
    keys: dict[tuple, int] = {}
    for i, r in enumerate(spec.rules):
        where = f"rules[{i}]"
        topic = r.topic
        if r.category is not None:
            if not taxonomy.has_category(r.category):
                problems.append(f"{where}: unknown category {r.category!r}")
                continue
            topic = taxonomy.category(r.category).topic
        elif not taxonomy.has_topic(r.topic):
            problems.append(f"{where}: unknown topic {r.topic!r}")
            continue
        if r.municipality is not None and not gazetteer.has(r.municipality):
            problems.append(f"{where}: unknown municipality {r.municipality!r}")
        if r.body != MUNICIPALITY_BODY and r.body not in bodies:
            problems.append(f"{where}: unknown body {r.body!r}")
        if r.body == MUNICIPALITY_BODY and r.municipality is not None:
            problems.append(f"{where}: '@municipality' with a fixed municipality; name the body")
        key = (r.topic, r.category, r.municipality, r.body == MUNICIPALITY_BODY)
        if key in keys:
            problems.append(f"{where}: same match as rules[{keys[key]}]")
        keys[key] = i
        rules.append(
            Rule(
                index=i,
                topic=topic,
                category=r.category,
                municipality=r.municipality,
                body=r.body,
                note=r.note,
            )
        )

    for topic in taxonomy.topic_codes:
        if not any(
            r.topic == topic and r.category is None and r.municipality is None and r.body != MUNICIPALITY_BODY
            for r in rules
        ):
            problems.append(f"topic {topic!r}: no fallback rule (topic only, no municipality, a named body)")
    if any(r.body == MUNICIPALITY_BODY for r in rules):
        for code in gazetteer.municipalities:
            if not any(b.municipality == code and b.type == BodyType.MUNICIPAL for b in bodies.values()):
                problems.append(f"municipality {code!r}: no ОМСУ body for '@municipality' rules")
    if problems:
        raise DataFileError(path, problems)
    return RoutingTable(spec.region, spec.name, bodies, rules, spec.default_body, taxonomy, gazetteer)
