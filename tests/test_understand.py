"""How the bot reads graduates' informal WhatsApp replies.

Every row is a reply a garment-sewing graduate could plausibly type on a cheap phone, with the
exact interpretation it must get. Test ids are the reply text itself.
"""

import pytest

from bot.understand import (
    EMPLOYED,
    SEEKING,
    SELF_EMPLOYED,
    STATUS_BY_CHOICE,
    STUDYING,
    Keyword,
    means_nothing,
    normalize,
    parse_keyword,
    parse_rating,
    parse_status,
    parse_yes_no,
)


def _ids(rows: list[tuple]) -> list[str]:
    """Use the reply text as the test id, so a failure reads as the message that broke."""
    return [row[0] or "<empty>" for row in rows]


# --- "Bagaimana status kerja Anda sekarang?" ------------------------------------------------

STATUS_BY_OPTION_NUMBER = [
    ("1", EMPLOYED, None),
    ("2.", SELF_EMPLOYED, None),
    ("3", SEEKING, None),
    ("4", STUDYING, None),
    ("(2)", SELF_EMPLOYED, None),
    ("2️⃣", SELF_EMPLOYED, None),
    ("4️⃣", STUDYING, None),
    ("dua", SELF_EMPLOYED, None),
    ("satu", EMPLOYED, None),
    ("Tiga kak", SEEKING, None),
    ("empat", STUDYING, None),
    ("one", EMPLOYED, None),
    ("three", SEEKING, None),
    ("no 2", SELF_EMPLOYED, None),
    ("nomer 2", SELF_EMPLOYED, None),
    ("nomor 2 kak", SELF_EMPLOYED, None),
    ("nomor3", SEEKING, None),
    ("no.3", SEEKING, None),
    ("yg ke 2", SELF_EMPLOYED, None),
    ("pilih 1 kak", EMPLOYED, None),
    ("Jawaban saya 4", STUDYING, None),
    ("1️⃣ sdh kerja", EMPLOYED, None),
    ("3️⃣ masih nyari kak", SEEKING, None),
    ("Tiga, masih cari kerja", SEEKING, None),
]

STATUS_BY_OPTION_NUMBER_WITH_DETAIL = [
    ("1. di PT Sinar Jaya", EMPLOYED, "PT Sinar Jaya"),
    ("1 PT. Sinar Jaya, Bekasi", EMPLOYED, "PT. Sinar Jaya"),
    ("1 kerja di konveksi Bu Ani", EMPLOYED, "konveksi Bu Ani"),
    ("2 jualan online", SELF_EMPLOYED, "jualan online"),
    ("2 jual baju", SELF_EMPLOYED, "jual baju"),
    ("2. usaha konveksi kecil2an", SELF_EMPLOYED, "konveksi kecil2an"),
    ("4 kuliah di UT", STUDYING, "kuliah di UT"),
    ("nomer 4 kak kuliah", STUDYING, "kuliah"),
    ("empat, lanjut kuliah di UT", STUDYING, "kuliah di UT"),
]

STATUS_EMPLOYED_IN_WORDS = [
    ("sudah kerja di pabrik sepatu", "pabrik sepatu"),
    ("sdh kerja di pabrik sepatu", "pabrik sepatu"),
    ("Sudah Bekerja Di PT. Sri Rejeki Isman", "PT. Sri Rejeki Isman"),
    ("alhamdulillah sudah kerja kak, di PT Eco Smart Garment", "PT Eco Smart Garment"),
    ("alhamdulillah sdh kerja di garmen, bagian jahit", "garmen"),
    ("udah dapet kerja kak di konveksi", "konveksi"),
    ("sy kerja jd operator di pabrik tas", "pabrik tas"),
    ("sudah diterima di PT Pan Brothers", "PT Pan Brothers"),
    ("sudah 3 bulan kerja di garmen", "garmen"),
    ("di pabrik sepatu kak", "pabrik sepatu"),
    ("di pabrik sepatu, sudah kerja 3 bulan", "pabrik sepatu"),
    ("jadi operator jahit di CV Berkah", "CV Berkah"),
    ("kerjo di pt maju", "pt maju"),
    ("Kerjo nang pabrik", "pabrik"),
    ("krja di garmen", "garmen"),
    ("kerj di pabrik", "pabrik"),
    ("bekrja di pabrik", "pabrik"),
    ("KERJA DI PABRIK", "PABRIK"),
    ("kerja di Karawang", "Karawang"),
    ("PT Sinar Jaya", "PT Sinar Jaya"),
    ("kerja tidak sesuai jurusan", None),
    ("I work in a shoe factory", "shoe factory"),
    ("working at PT Maju", "PT Maju"),
    ("Alhamdulillah sudah bekerja kak", None),
    ("iya kak udah kerja", None),
    ("kerja kak", None),
    ("Bekerja", None),
    ("sdh krj", None),
    ("udh kerja", None),
    ("pekerjaan sdh ada", None),
    ("sudah", None),
    ("alhamdulillah sudah", None),
    ("working", None),
    # Working and studying at once counts as working.
    ("kerja sambil kuliah", None),
    ("kuliah sambil kerja", None),
    ("sudah kerja tapi masih kontrak", None),
    ("gak kuliah, kerja di pabrik", "pabrik"),
]

