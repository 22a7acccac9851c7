"""Understanding graduates' informal WhatsApp replies.

Graduates answer on cheap phones in informal Indonesian (sometimes simple English): digits and
number words ("2.", "dua", "2️⃣"), abbreviations ("blm dpt krj"), stretched letters ("iyaaa"),
typos ("kerjo", "usha"), emoji and extra words around the answer ("iya kak", "alhamdulillah
sudah kerja di pabrik sepatu"). Each function here takes the raw text and returns what it means,
or None when the reply cannot be placed: the conversation then gives a hint and asks again.

Pure functions, standard library only. The vocabulary is data: tables of word -> concept. A word
is looked up as written, then with stretched letters squeezed ("iyaaa" -> "iya"), then, for a few
typo-prone words, as a close misspelling with the same first letter ("krja" -> "kerja").
"""

import re
import unicodedata
from dataclasses import dataclass
from difflib import get_close_matches

EMPLOYED, SELF_EMPLOYED, SEEKING, STUDYING = "employed", "self_employed", "seeking", "studying"
STATUS_BY_CHOICE = {1: EMPLOYED, 2: SELF_EMPLOYED, 3: SEEKING, 4: STUDYING}

# --- text and words --------------------------------------------------------------------------

_KEYCAP = re.compile(r"([0-9])\ufe0f?\u20e3")  # 1️⃣ is "1", VS16, COMBINING ENCLOSING KEYCAP
_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits, in any script
_STRETCH = re.compile(r"([^\W\d_])\1+")


def _prepare(text: str) -> str:
    """NFKC-normalise a message and turn keycap emoji (2️⃣, 🔟) into plain digits."""
    text = unicodedata.normalize("NFKC", text or "").replace("\U0001f51f", "10")
    return _KEYCAP.sub(r"\1", text)


def normalize(text: str) -> str:
    """Lower-cased words and digits of a message, one space apart; punctuation and emoji gone."""
    return " ".join(match.group().lower() for match in _WORD.finditer(_prepare(text)))


def _squeeze(word: str) -> str:
    """Collapse stretched letters: "iyaaa" -> "iya", "nggak" -> "ngak"."""
    return _STRETCH.sub(r"\1", word)


class _Vocabulary:
    """Words mapped to concepts, tolerant of stretched letters and of typos in chosen words."""

    def __init__(self, concepts: dict[str, str], typo_targets: str = "") -> None:
        self._concepts: dict[str, str] = {}
        for concept, words in concepts.items():
            for word in words.split():
                key = _squeeze(word)
                if key in self._concepts:
                    raise ValueError(f"vocabulary word {word!r} is listed twice ({concept})")
                self._concepts[key] = concept
        self._typo_targets = [_squeeze(word) for word in typo_targets.split()]
        unknown = set(self._typo_targets) - set(self._concepts)
        if unknown:
            raise ValueError(f"typo targets {sorted(unknown)} are not in the vocabulary")

    def __getitem__(self, word: str) -> str | None:
        """Concept of one lower-case word, or None when the word is unknown."""
        word = _squeeze(word)
        if word in self._concepts:
            return self._concepts[word]
        if len(word) > 2 and word.endswith("2") and word[:-1].isalpha():  # "apa2" = "apa-apa"
            return self[word[:-1]]
        if len(word) >= 4 and word.isalpha():
            # Typos keep the first letter; proper nouns ("Karawang") must not look like words.
            targets = [target for target in self._typo_targets if target[0] == word[0]]
            close = get_close_matches(word, targets, n=1, cutoff=0.8)
            if close:
                return self._concepts[close[0]]
        return None

    def concepts(self, words: list[str]) -> list[str | None]:
        """Concept of each word, in order."""
        return [self[word] for word in words]


# --- numbered choices ------------------------------------------------------------------------

