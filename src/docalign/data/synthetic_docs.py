"""A deterministic generator of documents of many kinds: offline data for classification and document QA.

``render_document(seed, index, kind)`` draws one page of a kind (``KINDS``: RVL-CDIP's sixteen classes, which
also cover Tobacco-3482's ten, see ``TOBACCO3482_KINDS``) and depends only on its arguments. A kind shows in
both its layout (a letter's address block and signature, a memo's TO/FROM header, an invoice's table and
totals, a news article's two columns under a masthead, a presentation's big centred title and bullets, a file
folder's few large words on a tab...) and its words (each kind has its own vocabulary, mixed with shared filler
words so that no single word gives the class away). Variety within a kind: page size, margins, font family
(PIL's default font, and DejaVu Sans / Serif / Mono when matplotlib's fonts are installed), font size, bold
titles, line spacing, optional blocks, background tone, pixel noise and a skew of up to +-2 degrees (the word
boxes are rotated with the page and re-enclosed, so words stay inside their boxes).

Each page carries its words and pixel boxes in reading order (as drawn: the box PIL reports for the glyphs),
its class (``doc_label``) and question/answer pairs over fields rendered on it ("What is the invoice
date?"), each with the word span of its answer.

Difficulty (``render_document(..., difficulty=)``, ``DIFFICULTIES``): at ``easy`` (the default, the pages above)
the words alone give the class away. At ``hard`` the class shows only in the words and the layout together: kinds
share their words within text groups (``TEXT_GROUPS``, each group of kinds that look unlike each other), a page is
at times drawn with the template of its layout partner (``LAYOUT_PARTNERS``, a kind that looks alike, of another
group), and OCR-like noise drops and misreads words (``Difficulty`` has the knobs). Labels stay the kind drawn.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .document import Document, QAPair

KINDS: tuple[str, ...] = (
    "letter",
    "form",
    "email",
    "handwritten",
    "advertisement",
    "scientific report",
    "scientific publication",
    "specification",
    "file folder",
    "news article",
    "budget",
    "invoice",
    "presentation",
    "questionnaire",
    "resume",
    "memo",
)
# Tobacco-3482's folders -> the kind drawn for them (Note: short handwritten notes; Report: reports).
TOBACCO3482_KINDS: dict[str, str] = {
    "ADVE": "advertisement",
    "Email": "email",
    "Form": "form",
    "Letter": "letter",
    "Memo": "memo",
    "News": "news article",
    "Note": "handwritten",
    "Report": "scientific report",
    "Resume": "resume",
    "Scientific": "scientific publication",
}


@dataclass(frozen=True)
class Difficulty:
    """How hard the pages are to classify: knobs that blur what text alone and layout alone tell (all 0: ``easy``).

    Each knob is a probability or a share, in [0, 1]:

    - ``group_vocab``: a kind-specific word is drawn from its text group's pooled vocabulary (``TEXT_GROUPS``)
      instead of the kind's own, so the body text tells the group, hardly the kind.
    - ``swap_words``: share of the words outside the QA answers replaced by words of another page of the text
      group, template words, numbers and rules included ("MEMORANDUM", "Dear", "Bill to:", "$4,407.93", "____"),
      so the words stop naming the template.
    - ``swap_template``: chance that the page is laid out with its layout partner's template
      (``LAYOUT_PARTNERS``, a kind of another text group) while its words stay its own group's, so layout alone
      confuses the partners and the words tell them apart.
    - ``drop_words``, ``typos``: OCR-like noise outside the QA answers: a word is not printed, or one of its
      characters is swapped for a look-alike ("o" -> "0", "m" -> "rn").
    """

    group_vocab: float = 0.0
    swap_words: float = 0.0
    swap_template: float = 0.0
    drop_words: float = 0.0
    typos: float = 0.0

    def __post_init__(self) -> None:
        bad = {k: v for k, v in vars(self).items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"difficulty knobs are probabilities in [0, 1], got {bad}")


# The difficulties by name (``data.init_args.synthetic_difficulty``): ``easy`` is the generator as first written
# (each kind its own words and template); ``hard`` was tuned with benchmarks/synthetic_difficulty.py (linear probes:
# text alone and layout alone each well below the two together; docs/RESULTS.md).
DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(),
    "hard": Difficulty(group_vocab=1.0, swap_words=0.8, swap_template=0.4, drop_words=0.05, typos=0.05),
}
# Kinds whose pages share words at a hard difficulty. A group takes one kind of each look (running text: letter,
# memo, email, report; columns: publication, news; a few big words: handwritten, advertisement, file folder,
# presentation; rows and tables: the rest; 16 kinds in 5 groups leave the last group two of rows, invoice and
# questionnaire), so what the words confuse, the layout tells apart. Measured against groups of kinds that read
# alike (memo/email/letter, report/publication, budget/invoice/specification, form/questionnaire, the rest alone):
# those confuse the same pairs in words and layout, so both together gained less over the better of one (linear
# probes of benchmarks/synthetic_difficulty.py with those groups put in by hand, 320 train / 160 test pages,
# 2026-12-07: text 0.71, layout 0.48, both 0.84, against 0.60, 0.56, 0.89 with these).
TEXT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("scientific report", "scientific publication", "specification"),
    ("memo", "budget", "presentation"),
    ("letter", "resume", "handwritten"),
    ("email", "form", "file folder"),
    ("news article", "advertisement", "questionnaire", "invoice"),
)
# Pairs of kinds of the same look and different text groups, each drawn with the other's template at times
# (``Difficulty.swap_template``): what the layout confuses, the words tell apart.
LAYOUT_PARTNERS: dict[str, str] = {
    a: b
    for x, y in (
        ("letter", "memo"),
        ("email", "scientific report"),
        ("news article", "scientific publication"),
        ("budget", "invoice"),
        ("form", "questionnaire"),
        ("specification", "resume"),
        ("handwritten", "file folder"),
        ("advertisement", "presentation"),
    )
    for a, b in ((x, y), (y, x))
}


def difficulty_knobs(difficulty: "str | Difficulty") -> Difficulty:
    """The knobs of a difficulty given by name (``DIFFICULTIES``) or as knobs."""
    if isinstance(difficulty, Difficulty):
        return difficulty
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"unknown synthetic document difficulty {difficulty!r}; the difficulties are {', '.join(DIFFICULTIES)}"
        )
    return DIFFICULTIES[difficulty]


_FIRST = [
    "John",
    "Mary",
    "Robert",
    "Linda",
    "James",
    "Susan",
    "David",
    "Karen",
    "Peter",
    "Alice",
    "Thomas",
    "Helen",
    "Paul",
    "Nancy",
    "Mark",
    "Laura",
]
_LAST = [
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Miller",
    "Wilson",
    "Moore",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Green",
    "Baker",
]
_COMPANY = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Tyrell", "Cyberdyne"]
_SUFFIX = ["Inc.", "Corp.", "Ltd.", "Group", "Company", "Labs"]
_CITY = ["Richmond", "Boston", "Denver", "Austin", "Chicago", "Seattle", "Atlanta", "Raleigh"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_FILLER = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "with",
    "on",
    "is",
    "was",
    "this",
    "that",
    "by",
    "as",
    "we",
    "our",
    "all",
    "new",
    "will",
    "be",
    "at",
    "from",
    "have",
    "are",
    "which",
    "also",
    "more",
    "results",
]
_VOCAB: dict[str, list[str]] = {
    "letter": [
        "sincerely",
        "dear",
        "regards",
        "thank",
        "letter",
        "enclosed",
        "request",
        "reply",
        "kindly",
        "sir",
        "madam",
        "pleased",
        "inform",
        "writing",
        "respectfully",
    ],
    "memo": [
        "memorandum",
        "meeting",
        "please",
        "review",
        "attached",
        "department",
        "staff",
        "policy",
        "effective",
        "schedule",
        "action",
        "internal",
        "note",
        "agenda",
    ],
    "email": [
        "sent",
        "message",
        "reply",
        "forwarded",
        "thanks",
        "attachment",
        "cc",
        "fyi",
        "call",
        "tomorrow",
        "update",
        "asap",
        "inbox",
        "thread",
    ],
    "handwritten": [
        "call",
        "me",
        "back",
        "remember",
        "pick",
        "up",
        "tomorrow",
        "ok",
        "thx",
        "see",
        "you",
        "note",
        "later",
        "ask",
    ],
    "advertisement": [
        "new",
        "now",
        "free",
        "save",
        "offer",
        "best",
        "taste",
        "try",
        "today",
        "only",
        "great",
        "flavor",
        "smooth",
        "premium",
        "discover",
        "limited",
    ],
    "scientific report": [
        "study",
        "sample",
        "method",
        "analysis",
        "observed",
        "report",
        "summary",
        "findings",
        "tested",
        "data",
        "group",
        "measured",
        "control",
        "exposure",
    ],
    "scientific publication": [
        "abstract",
        "introduction",
        "et",
        "al",
        "fig",
        "significant",
        "hypothesis",
        "journal",
        "references",
        "experiment",
        "correlation",
        "cells",
        "mice",
        "vitro",
    ],
    "specification": [
        "specification",
        "moisture",
        "weight",
        "tolerance",
        "length",
        "diameter",
        "filter",
        "paper",
        "tipping",
        "grade",
        "minimum",
        "maximum",
        "mm",
        "mg",
    ],
    "file folder": ["file", "folder", "confidential", "records", "archive", "box", "correspondence", "vol"],
    "news article": [
        "said",
        "yesterday",
        "according",
        "officials",
        "reported",
        "city",
        "state",
        "told",
        "week",
        "government",
        "public",
        "announced",
        "spokesman",
        "court",
    ],
    "budget": [
        "budget",
        "expenses",
        "salaries",
        "travel",
        "supplies",
        "total",
        "fiscal",
        "year",
        "actual",
        "projected",
        "variance",
        "equipment",
        "overhead",
        "quarter",
    ],
    "invoice": [
        "invoice",
        "bill",
        "qty",
        "unit",
        "price",
        "amount",
        "due",
        "payment",
        "terms",
        "net",
        "shipping",
        "tax",
        "subtotal",
        "remit",
    ],
    "presentation": [
        "overview",
        "objectives",
        "strategy",
        "growth",
        "market",
        "key",
        "goals",
        "plan",
        "next",
        "steps",
        "opportunities",
        "share",
        "brand",
        "targets",
    ],
    "questionnaire": [
        "how",
        "often",
        "do",
        "you",
        "yes",
        "no",
        "never",
        "sometimes",
        "always",
        "agree",
        "disagree",
        "rate",
        "question",
        "survey",
    ],
    "resume": [
        "education",
        "experience",
        "skills",
        "university",
        "degree",
        "manager",
        "responsible",
        "references",
        "employment",
        "objective",
        "born",
        "languages",
        "awards",
        "present",
    ],
    "form": [
        "name",
        "address",
        "signature",
        "date",
        "phone",
        "number",
        "approved",
        "check",
        "box",
        "office",
        "use",
        "only",
        "code",
        "department",
    ],
}
_GROUP_OF: dict[str, tuple[str, ...]] = {kind: group for group in TEXT_GROUPS for kind in group}
# A kind's text group's pooled vocabulary (each word once, in a fixed order).
_GROUP_VOCAB: dict[str, list[str]] = {
    kind: list(dict.fromkeys(w for k in _GROUP_OF[kind] for w in _VOCAB[k])) for kind in _VOCAB
}
# OCR look-alikes: a character (or pair) and what it is misread as.
_TYPOS: dict[str, str] = {
    "o": "0",
    "O": "0",
    "l": "1",
    "i": "l",
    "I": "l",
    "e": "c",
    "c": "e",
    "a": "o",
    "s": "5",
    "S": "5",
    "B": "8",
    "g": "q",
    "m": "rn",
    "rn": "m",
    "n": "h",
    "h": "b",
    "t": "f",
    "u": "v",
    "E": "F",
    "D": "O",
}
_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")


def _font_dir() -> Optional[Path]:
    try:  # matplotlib (the `plot` extra) ships the DejaVu fonts; without it, PIL's own default font only
        import matplotlib
    except ImportError:
        return None
    folder = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    return folder if folder.is_dir() else None


def font_families() -> list[Optional[str]]:
    """The font files available here (None: PIL's default font), in a fixed order."""
    folder = _font_dir()
    return [None] + ([str(folder / f) for f in _FONT_FILES if (folder / f).exists()] if folder else [])


def _font(family: Optional[str], size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size) if family is None else ImageFont.truetype(family, size)


@dataclass
class _Run:
    """Words drawn on one line from ``x`` (a fraction of the page width), ``scale`` times the body font size."""

    words: list[str]
    x: Optional[float]  # None: right after the previous run of the line
    scale: float = 1.0
    field: Optional[str] = None  # a QA field: the question asked about these words
    align: str = "l"  # "l": x is the left edge, "r": the right edge, "c": the centre
    bold: bool = False


Line = list[_Run]  # an empty list is a blank line


class _Page:
    """The content being laid out: lines of runs, and the questions of the fields on them."""

    def __init__(self, rng: random.Random, kind: str, chars_per_line: int, knobs: Optional[Difficulty] = None) -> None:
        self.rng, self.kind, self.chars = rng, kind, chars_per_line
        self.knobs = knobs or DIFFICULTIES["easy"]
        self.template = kind  # whose layout is drawn (``Difficulty.swap_template`` may pick the layout partner's)
        self.lines: list[Line] = []
        self.questions: dict[str, str] = {}

    def add(self, *runs: _Run) -> None:
        self.lines.append(list(runs))

    def blank(self, n: int = 1) -> None:
        self.lines.extend([] for _ in range(n))

    def field(
        self,
        key: str,
        question: str,
        label: Optional[list[str]],
        value: list[str],
        x: float,
        value_x: Optional[float] = None,
        scale: float = 1.0,
    ) -> None:
        """A line ``label value``; ``question`` is asked about ``value``."""
        self.questions[key] = question
        runs = [] if not label else [_Run(label, x, scale, bold=True)]
        self.add(*runs, _Run(value, value_x if label else x, scale, field=key))  # None: right after the label

    def words(self, n: int, own: float = 0.45) -> list[str]:
        """``n`` words: each of the kind's vocabulary with chance ``own`` (or, with chance ``knobs.group_vocab``, of
        its text group's pooled vocabulary instead), else a filler word."""
        if self.knobs.group_vocab:
            return [self.own_word() if self.rng.random() < own else self.rng.choice(_FILLER) for _ in range(n)]
        vocab = _VOCAB[self.kind]
        return [self.rng.choice(vocab) if self.rng.random() < own else self.rng.choice(_FILLER) for _ in range(n)]

    def own_word(self) -> str:
        """A word of the kind's vocabulary, or with chance ``knobs.group_vocab`` of its text group's."""
        if self.rng.random() < self.knobs.group_vocab:
            return self.rng.choice(_GROUP_VOCAB[self.kind])
        return self.rng.choice(_VOCAB[self.kind])

    def paragraph(self, n_words: int, x: float, width: float, own: float = 0.45) -> None:
        for line in self.wrap(self.words(n_words, own), width):
            self.add(_Run(line, x))

    def wrap(self, words: list[str], width: float) -> list[list[str]]:
        limit, lines, line, used = max(8, int(self.chars * width)), [], [], 0
        for w in words:
            if line and used + len(w) + 1 > limit:
                lines.append(line)
                line, used = [], 0
            line.append(w)
            used += len(w) + 1
        return lines + ([line] if line else [])

    def columns(self, n_words: int, xs: tuple[float, ...], width: float) -> None:
        cols = [self.wrap(self.words(n_words), width) for _ in xs]
        for row in range(max(len(c) for c in cols)):
            self.add(*[_Run(c[row], x) for c, x in zip(cols, xs) if row < len(c)])


# --- values ---------------------------------------------------------------------------------------------
def _person(rng: random.Random) -> list[str]:
    return [rng.choice(_FIRST), rng.choice(_LAST)]


def _company(rng: random.Random) -> list[str]:
    return [rng.choice(_COMPANY), rng.choice(_SUFFIX)]


def _date(rng: random.Random) -> list[str]:
    year = rng.randint(1975, 2001)
    if rng.random() < 0.5:
        return [rng.choice(_MONTHS), f"{rng.randint(1, 28)},", str(year)]
    return [f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{year % 100:02d}"]


def _money(rng: random.Random, lo: int = 10, hi: int = 9000) -> str:
    return f"${rng.randint(lo, hi):,}.{rng.randint(0, 99):02d}"


# --- one layout per kind ----------------------------------------------------------------------------------
def _letter(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run(_company(r), 0.5, 1.5, align="c", bold=True))
    p.blank()
    p.field("date", "What is the date of the letter?", None, _date(r), 1 - m - 0.3)
    p.blank()
    p.field("recipient", "Who is the letter addressed to?", None, _person(r), m)
    p.add(_Run([str(r.randint(1, 999)), r.choice(_LAST), "Street"], m))
    p.add(_Run([r.choice(_CITY)], m))
    p.blank()
    p.add(_Run(["Dear", r.choice(["Mr.", "Ms.", "Dr."]), r.choice(_LAST) + ":"], m))
    for _ in range(r.randint(2, 4)):
        p.paragraph(r.randint(25, 60), m, 1 - 2 * m)
        p.blank()
    p.add(_Run([r.choice(["Sincerely,", "Regards,", "Respectfully,"])], m + 0.4))
    p.blank()
    p.field("sender", "Who signed the letter?", None, _person(r), m + 0.4)


def _memo(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run(["MEMORANDUM"] if r.random() < 0.7 else ["INTER-OFFICE", "MEMO"], m, 1.6, bold=True))
    p.blank()
    col = m + 0.14
    p.field("to", "Who is the memo to?", ["TO:"], _person(r), m, col)
    p.field("from", "Who is the memo from?", ["FROM:"], _person(r), m, col)
    p.field("date", "What is the date of the memo?", ["DATE:"], _date(r), m, col)
    p.field("subject", "What is the subject of the memo?", ["SUBJECT:"], p.words(r.randint(2, 4), 0.8), m, col)
    p.add(_Run(["_" * int(p.chars * (1 - 2 * m))], m))
    for _ in range(r.randint(2, 4)):
        p.paragraph(r.randint(20, 50), m, 1 - 2 * m)
        p.blank()


def _email(p: _Page, m: float) -> None:
    r = p.rng
    sender = _person(r)
    p.field("from", "Who sent the email?", ["From:"], sender, m, m + 0.12)
    p.add(_Run(["Sent:"], m, bold=True), _Run([r.choice(["Monday,", "Tuesday,", "Friday,"]), *_date(r)], m + 0.12))
    p.field(
        "to",
        "Who received the email?",
        ["To:"],
        [(_person(r)[0] + "@" + r.choice(_COMPANY)).lower() + ".com"],
        m,
        m + 0.12,
    )
    p.field(
        "subject",
        "What is the subject of the email?",
        ["Subject:"],
        ["RE:"] + p.words(r.randint(2, 4), 0.8),
        m,
        m + 0.12,
    )
    p.blank()
    for _ in range(r.randint(1, 3)):
        p.paragraph(r.randint(15, 40), m, 1 - 2 * m)
        p.blank()
    p.add(_Run([sender[0]], m))


def _handwritten(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run([r.choice(["Note", "To", "Hi"]) + ":"], m, 1.8))
    p.field("name", "Who is the note for?", None, [r.choice(_FIRST)], m + 0.15, scale=1.8)
    p.blank()
    for line in p.wrap(p.words(r.randint(8, 20), 0.7), 0.5):
        p.add(_Run(line, m + r.uniform(0, 0.1), r.uniform(1.6, 2.1)))
    p.blank()
    p.field("date", "When was the note written?", None, _date(r), 0.5, scale=1.6)


def _advertisement(p: _Page, m: float) -> None:
    r = p.rng
    brand = [r.choice(["Merit", "Salem", "Winston", "Vantage", "Newport", "Camel"])]
    p.blank(r.randint(1, 4))
    p.field("brand", "Which brand is advertised?", None, brand, 0.5, scale=3.0)
    p.lines[-1][0].align = "c"
    p.blank()
    for _ in range(r.randint(1, 3)):
        p.add(_Run(p.words(r.randint(2, 4), 0.9), 0.5, 1.8, align="c", bold=True))
    p.blank(r.randint(2, 6))
    p.paragraph(r.randint(10, 25), 0.25, 0.5, 0.8)
    p.blank()
    p.field("price", "What is the advertised price?", ["Only"], [_money(r, 1, 20)], 0.35, scale=1.5)


def _report(p: _Page, m: float) -> None:
    r = p.rng
    p.field(
        "title",
        "What is the title of the report?",
        None,
        ["REPORT", "ON"] + p.words(r.randint(2, 3), 0.9),
        0.5,
        scale=1.4,
    )
    p.lines[-1][0].align = "c"
    p.field("author", "Who prepared the report?", ["Prepared", "by:"], _person(r), 0.3)
    p.field("date", "What is the date of the report?", ["Date:"], _date(r), 0.3)
    p.blank()
    for n, head in enumerate(r.sample(["SUMMARY", "METHODS", "RESULTS", "DISCUSSION", "CONCLUSIONS"], 3), 1):
        p.add(_Run([f"{n}.", head], m, 1.1, bold=True))
        p.paragraph(r.randint(25, 55), m, 1 - 2 * m)
        p.blank()


def _publication(p: _Page, m: float) -> None:
    r = p.rng
    title = [w.capitalize() for w in p.words(r.randint(4, 7), 0.8)]
    p.field("title", "What is the title of the paper?", None, title, 0.5, scale=1.3)
    p.lines[-1][0].align = "c"
    p.field("author", "Who is the first author?", None, _person(r) + ["et", "al."], 0.5)
    p.lines[-1][0].align = "c"
    p.blank()
    p.add(_Run(["Abstract"], 0.5, 1.1, align="c", bold=True))
    p.paragraph(r.randint(30, 50), 0.15, 0.7, 0.6)
    p.blank()
    p.columns(r.randint(70, 110), (m, 0.52), 0.46 - m)


def _specification(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run(["PRODUCT", "SPECIFICATION"], m, 1.4, bold=True))
    p.field(
        "code", "What is the specification number?", ["Spec", "No."], [f"{r.randint(100, 999)}-{r.randint(10, 99)}"], m
    )
    p.blank()
    for name in r.sample(_VOCAB["specification"][:12], r.randint(6, 10)):
        p.add(
            _Run([name.capitalize()], m),
            _Run([f"{r.uniform(0.1, 90):.2f}"], 0.55, align="r"),
            _Run([f"+/-{r.uniform(0.01, 2):.2f}"], 0.75, align="r"),
            _Run([r.choice(["mm", "mg", "%"])], 0.8),
        )
    p.blank()
    p.field("date", "When was the specification issued?", ["Issued:"], _date(r), m)


def _file_folder(p: _Page, m: float) -> None:
    r = p.rng
    p.blank(r.randint(2, 8))
    p.field(
        "label",
        "What is written on the folder?",
        None,
        [w.upper() for w in p.words(r.randint(1, 3), 1.0)],
        r.uniform(0.15, 0.4),
        scale=2.4,
    )
    p.add(
        _Run(["File", "No."], r.uniform(0.15, 0.4), 1.4), _Run([f"{r.randint(1, 99)}-{r.randint(100, 999)}"], None, 1.4)
    )
    if r.random() < 0.5:
        p.blank(r.randint(1, 4))
        p.add(_Run([f"{r.randint(1975, 2001)}"], r.uniform(0.15, 0.6), 2.0))


def _news(p: _Page, m: float) -> None:
    r = p.rng
    p.add(
        _Run(["The", r.choice(_CITY), r.choice(["Times", "Herald", "Post", "Journal"])], 0.5, 2.0, align="c", bold=True)
    )
    p.add(_Run(["_" * int(p.chars * (1 - 2 * m))], m))
    p.field(
        "headline", "What is the headline?", None, [w.capitalize() for w in p.words(r.randint(3, 6), 0.7)], m, scale=1.5
    )
    p.field("reporter", "Who wrote the article?", ["By"], _person(r), m)
    p.blank()
    p.columns(r.randint(80, 140), (m, 0.36, 0.68), 0.3 - m / 2)


def _budget(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run(["BUDGET"] + ([f"FY{r.randint(80, 99)}"] if r.random() < 0.6 else []), 0.5, 1.5, align="c", bold=True))
    p.blank()
    p.add(
        _Run(["Item"], m, bold=True),
        _Run(["Budget"], 0.6, align="r", bold=True),
        _Run(["Actual"], 1 - m, align="r", bold=True),
    )
    for item in r.sample(
        [
            "Salaries",
            "Travel",
            "Supplies",
            "Equipment",
            "Overhead",
            "Printing",
            "Consultants",
            "Rent",
            "Postage",
            "Telephone",
        ],
        r.randint(5, 9),
    ):
        p.add(
            _Run([item], m),
            _Run([_money(r, 100, 90000)], 0.6, align="r"),
            _Run([_money(r, 100, 90000)], 1 - m, align="r"),
        )
    p.blank()
    p.field("total", "What is the total budget?", ["TOTAL"], [_money(r, 100000, 900000)], m, 0.48)


def _invoice(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run(_company(r), m, 1.4, bold=True), _Run(["INVOICE"], 1 - m, 1.6, align="r", bold=True))
    p.field("number", "What is the invoice number?", ["Invoice", "No:"], [str(r.randint(10000, 99999))], 0.6)
    p.field("date", "What is the invoice date?", ["Date:"], _date(r), 0.6)
    p.field("customer", "Who is the invoice billed to?", ["Bill", "to:"], _company(r), m)
    p.blank()
    p.add(
        _Run(["Qty"], m, bold=True),
        _Run(["Description"], m + 0.1, bold=True),
        _Run(["Amount"], 1 - m, align="r", bold=True),
    )
    for _ in range(r.randint(2, 7)):
        p.add(
            _Run([str(r.randint(1, 50))], m),
            _Run(p.words(r.randint(1, 3), 0.2), m + 0.1),
            _Run([_money(r)], 1 - m, align="r"),
        )
    p.blank()
    p.field("total", "What is the amount due?", ["Amount", "due:"], [_money(r, 1000, 99000)], 0.55)
    p.add(_Run(["Terms:", "net", str(r.choice([10, 30, 60])), "days"], m))


def _presentation(p: _Page, m: float) -> None:
    r = p.rng
    p.blank(r.randint(0, 2))
    p.field(
        "title",
        "What is the title of the slide?",
        None,
        [w.capitalize() for w in p.words(r.randint(2, 4), 0.9)],
        0.5,
        scale=2.4,
    )
    p.lines[-1][0].align = "c"
    p.blank()
    for _ in range(r.randint(3, 6)):
        p.add(_Run(["*"] + p.words(r.randint(3, 6), 0.7), m + 0.08, 1.6))
        p.blank()


def _questionnaire(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run(["SURVEY"] if r.random() < 0.5 else ["QUESTIONNAIRE"], 0.5, 1.5, align="c", bold=True))
    p.field("respondent", "Who filled in the questionnaire?", ["Respondent:"], _person(r), m)
    p.blank()
    for n in range(1, r.randint(4, 8)):
        p.add(_Run([f"{n}."] + p.words(r.randint(5, 9), 0.7) + ["?"], m))
        p.add(
            *[
                _Run(["[", "]", opt], m + 0.05 + 0.2 * k)
                for k, opt in enumerate(r.sample(["Yes", "No", "Never", "Sometimes", "Always"], 3))
            ]
        )


def _resume(p: _Page, m: float) -> None:
    r = p.rng
    p.field("name", "Whose resume is this?", None, _person(r), 0.5, scale=1.6)
    p.lines[-1][0].align = "c"
    p.add(_Run([str(r.randint(1, 999)), r.choice(_LAST), "Ave.,", r.choice(_CITY)], 0.5, align="c"))
    p.blank()
    for head in ["EDUCATION", "EXPERIENCE", "SKILLS"]:
        p.add(_Run([head], m, 1.1, bold=True))
        for _ in range(r.randint(1, 3)):
            p.add(
                _Run([f"{r.randint(1960, 1990)}-{r.randint(1991, 2001)}"], m),
                _Run(p.words(r.randint(3, 6), 0.7), m + 0.2),
            )
        p.blank()
    p.field(
        "degree",
        "What degree does the applicant hold?",
        ["Degree:"],
        [r.choice(["B.S.", "M.S.", "Ph.D.", "M.B.A."])],
        m,
    )


def _form(p: _Page, m: float) -> None:
    r = p.rng
    p.add(_Run([w.upper() for w in p.words(2, 0.6)] + ["FORM"], m, 1.3, bold=True))
    p.blank()
    p.field("name", "What is the name on the form?", ["Name:"], _person(r), m, 0.3)
    p.field(
        "phone",
        "What is the phone number?",
        ["Phone:"],
        [f"({r.randint(200, 999)})", f"{r.randint(200, 999)}-{r.randint(1000, 9999)}"],
        m,
        0.3,
    )
    p.field("date", "What is the date on the form?", ["Date:"], _date(r), m, 0.3)
    for _ in range(r.randint(3, 6)):
        p.add(
            _Run([w.capitalize() for w in p.words(r.randint(1, 2), 0.8)] + [":"], m),
            _Run(["_" * r.randint(10, 25)], 0.3),
        )
    p.blank()
    p.add(_Run(["Signature:", "_" * 20], m), _Run(["Approved", "[", "]"], 0.65))


_LAYOUTS: dict[str, Callable[[_Page, float], None]] = {
    "letter": _letter,
    "form": _form,
    "email": _email,
    "handwritten": _handwritten,
    "advertisement": _advertisement,
    "scientific report": _report,
    "scientific publication": _publication,
    "specification": _specification,
    "file folder": _file_folder,
    "news article": _news,
    "budget": _budget,
    "invoice": _invoice,
    "presentation": _presentation,
    "questionnaire": _questionnaire,
    "resume": _resume,
    "memo": _memo,
}


def _lay_out(page: _Page, margin: float) -> None:
    """Fill ``page`` with its kind's template (or, at times, its layout partner's), then blur its words as
    ``page.knobs`` asks. At ``easy`` this is the kind's template alone and draws nothing more from the rng."""
    knobs, rng = page.knobs, page.rng
    if knobs.swap_template and rng.random() < knobs.swap_template:
        page.template = LAYOUT_PARTNERS[page.kind]
    _LAYOUTS[page.template](page, margin)
    if knobs.swap_words:
        _swap_words(page, margin)
    if knobs.drop_words or knobs.typos:
        _ocr_noise(page)


def _swap_words(page: _Page, margin: float) -> None:
    """Replace a share ``knobs.swap_words`` of the words outside QA answers by words of a page of a kind of the
    same text group (laid out with the same rng and thrown away): its template words, numbers and rules as well as
    its body, so that no word outside the answers tells which template is drawn."""
    rng = page.rng
    donor = _Page(rng, rng.choice(_GROUP_OF[page.kind]), page.chars, page.knobs)
    _LAYOUTS[donor.kind](donor, margin)
    pool = [w for line in donor.lines for run in line for w in run.words]
    for run in (run for line in page.lines for run in line if run.field is None):
        run.words = [rng.choice(pool) if rng.random() < page.knobs.swap_words else w for w in run.words]


def _ocr_noise(page: _Page) -> None:
    """Drop a share ``knobs.drop_words`` of the words outside QA answers (a run keeps at least one) and misread one
    character of a share ``knobs.typos`` of them."""
    knobs, rng = page.knobs, page.rng
    for run in (run for line in page.lines for run in line if run.field is None):
        kept = [w for w in run.words if rng.random() >= knobs.drop_words] or run.words[:1]
        run.words = [_typo(w, rng) if rng.random() < knobs.typos else w for w in kept]


def _typo(word: str, rng: random.Random) -> str:
    """``word`` with one look-alike substitution at a random place (unchanged when it has none)."""
    places = [(i, a) for a in _TYPOS for i in range(len(word)) if word.startswith(a, i)]
    if not places:
        return word
    i, a = rng.choice(places)
    return word[:i] + _TYPOS[a] + word[i + len(a) :]


def _fitting(widths: list[float], space: float, limit: float) -> list[float]:
    """The leading ``widths`` (pixels) whose words, ``space`` apart, span at most ``limit`` (at least one word)."""
    n = len(widths)
    while n > 1 and sum(widths[:n]) + space * (n - 1) > limit:
        n -= 1
    return widths[:n]


def _skew(
    box: tuple[float, float, float, float], angle: float, centre: tuple[float, float], size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """The box enclosing ``box`` rotated by ``angle`` degrees (counter-clockwise, as ``Image.rotate``), clipped."""
    cx, cy = centre
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    xs, ys = [], []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])):
        dx, dy = x - cx, y - cy
        xs.append(cx + dx * cos + dy * sin)
        ys.append(cy - dx * sin + dy * cos)
    w, h = size
    return (max(0.0, min(xs)), max(0.0, min(ys)), min(float(w), max(xs)), min(float(h), max(ys)))