STATUS_SEEKING_IN_WORDS = [
    "blm dpt kerja",
    "belum dapat kerja",
    "belum kerja",
    "blm kerja",
    "blom kerja kak",
    "belom dapet kerjaan",
    "belum dpt krj kak 🙏",
    "Belum bekerja, masih mencari",
    "gak kerja",
    "gk krja",
    "tdk kerja",
    "tidak bekerja",
    "ga ada kerjaan",
    "blm ada kerjaan",
    "kerja? belum",
    "sudah tidak kerja lagi",
    "sudah keluar kerja",
    "nggak kerja lagi kak, kontrak habis",
    "nganggur",
    "ngangur",
    "masih menganggur",
    "masih nganggur kak hehe",
    "pengangguran hehe",
    "masih nyari",
    "msh nyari kerja",
    "lagi cari kerja kak",
    "sedang mencari pekerjaan",
    "nyari kerja susah kak",
    "susah cari kerja",
    "lagi ngelamar2",
    "belum ada panggilan kerja",
    "sudah melamar tapi belum ada panggilan",
    "kena phk",
    "resign bulan lalu",
    "saya 2 bulan nganggur",
    "belum kak",
    "blm",
    "belum ada",
    "not working yet",
    "no job",
    "still unemployed",
    "I'm still looking for work",
    "I don't have a job",
]

STATUS_SELF_EMPLOYED_IN_WORDS = [
    ("jualan online", "jualan online"),
    ("jualn baju online", "jualn baju online"),
    ("jualan di shopee", "jualan di shopee"),
    ("jualan online sambil cari kerja", "jualan online"),
    ("bantu ortu jualan kue", "jualan kue"),
    ("dagang baju di pasar", "dagang baju di pasar"),
    ("berdagang", "berdagang"),
    ("reseller baju", "reseller baju"),
    ("jadi reseller", "reseller"),
    ("olshop", "olshop"),
    ("ngojek", "ngojek"),
    ("ga kerja, ngojek", "ngojek"),
    ("usaha jahit sendiri", "jahit sendiri"),
    ("usha konveksi", "konveksi"),
    ("wirausaha jahit", "jahit"),
    ("usaha kue kering di rumah", "kue kering di rumah"),
    ("punya usaha jahit di rumah", "jahit di rumah"),
    ("buka usaha warung", "warung"),
    ("buka warung kecil2an", "warung kecil2an"),
    ("jahit sendiri di rumah", "jahit sendiri di rumah"),
    ("terima jahitan di rumah", "jahitan di rumah"),
    ("usaha sendiri", None),
    ("wiraswasta", None),
    ("self employed", None),
    ("self-employed", None),
    ("own business", None),
]