_NUMBER_WORDS = {
    "satu": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "pertama": 1, "kesatu": 1, "kedua": 2, "ketiga": 3, "keempat": 4, "kelima": 5,
}  # fmt: skip
_CHOICE_PREFIXES = set(
    "no nomor nomer nmr pilih pilihan jawab jawaban opsi option number angka ke".split()
)
_GLUED_CHOICE = re.compile(r"(?:no|nomor|nomer|nmr|pilihan|pilih|opsi)?([0-9])")
# "2 bulan lagi kuliah" tells a duration, not option 2.
_TIME_UNITS = {"bulan", "bln", "minggu", "mgg", "tahun", "thn", "th", "hari", "jam", "kali", "x"}


def _choice(words: list[str]) -> tuple[int, int] | None:
    """The option number a reply starts with ("no 2", "dua", "2️⃣") and where its rest begins."""
    i = 0
    while i < len(words) and (words[i] in _CHOICE_PREFIXES or _STATUS_WORDS[words[i]] == "filler"):
        i += 1
    if i == len(words):
        return None
    number = _NUMBER_WORDS.get(words[i])
    if number is None and (glued := _GLUED_CHOICE.fullmatch(words[i])):
        number = int(glued[1])
    if number is None or (i + 1 < len(words) and words[i + 1] in _TIME_UNITS):
        return None
    return number, i + 1


# --- employment status -----------------------------------------------------------------------

_STATUS_WORDS = _Vocabulary(
    {
        "work": "kerja bekerja kerjaan pekerjaan pekerja krj kerjo bkrj gawe working work job "
        "employed karyawan karyawati pegawai buruh operator staff diterima keterima",
        "workplace": "pabrik pt cv perusahaan kantor garmen garment konveksi factory company",
        "self": "usaha wirausaha wiraswasta bisnis business freelance freelancer umkm",
        "trade": "jualan jual berjualan jualin dagang berdagang dagangan olshop reseller dropship "
        "dropshipper warung toko kios lapak jahitan orderan pesanan katering catering selling shop "
        "ojek ngojek ojol",
        "craft": "jahit menjahit njahit bordir obras sablon",
        "solo": "sendiri mandiri self own",
        "study": "kuliah kampus sekolah kursus pelatihan training pesantren mondok belajar les "
        "studi study studying student mahasiswa siswa college university universitas univ "
        "school course smk sma paket magang diklat blk lpk",
        "seek": "nganggur menganggur pengangguran cari nyari mencari lamar melamar ngelamar "
        "nglamar lamaran nunggu menunggu tunggu panggilan lowongan loker interview wawancara phk "
        "resign dipecat dirumahkan jobless unemployed looking seeking",
        "want": "mau ingin pengen pingin pgn butuh perlu need want",
        "not_yet": "belum blm blom belom",
        "neg": "tidak tdk tak gak ga gk g nggak ngga enggak engga ndak nda kagak kaga ora not no "
        "dont don never havent haven keluar berhenti",
        "already": "sudah udah sdh udh dah uda sdah already",
        "get": "dapat dpt dapet dpet dpat punya ada got found have has",
        "lead": "lanjut lanjutin melanjutkan ikut masuk mulai jadi jd sebagai sbg buka bantu",
        "place": "di pada nang neng at in",
        "connector": "ke as for dengan dgn",
        "breaker": "sambil tapi tp tetapi namun sejak karena krn soalnya selama dan and bulan "
        "minggu tahun hari besok kemarin kemaren",
        "filler": "kak ka kakak kk mas mba mbak bu ibu pak bapak bang min admin ya iya sih dong "
        "deh nih kok lah aja saja saya sy aku aq gue gw sekarang skrg skg alhamdulillah "
        "syukur puji tuhan insyaallah masih msh lagi lg sedang sdg baru ini yang yg juga jg "
        "ortu i am im m t s ve a an the my still currently now hehe wkwk halo hai ok oke",
    },
    typo_targets="kerja bekerja kerjaan pekerjaan pabrik usaha wirausaha wiraswasta jualan "
    "dagang kuliah sekolah kursus pelatihan nganggur menganggur mencari nyari melamar belum tidak",
)
_WORK_DENIERS = {"neg", "not_yet", "seek", "want"}  # "belum dapat kerja", "lagi cari kerja"
_DENIERS = {"neg", "not_yet", "want"}  # "belum punya usaha", "pengen kuliah"
# Looking back for a denial stops at a clause end or at another status word:
# in "belum kerja, masih kuliah" the "belum" denies the work, not the studies.
_DENIAL_STOPS = {"already", "breaker", "work", "workplace", "self", "trade", "study", "seek"}
_SKIPPED_BEFORE_DETAIL = {
    "filler", "already", "get", "work", "self", "solo", "lead", "place", "connector"
}  # fmt: skip
_DETAIL_ENDS = {"breaker", "already", "neg", "not_yet", "seek"}
_TRIMMED_AFTER_DETAIL = {"filler", "place", "connector"}