def render_document(
    seed: int, index: int, kind: Optional[str] = None, difficulty: "str | Difficulty" = "easy"
) -> Document:
    """Render document ``index`` of the stream ``seed`` as a ``Document`` of class ``kind`` (default: ``KINDS[index %
    16]``), with words, pixel boxes, ``doc_label = kind`` and QA pairs over its rendered fields.

    ``difficulty`` (a name of ``DIFFICULTIES`` or ``Difficulty`` knobs) blurs what the words and the layout each
    tell; any other than ``easy`` draws from its own stream (named by its knobs), so it is not a perturbation of
    the easy page."""
    kind = kind or KINDS[index % len(KINDS)]
    if kind not in _LAYOUTS:
        raise ValueError(f"unknown document kind {kind!r}; the kinds are {', '.join(KINDS)}")
    knobs = difficulty_knobs(difficulty)
    easy = knobs == DIFFICULTIES["easy"]
    knob_values = "" if easy else "-" + "-".join(f"{v:g}" for v in vars(knobs).values())
    rng = random.Random(f"docalign-document-{seed}-{index}-{kind}{knob_values}")
    width = rng.randint(560, 760)
    height = int(width * rng.uniform(1.25, 1.45))
    families = font_families()
    family = rng.choice(families)
    size = rng.randint(11, 15)
    margin = rng.uniform(0.07, 0.13)
    page = _Page(rng, kind, chars_per_line=int(width / (size * 0.62)), knobs=knobs)
    _lay_out(page, margin)

    image = Image.new("L", (width, height), color=rng.randint(215, 255))
    draw = ImageDraw.Draw(image)
    ink = rng.randint(0, 80)
    spacing = rng.uniform(1.25, 1.6)
    y = rng.uniform(0.04, 0.08) * height
    fonts: dict[int, ImageFont.FreeTypeFont] = {}
    words: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    spans: dict[str, tuple[int, int]] = {}
    for line in page.lines:
        scale = max((run.scale for run in line), default=1.0)
        if y + size * scale > height * 0.97:
            break  # the page is full: the rest is not drawn (and its fields are asked nothing)
        cursor = 0.0
        for run in line:
            px = max(6, int(size * run.scale))
            font = fonts.setdefault(px, _font(family, px))
            space = draw.textlength(" ", font=font)
            widths = [draw.textlength(w, font=font) for w in run.words]
            if not easy:  # swapped-in words can make a run wider than the page: it loses its last words
                widths = _fitting(widths, space, width - 4.0)
                run.words = run.words[: len(widths)]
            span = sum(widths) + space * (len(run.words) - 1)
            if run.x is None:
                x = cursor + space
            else:
                x = run.x * width - {"l": 0.0, "r": span, "c": span / 2}[run.align]
            x = min(max(x, 2.0), width - span - 2.0)
            first = len(words)
            for word, w in zip(run.words, widths):
                wy = y + (rng.uniform(-0.15, 0.15) * px if page.template == "handwritten" else 0.0)
                stroke = 1 if run.bold else 0
                draw.text((x, wy), word, fill=ink, font=font, stroke_width=stroke, stroke_fill=ink)
                x0, y0, x1, y1 = draw.textbbox((x, wy), word, font=font, stroke_width=stroke)
                words.append(word)
                boxes.append((float(x0), float(y0), float(x1), float(y1)))
                x += w + space
            cursor = x - space
            if run.field is not None:
                spans[run.field] = (first, len(words) - 1)
        y += size * scale * spacing

    angle = rng.uniform(-2.0, 2.0) if rng.random() < 0.6 else 0.0
    if angle:
        centre = (width / 2, height / 2)
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, center=centre, fillcolor=int(np.median(image)))
        boxes = [_skew(b, angle, centre, (width, height)) for b in boxes]
    pixels = np.asarray(image, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, rng.uniform(2.0, 10.0), pixels.shape)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), mode="L")
    qa_pairs = [QAPair(page.questions[key], [" ".join(words[a : b + 1])], [(a, b)]) for key, (a, b) in spans.items()]
    return Document(
        doc_id=f"{kind.replace(' ', '_')}-{seed}-{index}",
        image=image,
        words=words,
        boxes=boxes,
        doc_label=kind,
        qa_pairs=qa_pairs,
        source=f"synthetic {kind} seed={seed} index={index}" + ("" if easy else f" difficulty={difficulty}"),
    )