STATUS_STUDYING_IN_WORDS = [
    ("lanjut kuliah", "kuliah"),
    ("kuliah", "kuliah"),
    ("sdg kuliah", "kuliah"),
    ("kuliah online", "kuliah online"),
    ("masih sekolah", "sekolah"),
    ("sekolah lagi", "sekolah"),
    ("skolah", "skolah"),
    ("Lanjut SMK", "SMK"),
    ("lanjut sekolah smk", "sekolah smk"),
    ("paket c", "paket c"),
    ("ikut kursus bordir", "kursus bordir"),
    ("kursus komputer", "kursus komputer"),
    ("ikut pelatihan lagi", "pelatihan"),
    ("kuliyah di Universitas Terbuka", "kuliyah di Universitas Terbuka"),
    ("mondok di pesantren", "mondok di pesantren"),
    # "belum" denies the work, not the studies.
    ("belum kerja, masih kuliah", "kuliah"),
]

STATUS_NOT_PLACEABLE = [
    "halo",
    "siapa ini",
    "ini nomor siapa ya",
    "assalamualaikum kak",
    "?",
    "",
    "p",
    "ok",
    "terima kasih",
    "🙏",
    "👍",
    "5",
    "0",
    "belum tau",
    "tidak kuliah",
    "belum punya usaha",
    # A wish is not a status yet.
    "pengen usaha",
    "mau kuliah",
    "2 bulan",
]


@pytest.mark.parametrize(
    ("reply", "status", "detail"),
    STATUS_BY_OPTION_NUMBER + STATUS_BY_OPTION_NUMBER_WITH_DETAIL,
    ids=_ids(STATUS_BY_OPTION_NUMBER + STATUS_BY_OPTION_NUMBER_WITH_DETAIL),
)
def test_option_number_picks_status_and_rest_names_the_place(reply, status, detail):
    assert parse_status(reply) == (status, detail)


@pytest.mark.parametrize(
    ("reply", "detail"), STATUS_EMPLOYED_IN_WORDS, ids=_ids(STATUS_EMPLOYED_IN_WORDS)
)
def test_work_in_words_means_employed(reply, detail):
    assert parse_status(reply) == (EMPLOYED, detail)


@pytest.mark.parametrize("reply", STATUS_SEEKING_IN_WORDS)
def test_denied_work_or_job_hunting_means_seeking_never_employed(reply):
    assert parse_status(reply) == (SEEKING, None)


@pytest.mark.parametrize(
    ("reply", "detail"), STATUS_SELF_EMPLOYED_IN_WORDS, ids=_ids(STATUS_SELF_EMPLOYED_IN_WORDS)
)
def test_business_in_words_means_self_employed(reply, detail):
    assert parse_status(reply) == (SELF_EMPLOYED, detail)


@pytest.mark.parametrize(
    ("reply", "detail"), STATUS_STUDYING_IN_WORDS, ids=_ids(STATUS_STUDYING_IN_WORDS)
)
def test_school_or_training_in_words_means_studying(reply, detail):
    assert parse_status(reply) == (STUDYING, detail)


@pytest.mark.parametrize(
    "reply", STATUS_NOT_PLACEABLE, ids=_ids([(r,) for r in STATUS_NOT_PLACEABLE])
)
def test_unrelated_or_ambiguous_reply_has_no_status(reply):
    assert parse_status(reply) == (None, None)


def test_status_choices_are_the_four_options_in_order():
    assert STATUS_BY_CHOICE == {1: EMPLOYED, 2: SELF_EMPLOYED, 3: SEEKING, 4: STUDYING}


# --- yes / no --------------------------------------------------------------------------------