def _resolve_self(concepts: list[str | None]) -> list[str | None]:
    """Mark "kerja sendiri", "jahit sendiri", "self employed" as running one's own business."""
    resolved = list(concepts)
    for i, concept in enumerate(concepts):
        if concept != "solo":
            continue
        before = concepts[i - 1] if i else None
        after = concepts[i + 1] if i + 1 < len(concepts) else None
        if before in {"work", "craft", "lead", "self", "trade"}:
            resolved[i] = "self"
            resolved[i - 1] = {"work": "self", "craft": "trade"}.get(before, before)
        elif after == "work":
            resolved[i] = resolved[i + 1] = "self"
    return resolved


def _denied(concepts: list[str | None], i: int, deniers: set[str]) -> bool:
    """Whether a word within three words before word i denies it ("belum dapat kerja")."""
    seen = 0
    for concept in reversed(concepts[:i]):
        if concept == "filler":
            continue
        if concept in deniers:
            return True
        seen += 1
        if concept in _DENIAL_STOPS or seen == 3:
            return False
    return False


def _next_meaningful(concepts: list[str | None], i: int) -> str | None:
    """Concept of the first non-filler word after word i."""
    return next((c for c in concepts[i + 1 :] if c != "filler"), None)


def _status_from_words(concepts: list[str | None]) -> tuple[str, int] | None:
    """Status the words of a reply tell, and the index of the word that tells it."""
    first: dict[str, int] = {}
    for i, concept in enumerate(concepts):
        if concept == "work":
            denied = _denied(concepts, i, _WORK_DENIERS)
            denied = denied or _next_meaningful(concepts, i) == "not_yet"  # "kerja? belum"
            first.setdefault(SEEKING if denied else EMPLOYED, i)
        elif concept in {"self", "trade"} and not _denied(concepts, i, _DENIERS):
            first.setdefault(SELF_EMPLOYED, i)
        elif concept == "study" and not _denied(concepts, i, _DENIERS):
            first.setdefault(STUDYING, i)
        elif concept == "seek":
            first.setdefault(SEEKING, i)
        elif concept == "workplace":
            first.setdefault("workplace", i)
    # A job beats a side business, a business beats studies, and any of them beats job hunting.
    for status in (EMPLOYED, SELF_EMPLOYED, STUDYING, SEEKING):
        if status in first:
            return status, first[status]
    if "workplace" in first:  # "di pabrik sepatu"
        return EMPLOYED, first["workplace"]
    # A bare "belum" / "sudah" echoes option 3 "belum bekerja" / option 1 "sudah bekerja".
    meaningful = {concept for concept in concepts if concept != "filler"}
    if "not_yet" in meaningful and meaningful <= {"not_yet", "get"}:
        return SEEKING, 0
    if meaningful == {"already"}:
        return EMPLOYED, 0
    return None


def _after_place(concepts: list[str | None], start: int) -> int:
    """Index after the first "di" / "at" before the clause ends, or start when there is none."""
    for i in range(start, len(concepts)):
        if concepts[i] in _DETAIL_ENDS:
            break
        if concepts[i] == "place":
            return i + 1
    return start


