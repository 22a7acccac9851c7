"""Javanese (ngoko and krama), chat abbreviations and ambiguous replies, read as the graduates
around Pekalongan mean them; and the vocabulary files a deployer extends."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.understand import (
    CHOICE,
    EMPLOYED,
    GUESS,
    SEEKING,
    SELF_EMPLOYED,
    STUDYING,
    VocabularyError,
    load_vocabulary,
    means_nothing,
    parse_keyword,
    phrase_key,
    read_place,
    read_rating,
    read_status,
    read_yes_no,
    use_vocabulary,
)

STATUS = [
    ("sampun nyambut damel wonten PT Pan Brothers", EMPLOYED, "PT Pan Brothers"),
    ("kulo sampun nyambut damel", EMPLOYED, None),
    ("wis kerjo nang pabrik sepatu", EMPLOYED, "pabrik sepatu"),
    ("uwis kerja mas", EMPLOYED, None),
    ("nyambut gawe teng konveksi Bu Siti", EMPLOYED, "konveksi Bu Siti"),
    ("durung kerjo", SEEKING, None),  # a "not yet" before kerjo is never employed
    ("dereng nyambut damel mas", SEEKING, None),
    ("durung oleh gawean", SEEKING, None),
    ("dereng angsal padamelan", SEEKING, None),
    ("mboten nyambut damel", SEEKING, None),
    ("ora kerjo", SEEKING, None),
    ("lagi golek gawean", SEEKING, None),
    ("blm dpt kerja kak", SEEKING, None),
    ("dodolan online", SELF_EMPLOYED, "dodolan online"),
    ("usaha jahit dewe nang omah", SELF_EMPLOYED, "jahit dewe nang omah"),
    ("sinau maneh nang smk", STUDYING, "sinau maneh nang smk"),
]


@pytest.mark.parametrize(("reply", "status", "detail"), STATUS, ids=[r[0] for r in STATUS])
def test_javanese_status(reply, status, detail):
    reading = read_status(reply)
    assert (reading.value, reading.detail) == (status, detail)


@pytest.mark.parametrize(("reply", "status"), [
    ("siji", EMPLOYED), ("setunggal", EMPLOYED), ("loro", SELF_EMPLOYED),
    ("kalih", SELF_EMPLOYED), ("telu", SEEKING), ("tigo mas", SEEKING),
    ("papat", STUDYING), ("sekawan", STUDYING)])
def test_javanese_number_words_choose_the_option(reply, status):
    reading = read_status(reply)
    assert (reading.value, reading.how) == (status, CHOICE)


def test_a_bare_already_or_not_yet_is_a_guess():
    assert (read_status("sampun").value, read_status("sampun").how) == (EMPLOYED, GUESS)
    assert (read_status("dereng").value, read_status("dereng").how) == (SEEKING, GUESS)
    assert read_status("krja di PT Maju").how == GUESS  # a misspelling made it
    assert read_status("kerja di PT Maju").how == "words"


YES_NO = [
    ("iyo", True), ("nggih", True), ("inggih mas", True), ("gelem", True), ("purun", True),
    ("kanggo", True), ("sesuai", True), ("nyambung", True), ("kepake", True),
    ("nggih mas sesuai", True),
    ("ora", False), ("mboten", False), ("ora gelem", False), ("ora kanggo", False),
    ("mboten kangge", False), ("beda bidang", False), ("ga nyambung", False),
    ("lain jurusan", False), ("iya kak, beda bidang", False),
    # A filler "ya" in a question-shaped reply is not yes.
    ("hmm gmn ya", None), ("gimana ya", None), ("entahlah ya", None), ("piye yo", None),
    ("mbuh", None),
    # Two readings that conflict are asked again, not guessed.
    ("sesuai, tapi beda bidang", None), ("👍 ora", None),
]


@pytest.mark.parametrize(("reply", "answer"), YES_NO, ids=[r[0] for r in YES_NO])
def test_yes_no_in_javanese_and_ambiguous_replies(reply, answer):
    reading = read_yes_no(reply)
    assert (reading.value if reading else None) == answer


@pytest.mark.parametrize(("reply", "rating"), [
    ("siji", 1), ("loro", 2), ("telu", 3), ("papat", 4), ("limo", 5), ("setunggal", 1),
    ("kalih", 2), ("tigo", 3), ("sekawan", 4), ("gangsal", 5), ("papat mas", 4),
    ("apik", 4), ("apik tenan", 5), ("lumayan apik", 3), ("durung iso", 1), ("rodo iso", 2),
    ("3-4", None), ("telu utawa papat", None)])
def test_ratings_in_javanese(reply, rating):
    reading = read_rating(reply)
    assert (reading.value if reading else None) == rating


@pytest.mark.parametrize(("reply", "nothing"), [
    ("mboten wonten", True), ("ora ono", True), ("ra ono kak", True), ("gk ad", True),
    ("ora enek", True), ("dereng wonten", True), ("mboten wonten mas, matur nuwun", True),
    ("butuh modal", False), ("mboten wonten modal", False)])
def test_nothing_to_report_in_javanese(reply, nothing):
    assert means_nothing(reply) is nothing


@pytest.mark.parametrize(("reply", "name", "title", "specific"), [
    ("operator jahit di PT Pan Brothers", "PT Pan Brothers", "operator jahit", True),
    ("PT Pan Brothers bagian jahit", "PT Pan Brothers", "bagian jahit", True),
    ("konveksi Bu Siti, Wiradesa", "konveksi Bu Siti, Wiradesa", None, True),
    ("di PT Sritex kak", "PT Sritex", None, True),
    ("pabrik sepatu", "pabrik sepatu", None, True),
    ("wkwkwk 🤣", None, None, False), ("🙏", None, None, False), ("x", None, None, False),
    ("pabrik", None, None, False), ("di rumah", None, None, False), ("toko", None, None, False),
    ("operator jahit", None, "operator jahit", False),
])
def test_a_workplace_must_name_one(reply, name, title, specific):
    assert read_place(reply) == type(read_place(reply))(name, title, specific)


@pytest.mark.parametrize(("reply", "specific"), [
    ("jualan online", True), ("jahit baju di rumah", True), ("dagang", False),
    ("di rumah", False), ("usaha sendiri", False), ("wkwk", False)])
def test_a_business_must_say_what_it_is(reply, specific):
    assert read_place(reply, business=True).specific is specific


def test_learned_meanings_win_over_the_rules():
    learned = {"mboten wonten blas": "nothing"}
    assert means_nothing("Mboten wontennn blas!!") is False
    assert means_nothing("Mboten wontennn blas!!", learned) is True
    assert phrase_key("Mboten wontennn blas!!") == "mboten wonten blas"
    assert read_rating("papat setengah", {"papat setengah": "4"}).how == "learned"


def test_javanese_keywords():
    assert parse_keyword("pitulung").name == "help"
    assert parse_keyword("MANDHEG").name == "stop"


# --- the vocabulary files -------------------------------------------------------------------

def test_a_word_listed_twice_names_the_file_and_both_lines(tmp_path: Path):
    extra = tmp_path / "pekalongan.toml"
    extra.write_text('[status]\nseek = ["ngentosi panggilan"]\nwork = ["buruh"]\n')
    with pytest.raises(VocabularyError) as error:
        load_vocabulary([extra])
    message = str(error.value)
    assert f"{extra}:3" in message and "'buruh' is listed twice in [status]" in message
    assert "id.toml:" in message  # where it was listed first


def test_a_word_twice_in_one_file_names_its_second_line(tmp_path: Path):
    extra = tmp_path / "extra.toml"
    extra.write_text('[yes_no]\nyes = ["oke banget",\n  "mantul", "mantul"]\n')
    with pytest.raises(VocabularyError, match=rf"{extra}:3: 'mantul' is listed twice"):
        load_vocabulary([extra])


@pytest.mark.parametrize(("content", "says"), [
    ('[statuses]\nwork = ["x"]\n', "unknown section [statuses]"),
    ('[words]\n"gpp" = 3\n', "must stand for words"),
    ('[keywords]\n"TOLONG" = "rescue"\n', "the commands are"),
    ('[numbers]\n"sewelas" = 11\n', "whole number 0-10"),
    ('[status\n', "not valid TOML"),
])
def test_bad_vocabulary_files_are_refused_with_the_reason(tmp_path: Path, content, says):
    extra = tmp_path / "bad.toml"
    extra.write_text(content)
    with pytest.raises(VocabularyError, match=rf"^{extra}"):
        load_vocabulary([extra])
    with pytest.raises(VocabularyError, match=says.replace("[", r"\[").replace("]", r"\]")):
        load_vocabulary([extra])


def test_a_deployment_extends_the_vocabulary_from_its_configuration(tmp_path: Path):
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "batang.toml").write_text(
        '[words]\n"nyambi" = "kerja"\n[nothing]\nnothing = ["adem ayem"]\n')
    config = tmp_path / "config.toml"
    config.write_text('[understanding]\nvocabulary = ["vocab/batang.toml"]\n')
    settings = load_settings(config, environ={})
    assert settings.understanding.vocabulary == (str(tmp_path / "vocab" / "batang.toml"),)
    assert read_status("nyambi kak") is None and not means_nothing("adem ayem")
    try:
        use_vocabulary(settings.understanding.vocabulary)
        assert read_status("nyambi kak").value == EMPLOYED
        assert means_nothing("adem ayem")
    finally:
        use_vocabulary(())
    assert read_status("nyambi kak") is None


def test_a_configuration_with_a_bad_vocabulary_file_does_not_start(tmp_path: Path):
    (tmp_path / "v.toml").write_text('[status]\nwork = ["kerja"]\n')
    config = tmp_path / "config.toml"
    config.write_text('[understanding]\nvocabulary = ["v.toml"]\n')
    with pytest.raises(ConfigError, match=r"understanding.vocabulary: .*v.toml:2: 'kerja' is "
                                          r"listed twice"):
        load_settings(config, environ={})


@pytest.mark.parametrize("reply", ["1, belum kerja", "4 sambil kerja", "1 durung kerjo",
                                   "3 sudah kerja di PT Maju"])
def test_a_number_and_words_that_disagree_are_asked_again(reply):
    assert read_status(reply) is None