YES_NO_REPLIES = [
    ("ya", True),
    ("iya", True),
    ("iyaa", True),
    ("iyaaa kak", True),
    ("y", True),
    ("Y", True),
    ("yoi", True),
    ("betul", True),
    ("benar", True),
    ("bener", True),
    ("ok", True),
    ("oke", True),
    ("okey", True),
    ("ok siap", True),
    ("ok kak siap 👍", True),
    ("siap kak", True),
    ("boleh", True),
    ("mau", True),
    ("mau dong kak", True),
    ("sure", True),
    ("yes", True),
    ("yep", True),
    ("yes please", True),
    ("nggih", True),
    ("👍", True),
    ("👍🏽", True),
    ("✅", True),
    ("iya kak", True),
    ("ya pakai", True),
    ("ya, kepake banget", True),
    ("sesuai kak", True),
    ("gak papa", True),
    ("gpp kak", True),
    ("tidak masalah", True),
    ("no problem", True),
    ("1", True),
    ("1.", True),
    ("satu", True),
    ("tidak", False),
    ("tdk", False),
    ("tidk", False),
    ("gak", False),
    ("ga", False),
    ("gk", False),
    ("nggak", False),
    ("ngga", False),
    ("enggak", False),
    ("engga", False),
    ("ndak", False),
    ("mboten", False),
    ("belum", False),
    ("blm", False),
    ("no", False),
    ("nope", False),
    ("not really", False),
    ("no thanks", False),
    ("jangan", False),
    ("👎", False),
    ("❌", False),
    ("gak sih kayaknya", False),
    ("tidak terpakai", False),
    ("kurang sesuai", False),
    ("ya gak juga", False),
    ("2", False),
    ("2️⃣", False),
    ("dua", False),
    # Neither, or both: ask again.
    ("gak tau", None),
    ("mungkin", None),
    ("iya 👎", None),
    ("halo", None),
    ("?", None),
    ("", None),
    ("3", None),
    ("sudah 1 tahun", None),
]


@pytest.mark.parametrize(("reply", "answer"), YES_NO_REPLIES, ids=_ids(YES_NO_REPLIES))
def test_yes_no_reply_is_understood(reply, answer):
    assert parse_yes_no(reply) is answer


# --- skill self-rating 1-5 -------------------------------------------------------------------

RATING_REPLIES = [
    ("4", 4),
    ("4/5", 4),
    ("4 / 5", 4),
    ("4 dari 5", 4),
    ("5 out of 5", 5),
    ("nilai 4", 4),
    ("nilai saya 4 kak", 4),
    ("4 bintang", 4),
    ("bintang 5", 5),
    ("empat", 4),
    ("lima", 5),
    ("4️⃣", 4),
    ("⭐⭐⭐", 3),
    ("⭐️⭐️⭐️⭐️", 4),
    ("★★★☆☆", 3),
    ("3⭐", 3),
    ("lumayan", 3),
    ("lumayan kak", 3),
    ("lumayn", 3),
    ("cukup", 3),
    ("biasa aja", 3),
    ("lumayan bagus", 3),
    ("bisa", 3),
    ("bagus", 4),
    ("bgus", 4),
    ("baik", 4),
    ("good", 4),
    ("cukup mahir", 4),
    ("sangat bagus", 5),
    ("bagus sekali", 5),
    ("bagus banget", 5),
    ("mahir", 5),
    ("sudah mahir", 5),
    ("very good", 5),
    ("belum mahir", 3),
    ("kurang", 2),
    ("masih kurang", 2),
    ("kurang bisa", 2),
    ("bisa sedikit", 2),
    ("tidak terlalu bagus", 2),
    ("belum terlalu lancar", 2),
    ("masih belajar", 2),
    ("not good", 2),
    ("sangat kurang", 1),
    ("kurang sekali", 1),
    ("belum bisa", 1),
    ("belum bisa kak masih belajar", 1),
    ("tidak bisa sama sekali", 1),
    ("jelek", 1),
    # Off the scale, between two answers, or no rating at all.
    ("7", None),
    ("0", None),
    ("10", None),
    ("⭐⭐⭐⭐⭐⭐", None),
    ("3,5", None),
    ("3 atau 4", None),
    ("3-4", None),
    ("halo", None),
    ("?", None),
    ("", None),
]


@pytest.mark.parametrize(("reply", "rating"), RATING_REPLIES, ids=_ids(RATING_REPLIES))
def test_rating_reply_is_understood(reply, rating):
    assert parse_rating(reply) == rating


# --- "any obstacle or help needed?" ----------------------------------------------------------

NOTHING_NEEDED = [
    "tidak",
    "tdk ada",
    "gak ada kak",
    "nggak",
    "no",
    "-",
    "👍",
    "aman",
    "sementara aman kak",
    "belum ada",
    "tidak ada kendala",
    "ga ada kendala sejauh ini",
    "tdk ada kendala apa2",
    "gak butuh apa apa",
    "Tidak ada, terima kasih",
    "alhamdulillah lancar",
    "cukup",
    "nothing",
    "no thanks",
    "all good",
]