def _detail(
    prepared: str, spans: list[tuple[int, int]], concepts: list[str | None], start: int
) -> str | None:
    """Employer, business or school named from word `start` on, in the sender's own spelling."""
    end = len(concepts)
    while start < end and concepts[start] in _SKIPPED_BEFORE_DETAIL:
        start += 1
    for i in range(start, end):
        gap = prepared[spans[i - 1][1] : spans[i][0]] if i > start else ""
        if concepts[i] in _DETAIL_ENDS or any(mark in gap for mark in ",;!?\n"):
            end = i
            break
    while end > start and concepts[end - 1] in _TRIMMED_AFTER_DETAIL:
        end -= 1
    if start >= end:
        return None
    detail = prepared[spans[start][0] : spans[end - 1][1]]
    return detail if any(ch.isalpha() for ch in detail) else None


def parse_status(text: str) -> tuple[str | None, str | None]:
    """Employment status, plus the employer, business or school when the reply names one."""
    prepared = _prepare(text)
    spans = [match.span() for match in _WORD.finditer(prepared)]
    words = [prepared[a:b].lower() for a, b in spans]
    concepts = _resolve_self(_STATUS_WORDS.concepts(words))
    choice = _choice(words)
    if choice and choice[0] in STATUS_BY_CHOICE:
        status, start = STATUS_BY_CHOICE[choice[0]], choice[1]
    elif choice:
        return None, None  # "5", "0": not an option
    elif found := _status_from_words(concepts):
        status, start = found
        # A place named first is the better anchor: "di pabrik sepatu, sudah kerja 3 bulan".
        anchor = {EMPLOYED: "workplace", SELF_EMPLOYED: "trade"}.get(status)
        if anchor and anchor in concepts[:start]:
            start = concepts.index(anchor)
    else:
        return None, None
    if status == SEEKING:
        return status, None
    if status == EMPLOYED and concepts[start : start + 1] != ["workplace"]:
        # The employer follows "di": in "jadi operator jahit di CV Berkah" the job is not it.
        start = _after_place(concepts, start)
    return status, _detail(prepared, spans, concepts, start)


# --- yes / no --------------------------------------------------------------------------------

_YES_NO_WORDS = _Vocabulary(
    {
        "yes": "ya iya iye iyo iyah yah y yoi yo yup yep yes yeah yea ok oke okey okay okeh "
        "okelah sip siap boleh bole blh mau bisa betul benar bener bnr btl setuju tentu pasti "
        "jelas mantap mantab sure absolutely certainly pakai pake dipakai terpakai kepake kepakai "
        "sesuai sering inggih nggih enggih leres gpp gapapa gakpapa",
        "no": "tidak tdk tak gak ga gk g nggak ngga enggak engga egak ndak nda kagak kaga kgk "
        "belum blm blom belom no nope nah not jangan jgn gamau gakmau ogah mboten ora henteu "
        "kurang jarang bukan n",
        "unsure": "tau tahu tw taw ngerti entah mungkin kadang bingung ragu maybe idk dunno "
        "perhaps lupa",
        "fine": "papa pp apa masalah problem",  # "gak papa", "tidak masalah": it is fine
        "other": "tahun",  # not a typo of "tahu"
    },
    typo_targets="tidak benar bener boleh belum enggak nggak setuju",
)
_YES_EMOJI = "👍👌✅✔🙆"
_NO_EMOJI = "👎❌✖🙅⛔"


def _yes_no_from_words(words: list[str]) -> bool | None:
    """Yes or no from the first word that tells it."""
    choice = _choice(words)
    if choice and choice[0] in (1, 2):  # asked as "1 = ya, 2 = tidak"
        return choice[0] == 1
    concepts = _YES_NO_WORDS.concepts(words)
    if "unsure" in concepts:  # "gak tau", "mungkin"
        return None
    for i, concept in enumerate(concepts):
        after = concepts[i + 1] if i + 1 < len(concepts) else None
        if concept == "no":
            return after == "fine"
        if concept == "yes":
            return after != "no"  # "ya gak", "iya tidak terpakai" end in no
    return None


