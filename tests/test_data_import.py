import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from training.cli import app
from training.dataset import load_dataset
from training.messages import ColumnMapping

POS_HEADER = "Номер обращения;Текст обращения;Тема;Подтема;Муниципальное образование;Источник\n"


def _issues(report):
    return [(i.row, i.column, i.reason) for i in report.issues if i.severity == "error"]


def test_pos_export_in_cp1251_with_semicolons(write, taxonomy, gazetteer):
    content = (
        POS_HEADER
        + "101;Нет горячей воды третий день, ул. Садовая 5;ЖКХ;горячая вода;Рябинец;Госуслуги\n"
        + "102;Яма на дороге у школы;Дороги;ямы и покрытие;Кривичский муниципальный округ;ВКонтакте\n"
    )
    path = write("pos.csv", content.encode("cp1251"))
    report = load_dataset([path], taxonomy, gazetteer, ColumnMapping.load("pos"))
    assert report.ok, report.issues
    first, second = report.messages
    assert (first.id, first.topic, first.category, first.municipality, first.source) == (
        "101",
        "housing",
        "housing.hot_water",
        "ryabinets",
        "pos",
    )
    assert (second.category, second.municipality, second.source) == ("roads.potholes", "krivichi", "vk")
    assert any("decoded as cp1251" in i.reason for i in report.warnings)


def test_every_bad_row_is_reported_with_row_column_and_reason(write, taxonomy, gazetteer):
    path = write(
        "bad.csv",
        POS_HEADER
        + "1;Нет воды;ЖКХ;холодная вода и канализация;;vk\n"
        + "2;;ЖКХ;отопление;;vk\n"
        + "3;Яма;Дорогии;;;vk\n"
        + "4;Яма у дома;дороги;отопление;Атлантида;vk\n"
        + "5;Свалка в лесу;ТКО;несанкционированные свалки;;телефон\n",
    )
    report = load_dataset([path], taxonomy, gazetteer, ColumnMapping.load("pos"))
    assert _issues(report) == [
        (3, "Текст обращения", "empty text"),
        (4, "Тема", "unknown topic 'Дорогии'; known: " + ", ".join(taxonomy.topic_codes)),
        (5, "Подтема", "category 'отопление' belongs to topic 'housing', not 'roads'"),
        (5, "Муниципальное образование", "unknown municipality 'Атлантида'"),
    ]
    assert [m.id for m in report.messages] == ["1", "5"]
    assert report.messages[1].source == "other"  # unknown source is a warning, row kept
    assert [r["row"] for r in report.rejected] == [3, 4, 5]
    assert report.rejected[0]["record"]["Номер обращения"] == "2"


def test_jsonl_broken_lines_do_not_hide_good_ones(write, taxonomy):
    path = write(
        "data.jsonl",
        '{"text": "Нет света на улице Мира", "topic": "energy"}\n'
        '{"text": "обрыв провода", "topic": "energy"\n'
        '["not", "an", "object"]\n'
        "\n"
        '{"text": "Автобус не пришёл", "topic": "transport", "incident": "да"}\n',
    )
    report = load_dataset([path], taxonomy)
    assert [i.row for i in report.errors] == [2, 3]
    assert "invalid JSON" in report.errors[0].reason
    assert [m.text for m in report.messages] == ["Нет света на улице Мира", "Автобус не пришёл"]
    assert report.messages[1].incident == 1


def test_xlsx_rows_are_numbered_as_in_the_spreadsheet(tmp_path, taxonomy):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Текст обращения", "Тема", "Инцидент"])
    sheet.append(["Прорвало трубу, топит подвал", "ЖКХ", 1])
    sheet.append([None, None, None])  # blank line in the middle of an export
    sheet.append(["Не вывозят мусор", "ТКО", "может быть"])
    path = tmp_path / "export.xlsx"
    workbook.save(path)
    mapping = ColumnMapping.load("text=Текст обращения,topic=Тема,incident=Инцидент")
    report = load_dataset([path], taxonomy, mapping=mapping)
    assert [(i.row, i.column) for i in report.errors] == [(4, "Инцидент")]
    assert report.messages[0].incident == 1 and report.messages[0].topic == "housing"


def test_parquet_and_json_arrays(tmp_path, taxonomy):
    pq.write_table(
        pa.table(
            {"text": ["Нет газа в доме", "Скорая ехала два часа"], "topic": ["energy", "здравоохранение"]}
        ),
        tmp_path / "a.parquet",
    )
    (tmp_path / "b.json").write_text(
        json.dumps([{"text": "Бродячие собаки у школы", "category": "other.animals"}], ensure_ascii=False),
        encoding="utf-8",
    )
    report = load_dataset([tmp_path / "a.parquet", tmp_path / "b.json"], taxonomy)
    assert report.ok
    assert [(m.topic, m.category) for m in report.messages] == [
        ("energy", None),
        ("health", None),
        ("other", "other.animals"),
    ]  # topic from category


def test_region_export_with_executor_column(write, taxonomy):
    path = write(
        "region.csv",
        "text,topic,executor\n"
        "Нет отопления в школе,образование,Администрация Рябинца\n"
        "Автобус 12 не ходит,transport,ГУП Ольховскавтотранс\n",
    )
    report = load_dataset([path], taxonomy)
    assert report.ok
    assert [m.executor for m in report.messages] == ["Администрация Рябинца", "ГУП Ольховскавтотранс"]