SOMETHING_NEEDED = [
    "butuh mesin jahit",
    "susah cari kerja",
    "butuh modal usaha",
    "belum ada kerjaan",
    "tidak ada mesin di rumah",
    "aman tapi butuh modal",
    "butuh bantuan",
    "kendala transport",
    "ada kak",
    "tidak bisa",
    "terima kasih",
    "?",
    "",
]


@pytest.mark.parametrize("reply", NOTHING_NEEDED)
def test_reply_saying_there_is_no_obstacle_means_nothing(reply):
    assert means_nothing(reply) is True


@pytest.mark.parametrize("reply", SOMETHING_NEEDED, ids=_ids([(r,) for r in SOMETHING_NEEDED]))
def test_reply_describing_a_need_is_kept(reply):
    assert means_nothing(reply) is False


# --- keywords --------------------------------------------------------------------------------

KEYWORD_MESSAGES = [
    ("BANTUAN", Keyword("help", "")),
    ("bantuan", Keyword("help", "")),
    ("Menu", Keyword("help", "")),
    ("HELP!", Keyword("help", "")),
    ("LOWONGAN", Keyword("jobs", "")),
    ("loker?", Keyword("jobs", "")),
    ("minat AB12", Keyword("interest", "AB12")),
    (" minat  ab12 ", Keyword("interest", "ab12")),
    ("Minat AB-12", Keyword("interest", "AB-12")),
    ("MINAT ab 12", Keyword("interest", "ab 12")),  # the code is found against the openings
    ("minat: ab12.", Keyword("interest", "ab12")),
    ("minat kak J9UJ3", Keyword("interest", "kak J9UJ3")),
    ("MINAT J9UJ3 ya kak", Keyword("interest", "J9UJ3 ya kak")),
    ("MINAT", Keyword("interest", "")),
    ("cek", Keyword("checkin", "")),
    ("CEK", Keyword("checkin", "")),
    ("checkin", Keyword("checkin", "")),
    ("Check-in", Keyword("checkin", "")),
    ("BERHENTI", Keyword("stop", "")),
    ("Stop.", Keyword("stop", "")),
    ("stop 🙏", Keyword("stop", "")),
    ("*STOP*", Keyword("stop", "")),
    ("unsubscribe", Keyword("stop", "")),
    ("MULAI", Keyword("start", "")),
    ("start", Keyword("start", "")),
    ("gabung jht-2024", Keyword("join", "JHT-2024")),
    ("GABUNG  jht2024a", Keyword("join", "JHT2024A")),
    (
        "SIARAN Pelatihan lanjutan dibuka besok!",
        Keyword("broadcast", "Pelatihan lanjutan dibuka besok!"),
    ),
    ("siaran   Besok libur ya.", Keyword("broadcast", "Besok libur ya.")),
    ("REKAP kohort Jht-2024", Keyword("summary", "kohort Jht-2024")),
    ("rekap", Keyword("summary", "")),
    # Only a whole message is a command: answers that start with a keyword are answers.
    ("stop dulu ya", None),
    ("mulai kerja bulan depan", None),
    ("berhenti kerja", None),
    ("lowongan kerja", None),
    ("cek lowongan", None),
    ("saya minat kak", None),
    ("minatnya", None),
    ("halo", None),
    ("", None),
]


@pytest.mark.parametrize(("message", "keyword"), KEYWORD_MESSAGES, ids=_ids(KEYWORD_MESSAGES))
def test_keyword_is_the_whole_message(message, keyword):
    assert parse_keyword(message) == keyword


# --- normalising text ------------------------------------------------------------------------

NORMALIZED = [
    ("  Sudah   KERJA!! ", "sudah kerja"),
    ("2️⃣", "2"),
    ("1️⃣ sdh kerja 🙏", "1 sdh kerja"),
    ("🔟", "10"),
    ("Ｂｅｌｕｍ", "belum"),
    ("PT. Sinar-Jaya, Bekasi", "pt sinar jaya bekasi"),
    ("👍👍", ""),
]


@pytest.mark.parametrize(("text", "normal"), NORMALIZED, ids=_ids(NORMALIZED))
def test_normalize_keeps_lower_case_words_and_digits_only(text, normal):
    assert normalize(text) == normal