def parse_yes_no(text: str) -> bool | None:
    """True for yes, False for no, None when the reply says neither (or both)."""
    prepared = _prepare(text)
    answers = set()
    if any(emoji in prepared for emoji in _YES_EMOJI):
        answers.add(True)
    if any(emoji in prepared for emoji in _NO_EMOJI):
        answers.add(False)
    if (in_words := _yes_no_from_words(normalize(prepared).split())) is not None:
        answers.add(in_words)
    return answers.pop() if len(answers) == 1 else None


# --- skill rating ----------------------------------------------------------------------------

_RATING_WORDS = _Vocabulary(
    {
        "great": "mahir ahli jago pro expert excellent sempurna hebat mantap mantab master perfect",
        "good": "bagus bgus bgs baik good lancar paham mengerti ngerti",
        "able": "bisa bs bsa mampu menguasai kuasai",
        "fair": "lumayan lmyn lumayanlah cukup biasa sedang standar standard average okay ok oke "
        "fair",
        "weak": "kurang krg sedikit dikit lemah poor",
        "bad": "buruk jelek parah bad terrible",
        "learning": "belajar",
        "neg": "tidak tdk gak ga gk nggak ngga enggak belum blm blom ndak not",
        "intense": "sangat sgt banget bgt bngt sekali skali amat very really super",
    },
    typo_targets="lumayan bagus mahir kurang sangat banget lancar",
)
_HEADS = {"great", "good", "able", "fair", "weak", "bad", "learning"}
_RATING_BY_WORDS = {  # (modifier, head) -> rating; "" when unmodified
    ("", "great"): 5, ("", "good"): 4, ("", "able"): 3, ("", "fair"): 3,
    ("", "weak"): 2, ("", "learning"): 2, ("", "bad"): 1,
    ("intense", "great"): 5, ("intense", "good"): 5, ("intense", "able"): 4,
    ("intense", "fair"): 3, ("intense", "weak"): 1, ("intense", "bad"): 1,
    ("neg", "great"): 3, ("neg", "good"): 2, ("neg", "able"): 1, ("neg", "fair"): 2,
    ("neg", "bad"): 3,
    ("fair", "great"): 4, ("fair", "good"): 3, ("fair", "able"): 3,
    ("weak", "great"): 3, ("weak", "good"): 2, ("weak", "able"): 2,
}  # fmt: skip
_OUT_OF_FIVE = re.compile(r"(\d+)\s*(?:/|dari|of|out of)\s*5\b")
_DECIMAL = re.compile(r"\d[.,]\d")
_STARS = "⭐★🌟"


def _in_range(rating: int) -> int | None:
    """The rating when it is on the 1-5 scale."""
    return rating if 1 <= rating <= 5 else None


def _rating_from_words(concepts: list[str | None]) -> int | None:
    """Rating told in words: "lumayan" 3, "bagus sekali" 5, "belum bisa" 1."""
    known = [concept for concept in concepts if concept]
    head_at = next((i for i, concept in enumerate(known) if concept in _HEADS), None)
    if head_at is None:
        return None
    head = known[head_at]
    before = known[head_at - 1] if head_at else ""
    after = known[head_at + 1] if head_at + 1 < len(known) else ""
    modifier = ""
    if head in {"fair", "weak"} and after in {"great", "good", "able"}:  # "kurang bisa"
        modifier, head = head, after
    elif before in {"neg", "intense"}:  # "belum bisa", "sangat kurang"
        modifier = before
    elif after in {"intense", "weak"}:  # "bagus sekali", "bisa sedikit"
        modifier = after
    return _RATING_BY_WORDS.get((modifier, head))


