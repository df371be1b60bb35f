import pytest

from model.routing import BodyType, load_routing_table
from model.yaml_source import DataFileError
from tests.conftest import DATA

ROUTING = DATA / "routing" / "olkhovskaya.yaml"


@pytest.fixture(scope="module")
def table(taxonomy):
    return load_routing_table(ROUTING, taxonomy=taxonomy)


def test_demo_region_has_municipalities_and_all_body_types(table):
    assert len(table.gazetteer.municipalities) >= 10
    types = {b.type for b in table.bodies.values()}
    assert types == {BodyType.REGIONAL, BodyType.MUNICIPAL, BodyType.ORGANISATION}
    for code in table.gazetteer.municipalities:
        assert table.administration_of(code) is not None


@pytest.mark.parametrize(
    "topic, category, municipality, body, fallback",
    [
        ("housing", "housing.heating", "olkhovsk", "teploset", False),  # category × place
        ("housing", "housing.heating", "kamenka", "adm_kamenka", False),  # @municipality
        ("housing", "housing.heating", None, "minzhkh", True),  # topic fallback
        ("housing", "housing.capital_repair", "kamenka", "fkr", False),  # category beats place
        ("transport", "transport.schedule", "olkhovsk", "gortrans", False),  # topic × place
        ("transport", "transport.driver_conduct", "olkhovsk", "gortrans", False),
        ("transport", "transport.driver_conduct", "sosnovka", "avtotrans", False),
        ("energy", "energy.gas_supply", "sosnovka", "oblgaz", False),
        ("other", "other.culture_sport", None, "mincult", False),  # second category rule
        ("other", "other.culture_sport", "zarechny", "adm_zarechny", False),
        ("health", None, None, "minzdrav", True),
    ],
)
def test_most_specific_rule_decides(table, topic, category, municipality, body, fallback):
    route = table.route(topic, category, municipality)
    assert route.body.id == body
    assert route.fallback is fallback


def test_every_category_everywhere_is_routable(table, taxonomy):
    places = [None, *table.gazetteer.municipalities]
    for category in taxonomy.category_codes:
        topic = taxonomy.category(category).topic
        for place in places:
            route = table.route(topic, category, place)
            assert route.body.id in table.bodies
            assert route.rule != "default body"


def test_unknown_topic_goes_to_the_default_body(table):
    assert table.route("tourism").body.id == "cur"


def _broken(write, replace_from, replace_to, gazetteer_dir):
    text = ROUTING.read_text(encoding="utf-8").replace(replace_from, replace_to)
    text = text.replace(
        "gazetteer: ../gazetteer/olkhovskaya.yaml", f"gazetteer: {gazetteer_dir / 'olkhovskaya.yaml'}"
    )
    return write("routing.yaml", text)


@pytest.mark.parametrize(
    "replace_from, replace_to, expected",
    [
        (
            "{topic: health, body: minzdrav}",
            "{topic: health, category: health.drugs, body: minzdrav}",
            "exactly one of topic or category",
        ),
        (
            "{category: health.ambulance, body: ssmp}",
            "{category: health.ambulanse, body: ssmp}",
            "unknown category 'health.ambulanse'",
        ),
        (
            "{category: health.ambulance, body: ssmp}",
            "{category: health.ambulance, body: nobody}",
            "unknown body 'nobody'",
        ),
        (
            "{topic: health, body: minzdrav}",
            "{topic: health, municipality: kamenka, body: minzdrav}",
            "topic 'health': no fallback rule",
        ),
        (
            "{topic: waste, body: regop_tko}",
            "{topic: waste, municipality: atlantis, body: regop_tko}",
            "unknown municipality 'atlantis'",
        ),
        ("type: ОМСУ, municipality: kamenka,", "type: ОМСУ,", "names its municipality"),
    ],
)
def test_broken_routing_tables_are_refused_with_reasons(taxonomy, write, replace_from, replace_to, expected):
    path = _broken(write, replace_from, replace_to, DATA / "gazetteer")
    with pytest.raises(DataFileError) as error:
        load_routing_table(path, taxonomy=taxonomy)
    assert expected in str(error.value)


def test_gazetteer_finds_inflected_forms_with_spans(gazetteer):
    text = "Живу в Рябинце, а мама в Малых Ключах; вчера ездили в ГУСЬ-ОЗЁРНЫЙ и Белом Яре."
    found = gazetteer.find(text)
    assert [m.municipality for m in found] == ["ryabinets", "ryabinets", "gus_ozerny", "belyi_yar"]
    assert [text[m.start : m.end] for m in found] == ["Рябинце", "Малых Ключах", "ГУСЬ-ОЗЁРНЫЙ", "Белом Яре"]
    assert found[1].settlement == "Малые Ключи"


def test_gazetteer_needs_whole_words(gazetteer):
    assert gazetteer.find("Устьевой клапан, Сосновкаааа, заречныйпарк") == []
    assert [m.surface for m in gazetteer.find("клапан в Дубках")] == ["Дубках"]


def test_gazetteer_resolves_codes_names_and_forms(gazetteer):
    assert gazetteer.resolve("krivichi") == "krivichi"
    assert gazetteer.resolve("Кривичах") == "krivichi"
    assert gazetteer.resolve("городской округ Заречный") == "zarechny"
    assert gazetteer.resolve("Атлантида") is None
