from model.text import fold, fold_for_dedup, prepare_for_model


def test_shouting_is_lower_cased_but_normal_text_keeps_its_case():
    assert prepare_for_model("ТРЕТИЙ ДЕНЬ НЕТ ГОРЯЧЕЙ ВОДЫ!!!") == "третий день нет горячей воды!!!"
    assert prepare_for_model("Нет воды в Рябинце, УК молчит") == "Нет воды в Рябинце, УК молчит"
    assert prepare_for_model("ЖКХ УК МКД") == "ЖКХ УК МКД"  # abbreviations alone are not shouting


def test_control_characters_and_spaces_are_normalised():
    assert prepare_for_model("  нет\u200bсвета \n\n  улица\tМира ") == "нет света улица Мира"


def test_folding_for_labels_and_duplicates():
    assert fold("  Ёлки  Палки ") == "елки палки"
    assert fold_for_dedup("Нет воды!!! 😡 (ул. Садовая)") == "нет воды ул садовая"