def parse_rating(text: str) -> int | None:
    """Skill self-rating 1-5 from digits, number words, stars or words; None otherwise."""
    prepared = _prepare(text)
    if _DECIMAL.search(prepared):  # "3,5" is between two answers
        return None
    if out_of_five := _OUT_OF_FIVE.search(prepared.lower()):
        return _in_range(int(out_of_five[1]))
    words = normalize(prepared).split()
    numbers = {int(word) for word in words if word.isdigit()}
    numbers |= {_NUMBER_WORDS[word] for word in words if word in _NUMBER_WORDS}
    if numbers:
        return _in_range(numbers.pop()) if len(numbers) == 1 else None
    if stars := sum(prepared.count(star) for star in _STARS):
        return _in_range(stars)
    return _rating_from_words(_RATING_WORDS.concepts(words))


# --- "any obstacle or help needed?" ----------------------------------------------------------

# No typo tolerance here: an unknown word may describe a need, and a need must not be lost.
_NOTHING_WORDS = _Vocabulary(
    {
        "nothing": "tidak tdk tak gak ga gk g nggak ngga enggak engga ndak nda kagak kaga belum "
        "blm blom belom no nope none nothing nihil kosong aman lancar cukup beres baik sehat fine "
        "good terkendali normal",
        "neutral": "ada apa apapun kendala kendla kndala masalah hambatan kesulitan bantuan butuh "
        "perlu dibutuhkan diperlukan sih kak ka kakak mas mba mbak bu pak min ya iya sejauh ini "
        "untuk utk saat sementara sekarang skrg alhamdulillah puji tuhan semua "
        "semuanya sudah udah sdh kok dulu yang yg saya sy aku insyaallah aja saja lah dong deh so "
        "far all everything is problem problems issue issues thanks thank you terima kasih "
        "makasih trims thx mksh any kayaknya sepertinya masih ok oke",
    }
)
_NOTHING_SYMBOLS = "-–—.👍👌✅"


def means_nothing(text: str) -> bool:
    """Whether a reply to "any obstacle or help needed?" says there is none."""
    words = normalize(text).split()
    if not words:
        return any(symbol in _prepare(text) for symbol in _NOTHING_SYMBOLS)
    concepts = _NOTHING_WORDS.concepts(words)
    return None not in concepts and "nothing" in concepts


# --- keywords --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    """A command a graduate or staff member typed; argument is "" when there is none."""

    name: str
    argument: str


_PLAIN_KEYWORDS = {
    "BANTUAN": "help", "MENU": "help", "HELP": "help",
    "LOWONGAN": "jobs", "LOKER": "jobs",
    "CEK": "checkin", "CHECKIN": "checkin",
    "BERHENTI": "stop", "STOP": "stop", "UNSUBSCRIBE": "stop",
    "MULAI": "start", "START": "start",
}  # fmt: skip
_CODE_KEYWORDS = {"MINAT": "interest", "GABUNG": "join"}
_TEXT_KEYWORDS = {"SIARAN": "broadcast", "REKAP": "summary"}
_EDGE_MARKS = re.compile(r"^[\W_]+|[\W_]+$")  # "*STOP*", "Stop.", "stop 🙏"


def parse_keyword(text: str) -> Keyword | None:
    """The command a whole message consists of, or None when the message is not a command."""
    text = unicodedata.normalize("NFKC", text or "").strip()
    core = _EDGE_MARKS.sub("", text)
    bare = re.sub(r"[\s\-_]+", "", core).upper()  # "check in", "CHECK-IN"
    if bare in _PLAIN_KEYWORDS:
        return Keyword(_PLAIN_KEYWORDS[bare], "")
    first, rest = (core.split(maxsplit=1) + ["", ""])[:2]
    first = _EDGE_MARKS.sub("", first).upper()  # "MINAT: AB12"
    if first in _CODE_KEYWORDS:
        return Keyword(_CODE_KEYWORDS[first], re.sub(r"\s+", "", rest).upper())
    if first in _TEXT_KEYWORDS:
        # Broadcast and summary text is kept as typed, trailing punctuation included.
        return Keyword(_TEXT_KEYWORDS[first], re.sub(r"^\S+\s*", "", text, count=1).strip())
    return None
