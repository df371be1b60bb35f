"""A region's municipalities and settlements, and a literal matcher over their forms.

The matcher finds the written forms listed in the gazetteer (case- and
ё-insensitive, whole words, longest first).  Morphology beyond the listed forms
is the place extractor's job; this is what routing tables are validated
against and what the extractor falls back on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.paths import default_region, gazetteer_path
from model.text import fold
from model.yaml_source import DataFileError, pydantic_problems, read_yaml

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


class _SettlementSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    forms: list[str] = Field(default_factory=list)


class _MunicipalitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    name: str = Field(min_length=1)
    type: str = Field(min_length=1)
    settlements: list[_SettlementSpec] = Field(min_length=1)


class _RegionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    name: str
    forms: list[str] = Field(default_factory=list)
    centre: str


class _GazetteerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: _RegionSpec
    municipalities: list[_MunicipalitySpec] = Field(min_length=1)


@dataclass(frozen=True)
class Settlement:
    name: str
    kind: str
    municipality: str
    forms: tuple[str, ...]


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str
    type: str
    settlements: tuple[Settlement, ...]


@dataclass(frozen=True)
class PlaceMatch:
    municipality: str
    settlement: str
    start: int
    end: int
    surface: str


class Gazetteer:
    def __init__(self, region_code: str, region_name: str, centre: str, municipalities: list[Municipality]):
        self.region_code = region_code
        self.region_name = region_name
        self.centre = centre
        self.municipalities = {m.code: m for m in municipalities}
        self._form_index: dict[str, Settlement] = {}
        for m in municipalities:
            for s in m.settlements:
                for form in (s.name, *s.forms):
                    self._form_index.setdefault(fold(form), s)
        # Longest forms first so «Малые Ключи» wins over a shorter overlapping form.
        alternatives = sorted(self._form_index, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<!\w)(" + "|".join(re.escape(a) for a in alternatives) + r")(?!\w)",
            re.IGNORECASE,
        )

    def has(self, code: str) -> bool:
        return code in self.municipalities

    def resolve(self, value: str) -> str | None:
        """A municipality code from its code, official name or a settlement form."""
        if value in self.municipalities:
            return value
        key = fold(value)
        for m in self.municipalities.values():
            if fold(m.name) == key:
                return m.code
        settlement = self._form_index.get(key)
        return settlement.municipality if settlement else None

    def find(self, text: str) -> list[PlaceMatch]:
        # Replacing ё keeps the length, so spans found in the copy fit the original.
        searchable = text.replace("ё", "е").replace("Ё", "Е")
        matches = []
        for m in self._pattern.finditer(searchable):
            settlement = self._form_index[fold(m.group(1))]
            matches.append(
                PlaceMatch(
                    municipality=settlement.municipality,
                    settlement=settlement.name,
                    start=m.start(1),
                    end=m.end(1),
                    surface=text[m.start(1) : m.end(1)],
                )
            )
        return matches


def load_gazetteer(path: Path | str | None = None) -> Gazetteer:
    path = Path(path) if path is not None else gazetteer_path(default_region())
    document = read_yaml(path)
    try:
        spec = _GazetteerSpec.model_validate(document)
    except ValidationError as exc:
        raise DataFileError(path, pydantic_problems(exc, document)) from None
    problems: list[str] = []
    municipalities: list[Municipality] = []
    seen_forms: dict[str, str] = {}
    for i, m in enumerate(spec.municipalities):
        where = f"municipalities[{i}] (code {m.code!r})"
        if not _CODE.match(m.code):
            problems.append(f"{where}: code must be lower-case latin, digits, '_'")
        if any(x.code == m.code for x in municipalities):
            problems.append(f"{where}: duplicate municipality code")
        settlements = []
        for s in m.settlements:
            for form in (s.name, *s.forms):
                owner = seen_forms.get(fold(form))
                if owner is not None and owner != m.code:
                    problems.append(
                        f"{where}: form {form!r} is also listed under {owner!r}; "
                        "a form must point at one municipality"
                    )
                seen_forms[fold(form)] = m.code
            settlements.append(
                Settlement(name=s.name, kind=s.kind, municipality=m.code, forms=tuple(s.forms))
            )
        municipalities.append(
            Municipality(code=m.code, name=m.name, type=m.type, settlements=tuple(settlements))
        )
    if spec.region.centre not in {m.code for m in municipalities}:
        problems.append(f"region.centre: {spec.region.centre!r} is not a listed municipality")
    if problems:
        raise DataFileError(path, problems)
    return Gazetteer(spec.region.code, spec.region.name, spec.region.centre, municipalities)