def test_missing_text_column_and_unsupported_files(write, taxonomy):
    missing = write("x.csv", "body,topic\nтекст,roads\n")
    odd = write("x.docx", "whatever")
    empty = write("e.jsonl", "\n\n")
    report = load_dataset([missing, odd, empty], taxonomy)
    reasons = [i.reason for i in report.errors]
    assert any("text column is not in the file" in r for r in reasons)
    assert any("unsupported file type .docx" in r for r in reasons)
    assert any("no data rows" in r for r in reasons)
    assert report.messages == []


def test_duplicates_are_removed_and_listed_never_silently(write, taxonomy):
    long_text = (
        "Уважаемая администрация! Во дворе дома 12 по улице Садовой уже месяц не "
        "вывозят мусор, контейнеры переполнены, крысы бегают среди бела дня."
    )
    path = write(
        "d.jsonl",
        "\n".join(
            json.dumps(r, ensure_ascii=False)
            for r in [
                {"id": "a", "text": long_text, "topic": "waste"},
                {"id": "b", "text": long_text.upper() + "!!!", "topic": "waste"},
                {"id": "c", "text": long_text.replace("месяц", "два месяца"), "topic": "housing"},
                {"id": "d", "text": "Нет воды", "topic": "housing"},
                {"id": "e", "text": "Нет газа", "topic": "energy"},
            ]
        )
        + "\n",
    )
    report = load_dataset([path], taxonomy)
    pairs = {(d.kept.id, d.duplicate.id, d.kind) for d in report.duplicates}
    assert pairs == {("a", "b", "exact"), ("a", "c", "near")}
    assert [m.id for m in report.messages] == ["a", "d", "e"]
    conflict = next(d for d in report.duplicates if d.duplicate.id == "c")
    assert conflict.labels_conflict
    assert any("different labels" in w.reason for w in report.warnings)


def test_duplicate_ids_are_errors(write, taxonomy):
    path = write(
        "ids.jsonl",
        '{"id": "x", "text": "Нет воды", "topic": "housing"}\n'
        '{"id": "x", "text": "Нет света", "topic": "energy"}\n',
    )
    report = load_dataset([path], taxonomy)
    assert [(i.row, i.column) for i in report.errors] == [(2, "id")]


def test_test_split_that_copies_train_is_a_leak(write, taxonomy):
    text = (
        "Третью неделю в нашем посёлке нет нормального напора воды, на втором этаже "
        "вода идёт тонкой струйкой, а на третьем её нет совсем."
    )
    write(
        "corpus/train/housing.jsonl",
        json.dumps({"id": "t1", "text": text, "topic": "housing"}, ensure_ascii=False) + "\n",
    )
    test = write(
        "corpus/test/housing.jsonl",
        json.dumps(
            {"id": "s1", "text": text.replace("Третью", "Вторую"), "topic": "housing"}, ensure_ascii=False
        )
        + "\n",
    )
    report = load_dataset([test.parent.parent], taxonomy)
    assert [(leak.kept.id, leak.duplicate.id) for leak in report.leaks] == [("t1", "s1")]
    assert not report.ok


@pytest.mark.parametrize(
    "spec, message",
    [
        ("texts=Текст", "unknown field(s) ['texts']"),
        ("topic=Тема", "the 'text' field must be mapped"),
        ("text", "expected field=Column"),
    ],
)
def test_bad_mappings_are_explained(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ColumnMapping.load(spec)


runner = CliRunner()


def test_cli_validate_exits_non_zero_and_names_file_row_column(write):
    path = write("bad.csv", "text,topic\nНет воды,ЖКХ\nЯма,дорогии\n")
    result = runner.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}, row 3, column 'topic': error: unknown topic 'дорогии'" in result.output


def test_cli_import_writes_clean_data_and_rejects(write, tmp_path):
    path = write("in.csv", "text,topic\nНет воды,ЖКХ\n,дороги\nНет воды!,жкх\n")
    out = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["data", "import", str(path), "-o", str(out)])
    assert result.exit_code == 1  # a row was rejected: the caller must know
    clean = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["text"], r["topic"]) for r in clean] == [("Нет воды", "housing")]
    rejects = [
        json.loads(line)
        for line in (tmp_path / "clean.rejected.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["row"] for r in rejects] == [3, 4]
    assert "empty text" in rejects[0]["reasons"][0]
    assert "exact duplicate" in rejects[1]["reasons"][0]


def test_cli_stats_reports_counts(write):
    path = write(
        "c/train/x.jsonl",
        '{"id": "1", "text": "Нет воды", "topic": "housing", '
        '"category": "housing.water_sewage", "incident": 1}\n'
        '{"id": "2", "text": "Яма", "topic": "roads", "incident": 0}\n',
    )
    result = runner.invoke(app, ["data", "stats", str(path.parent.parent), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["total"] == 2
    assert stats["topics"]["housing"] == {"train": 1}
    assert stats["categories"]["housing.water_sewage"] == {"train": 1}
    assert stats["flags"]["incident"]["positive"] == {"train": 1}
