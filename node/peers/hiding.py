"""Our credentials taken out of a peer's refusal before it is shown (``hidden``, for
``node.peers.dial_words.refusal_text``).

What it protects against: a proxy or a server that echoes our ``Authorization`` header,
or the cluster secret or token, in its page: as they are, URL-encoded (once or twice:
``%2541``; JavaScript's ``escape``: ``%u0041``), HTML- or JSON-escaped, or as JavaScript
(``\\u{41}``) or C (``\\x41``, ``\\101``: its UTF-8 bytes) escape it (any mix of
escapes, hex in either case, numeric references zero-padded or without their ``;``),
base64 (also in MIME's lines, and of its UTF-16 in either byte order), base32 (in
capitals or in small letters), its UTF-8 bytes in hex (a dump, in either case, with
separators between bytes or groups of them or not: ``73 33``, ``73:33``, xxd's
``7333 6372``, a C array's ``0x73, 0x33``, C's escapes ``\\x73 \\x33``, and little-endian
16-bit words as ``hexdump`` and ``od -x`` show them) or in decimal (``[115, 51]``:
Node's JSON of a Buffer), cut short by the bytes read or by the page's own ``...``,
split by line breaks, control characters, format characters, characters of private use
or unassigned ones. The rule is one, and simple: at most ``SHOWN_IN_A_ROW_MAX``
characters of a credential in a row are shown, each escape counted as the character it
stands for, and so for a base64 character and for two hex digits
(``HEX_HIDDEN_IN_A_ROW``); the base64 of its UTF-16 is twice as long, and so is the run
hidden (``UTF16_BASE64_HIDDEN_IN_A_ROW``); of base32, a run of
``BASE32_HIDDEN_IN_A_ROW``, as words would hold shorter ones (of a credential of 5
bytes, all of it); every longer run is shown as ``HIDDEN_TEXT``. Also hidden: the start
of a credential (more than ``SHOWN_AT_A_CUT_MAX`` characters of it, or one escaped, or
as many bytes' worth of its other forms) that ends a body cut short, whose rest did not
come. A credential shorter than the run hidden is not found: it would be found in
ordinary words, and protects little. A word-like credential (``gateway1``) hides the
words of a page that share a run with it (``Bad Gateway``): a run is hidden whatever the
credential's length, as a rule that asked a longer run of a short one would show a good
part of it wherever a page splits it in lines.

What not: a page that writes it in another form: hex bytes written ``\\x73`` with
words between them; a JSON ``\\u`` escape of each UTF-8 byte; URL encoding done three
times. Nor a peer that holds our secret and splits it on purpose into pieces shorter
than the run hidden (a character between every four): it shows them. Such a peer could
publish the secret anyway: the hiding keeps an honest page's echo out of a log, it is no
barrier against the secret's holder.

The work is linear in the text shown: a few look-ups per character in sets of the
credentials' runs (of ``SHOWN_IN_A_ROW_MAX + 1`` characters; of hex digits, of base32
and of UTF-16's base64 only where the text has a run of such characters), whose size
follows from the credentials' length (``node.checks.TOKEN_CHARS_MAX``).
"""

from __future__ import annotations

import base64
import bisect
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator

from node.peers import escapes
from node.peers.escapes import ESCAPE_START, FOLD

#: What a credential of ours is shown as where a peer's refusal repeats it.
HIDDEN_TEXT = "(hidden)"
#: Most characters of a credential shown in a row: a run of one more is hidden. Four
#: characters of a 43-character secret tell too little to guess the rest, and a
#: run of five characters of a random secret is rare enough in ordinary words that
#: an ordinary refusal is practically never changed.
SHOWN_IN_A_ROW_MAX = 4
_RUN = SHOWN_IN_A_ROW_MAX + 1
#: Most characters of a credential's start shown at the end of a body cut short, whose
#: rest did not come: fewer than in a row elsewhere, as a cut may come anywhere; more
#: than one, as many an ordinary word ends with a character of it. An escape is hidden.
SHOWN_AT_A_CUT_MAX = 2
#: Hex digits of a credential's bytes in a row that are hidden (a hex dump, in either
#: case): two stand for a byte, so a run one digit longer than ``SHOWN_IN_A_ROW_MAX``
#: bytes' worth holds at least that many bytes whole, wherever it begins. Fewer would
#: be found in ordinary numbers and ids: hex has but 16 digits.
HEX_HIDDEN_IN_A_ROW = 2 * SHOWN_IN_A_ROW_MAX + 1
#: Characters of a credential's base32 in a row that are hidden: one holds 5 bits, so a
#: run of five (25 bits) of a 43-character secret is found in a page of capitals ("403
#: FORBIDDEN: REQUEST BLOCKED") for a few in every 10,000 secrets; eight (40 bits, as many as
#: five bytes) practically never. Fewer would hide a shouted page's words. Of a credential
#: of fewer than 6 bytes, whose base32 may hold no such run (of the characters that
#: stand for its bytes alone: 7 of a 5-byte one, wherever it begins in a group), those
#: characters are hidden all together: as the whole of a 5-character one is.
BASE32_HIDDEN_IN_A_ROW = 8
#: Most characters of the start of a credential's base32 shown at the end of a body cut
#: short: fewer than tell one more character than ``SHOWN_AT_A_CUT_MAX`` (5 bits each).
BASE32_SHOWN_AT_A_CUT_MAX = 8 * (SHOWN_AT_A_CUT_MAX + 1) // 5 - 1
#: Characters of the base64 of a credential's UTF-16 in a row that are hidden: UTF-16
#: spends two bytes on each of its characters (one of them zero, for ASCII), so twice
#: as many as of its UTF-8's base64 tell as much. Fewer would be found in ordinary words.
UTF16_BASE64_HIDDEN_IN_A_ROW = 2 * _RUN
#: Most characters of the start of a credential's UTF-16's base64 shown at the end of a
#: body cut short: fewer than tell one more character than ``SHOWN_AT_A_CUT_MAX`` (16
#: bits each, 6 to a base64 character).
UTF16_BASE64_SHOWN_AT_A_CUT_MAX = 16 * (SHOWN_AT_A_CUT_MAX + 1) // 6 - 1

#: Unicode's format characters (category Cf; Unicode 15): the zero width space, joiners
#: and non-joiners, the soft hyphen, the byte order mark, invisible operators, tags, the
#: bidirectional controls. Unseen, or nearly: a line shown keeps those ``node.text``
#: keeps (the zero width joiner of an emoji), so runs and escapes are read as if they
#: were not there (``_seen``), and a credential split by them is found. So are the
#: characters of private use (category Co) and those Unicode has not assigned (Cn):
#: kept too, and shown as nothing, or as a box, by most fonts.
FORMAT_CHARACTERS = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
                     "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
                     "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
                     "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
                     "\U000e0020-\U000e007f")
_FORMAT = re.compile(f"[{FORMAT_CHARACTERS}]")


def hidden(text: str, hide: Iterable[str | None], cut: bool = False) -> str:
    """``text`` with every run of more than ``SHOWN_IN_A_ROW_MAX`` characters of the
    credentials ``hide`` (or of their base64, base32, hex: ``_runs``) shown as
    ``HIDDEN_TEXT``, escapes counted as the character they stand for, case folded
    (base64's and base32's kept); where ``text`` was
    ``cut`` short, also a credential's start that ends it (more than
    ``SHOWN_AT_A_CUT_MAX`` characters, or escaped ones).

    >>> hidden("Authorization: Bearer s3cret-s3cret", ["s3cret-s3cret"])
    'Authorization: Bearer (hidden)'
    >>> hidden("a %73%33%43ret-s3cret, page &#0115;&#x33;c", ["s3cret-s3cret"])
    'a (hidden), page &#0115;&#x33;c'
    >>> hidden("Bearer s3c", ["s3cret"], cut=True), hidden("see s3", ["s3cret"], cut=True)
    ('Bearer (hidden)', 'see s3')
    >>> hidden("Service unavailable", ["s3cret"])
    'Service unavailable'
    """
    plain, coded, searches, hexed, forms = _runs(tuple(secret for secret in hide if secret))
    if not plain:
        return text
    seen, where = _seen(text)
    decoded, starts, ends = escapes.decoded(seen)
    folded = decoded.translate(FOLD)  # one character for one: ``starts`` still hold
    # The runs of the plain forms and of base64's and base32's in one pass: as long.
    spans = [(starts[at], ends[at + _RUN - 1]) for at in range(len(decoded) - _RUN + 1)
             if folded[at:at + _RUN] in plain or decoded[at:at + _RUN] in coded]
    seen_folded = seen.translate(FOLD)
    # And as written, where escapes were read: a stray backslash makes one of "\123".
    # Widened to the escapes it begins or ends in: a JSON string stays one.
    if len(decoded) < len(seen):
        spans += [(starts[bisect.bisect_right(starts, at) - 1],
                   ends[bisect.bisect_right(starts, at + _RUN - 1) - 1])
                  for at in range(len(seen) - _RUN + 1) if seen_folded[at:at + _RUN] in plain]
    spans += [(starts[at], ends[end - 1])
              for search in searches for at, end in _found(decoded, search)]
    spans += [(starts[start], ends[end - 1]) for start, end in _hex_found(folded, hexed, cut)]
    spans += _hex_found(seen_folded, hexed, cut, _escaped_bytes, _AFTER_BYTE_ESCAPES)
    if cut:
        spans += _cut_start(seen_folded, folded, starts, forms, spans)
    if where is not None:  # format characters in or at the end of a span go with it
        spans = [(where[start], where[end - 1] + 1 if end < len(seen) else len(text))
                 for start, end in spans]
    return _replaced(text, spans)


def _seen(text: str) -> tuple[str, list[int] | None]:
    """``text`` without format characters (``FORMAT_CHARACTERS``), characters of
    private use and unassigned ones, and where in ``text`` each character of it is;
    None where it had none (nothing to map back).

    >>> _seen("a\u200db"), _seen("a\ue000b"), _seen("ab")
    (('ab', [0, 2]), ('ab', [0, 2]), ('ab', None))
    """
    if _FORMAT.search(text) is None and (text.isascii() or not any(map(_unassigned, text))):
        return text, None
    where = [at for at, char in enumerate(text)
             if not _FORMAT.match(char) and not _unassigned(char)]
    return "".join(text[at] for at in where), where


def _unassigned(char: str) -> bool:
    """Whether ``char`` is of private use (Co) or unassigned (Cn)."""
    return not char.isascii() and unicodedata.category(char) in ("Co", "Cn")


#: Where a run of a credential's UTF-16's base64, or of its base32, may be: in a run of
#: base64's characters, of base32's. Only there are those runs looked for: an ordinary
#: page has few such, and the look-ups, one for each character, are the most of the work.
_BASE64_CHARACTERS = re.compile(rf"[0-9a-z+/_-]{{{UTF16_BASE64_HIDDEN_IN_A_ROW},}}",
                                re.IGNORECASE)


@functools.lru_cache(maxsize=8)
def _base32_characters(length: int) -> tuple[re.Pattern[str], ...]:
    """Where a run of ``length`` characters of base32 may be: in capitals or in small
    letters, not in a mix (``Gateway``). Each looked for alone: digits between the two
    belong to both (``2222zz``), and one pattern's match would take them from the other."""
    return (re.compile(rf"[A-Z2-7]{{{length},}}"), re.compile(rf"[a-z2-7]{{{length},}}"))


#: Where a credential's bytes may be in hex (the text folded): groups of hex digits, with
#: separators between them or not, as dumps write them (``73 33``, xxd's ``7333 6372``,
#: ``73:33``, ``73-33``, ``0x73, 0x33``: a C array's);
#: and a list of bytes in decimal (``[115, 51]``: Node's JSON of a Buffer).
_HEX_GROUPS = re.compile(r"(?:0x)?[0-9a-f]+(?:[ :,-]+(?:0x)?[0-9a-f]+)*")
_DECIMAL_BYTES = re.compile(r"(?<![0-9])[0-9]{1,3}(?:, ?[0-9]{1,3})+(?![0-9])")
_NUMBER = re.compile(r"[0-9]+")
_HEX_DIGIT_GROUP = re.compile(r"(?:0x)?([0-9a-f]+)")
#: Where a credential's bytes may be C's ``\\xXX`` escapes with something between them
#: (``\\x73 \\x33``, ``\\x73,\\x33``; side by side, they are escapes, read as
#: characters): in the text as seen, folded; the last one may be cut short.
_BYTE_ESCAPES = re.compile(r"\\x[0-9a-f]{2}(?:[ ,:;'\"-]*\\x[0-9a-f]{2})+"
                           r"(?:[ ,:;'\"-]*\\x[0-9a-f]?\Z)?")
_BYTE_ESCAPE = re.compile(r"\\x([0-9a-f]{0,2})")
#: What a cut body may end with after the digits of ``_BYTE_ESCAPES``.
_AFTER_BYTE_ESCAPES = " ,:;'\"-x\\"
_BYTE_HEX = {str(byte): f"{byte:02x}" for byte in range(256)} | {
    f"{byte:0{width}d}": f"{byte:02x}" for byte in range(100) for width in (2, 3)}  # padded


def _found(text: str, search: _Search) -> list[tuple[int, int]]:
    """Where in ``text`` a run of ``search`` begins and ends: one look-up for each
    character of the parts of ``text`` that may hold one, of the runs' starts as long
    as the shortest run; only where one is found, of the runs of each length."""
    heads, shortest, runs, where = search
    return [(at, at + length) for pattern in where for part in pattern.finditer(text)
            for at in range(part.start(), part.end() - shortest + 1)
            if text[at:at + shortest] in heads
            for found, length in runs if text[at:at + length] in found]


def _hex_found(folded: str, forms: _HexForms, cut: bool,
               parts: Callable[[str], Iterator[_HexPart]] | None = None,
               after: str = " :,-x") -> list[tuple[int, int]]:
    """Where in ``folded`` a run of ``HEX_HIDDEN_IN_A_ROW`` hex digits of a credential
    is (from its first digit to past its last: ``_hex_parts``, or ``parts``); where
    ``folded`` was
    ``cut`` short, also a start of its hex that ends it: more than
    ``SHOWN_AT_A_CUT_MAX`` bytes' digits (where the last digits may be misread, a
    decimal list's last number cut, a word cut, the start before them is looked for).

    >>> page = "7333 6372 6574 and [115, 51, 99, 114, 101]"
    >>> forms = (_runs_of(["7333637265"], HEX_HIDDEN_IN_A_ROW), ("7333637265",))
    >>> [page[start:end] for start, end in _hex_found(page, forms, False)]
    ['7333 6372 6', '333 6372 65', '115, 51, 99, 114, 101', '115, 51, 99, 114, 101']
    >>> cut = "id 73 33 6"
    >>> [cut[start:end] for start, end in _hex_found(cut, forms, True)]
    ['73 33 6']
    """
    runs, starts_of = forms
    found = []
    length = HEX_HIDDEN_IN_A_ROW
    shown_end = len(folded.rstrip(after))  # a cut ``after`` digits is after digits
    for digits, starts, ends, unsure in (parts or _hex_parts)(folded):
        found += [(starts[at], ends[at + length - 1])
                  for at in range(len(digits) - length + 1) if digits[at:at + length] in runs]
        if not (cut and ends and ends[-1] == shown_end):
            continue
        # What ends the cut body after a run is part of it: a separator, an escape's start.
        found = [(start, len(folded) if end == shown_end else end) for start, end in found]
        for tail in dict.fromkeys((len(digits), len(digits) - unsure)):  # either reading
            if unsure and tail >= length and digits[tail - length:tail] in runs:
                found.append((starts[tail - length], len(folded)))  # a run, then misread
                continue
            for told in range(min(tail, length - 1), 2 * SHOWN_AT_A_CUT_MAX, -1):
                if any(form.startswith(digits[tail - told:tail]) for form in starts_of):
                    found.append((starts[tail - told], len(folded)))
                    break
    return found


def _hex_parts(folded: str) -> Iterator[_HexPart]:
    """The hex digits in ``folded`` that may be a credential's bytes, part by part, each
    with where its digits begin and end in ``folded``, and how many digits at its end
    may be misread where ``folded`` was cut short: groups of hex digits read without the
    separators between them (``_HEX_GROUPS``), and again with the bytes of each 16-bit
    word swapped where they are in groups of four digits (as ``hexdump`` and ``od -x``
    show little-endian words: each digit of a word is where the word is); lists of bytes
    in decimal, each byte read as two hex digits, both where its number is.

    >>> [digits for digits, *_ in _hex_parts("id 3373 6372, [115, 51]")]
    ['d33736372', 'd73337263', '11551', '7333']
    """
    for part in _HEX_GROUPS.finditer(folded):
        if part.end() - part.start() <= 2 * SHOWN_AT_A_CUT_MAX:  # fewer tell nothing
            continue
        groups = list(_HEX_DIGIT_GROUP.finditer(folded, part.start(), part.end()))
        at_digits = [at for group in groups for at in range(group.start(1), group.end(1))]
        yield ("".join(folded[at] for at in at_digits), at_digits,
               [at + 1 for at in at_digits], int(len(groups[-1][1]) == 1))  # "0x" cut?
        if len(groups) > 1 and any(len(group[1]) % 4 == 0 for group in groups):
            yield _words_swapped(groups)
    for part in _DECIMAL_BYTES.finditer(folded):
        numbers = [(number[0], number.start(), number.end())
                   for number in _NUMBER.finditer(folded, part.start(), part.end())]
        # A number more than a byte has no hex digits: a run ends there.
        yield ("".join(_BYTE_HEX.get(number, "..") for number, _start, _end in numbers),
               [start for _number, start, _end in numbers for _digit in "xx"],
               [end for _number, _start, end in numbers for _digit in "xx"], 2)


def _escaped_bytes(folded: str) -> Iterator[_HexPart]:
    """The hex digits of ``\\xXX`` escapes with something between them in ``folded``
    (``_BYTE_ESCAPES``), as ``_hex_parts`` yields them.

    >>> [digits for digits, *_ in _escaped_bytes(r"a \\x73, \\x33 \\x6")]
    ['73336']
    """
    for part in _BYTE_ESCAPES.finditer(folded):
        groups = list(_BYTE_ESCAPE.finditer(folded, part.start(), part.end()))
        at_digits = [at for group in groups for at in range(group.start(1), group.end(1))]
        yield ("".join(folded[at] for at in at_digits), at_digits,
               [at + 1 for at in at_digits], int(len(groups[-1][1]) == 1))


def _words_swapped(groups: list[re.Match[str]]) -> _HexPart:
    """The digits of ``groups`` of hex digits, the two bytes of each 16-bit word swapped
    in those of a multiple of four digits, as ``_hex_parts`` yields them."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for group in groups:
        digits, at = group[1], group.start(1)
        if len(digits) % 4:
            chars.append(digits)
            starts += range(at, at + len(digits))
            ends += range(at + 1, at + len(digits) + 1)
            continue
        for word in range(0, len(digits), 4):
            chars += [digits[word + 2:word + 4], digits[word:word + 2]]
            starts += [at + word] * 4
            ends += [at + word + 4] * 4
    return "".join(chars), starts, ends, len(groups[-1][1]) % 4  # a word cut short


#: A search (``_runs``, ``_found``): the runs' starts as long as the shortest run, that
#: length, the runs looked for (each set with their length), and where in the text (in
#: its own case; each pattern's parts): the parts are found once for all those lengths.
_Search = tuple[frozenset[str], int, tuple[tuple[frozenset[str], int], ...],
                tuple[re.Pattern[str], ...]]
#: Hex digits that may be a credential's bytes (``_hex_parts``): the digits, where each
#: begins and ends in the text, how many at its end may be misread at a cut.
_HexPart = tuple[str, list[int], list[int], int]
#: The hex of credentials (``_runs``): its runs, and the forms whose start is hidden at a cut.
_HexForms = tuple[frozenset[str], tuple[str, ...]]
#: Forms whose start is hidden at a cut (``_cut_start``), folded: the forms, the most
#: characters of a start shown, the longest start looked for (a longer one is a run).
_CutForms = tuple[tuple[str, ...], int, int]


@functools.lru_cache(maxsize=4)
def _runs(secrets: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str],
                                             tuple[_Search, ...], _HexForms,
                                             tuple[_CutForms, ...]]:
    """The runs of ``secrets`` looked for in a text, anywhere: of ``_RUN`` characters of
    their plain forms (``_plain_forms``), folded, and of their base64
    (``_cores``), whose case is kept, as base64's letters differ by case
    (folded, "reset" would be one of many a secret's). The searches for runs of other
    forms, in their own case, in the parts of a text that may hold them: of
    ``UTF16_BASE64_HIDDEN_IN_A_ROW`` characters of their UTF-16's base64 (either byte
    order), of ``BASE32_HIDDEN_IN_A_ROW`` of their base32 (``_cores``; of a short one,
    all the characters that stand for its bytes alone). The runs
    of ``HEX_HIDDEN_IN_A_ROW`` digits of their UTF-8 bytes' hex, folded (a dump's case
    is either). And the forms, folded, for a cut's start: the
    plain and base64 ones, UTF-16's base64, base32. Empty if no secrets. Kept for the
    few credentials a node has, not made again for each refusal."""
    if not secrets:
        return frozenset(), frozenset(), (), (frozenset(), ()), ()
    plain = {form.translate(FOLD) for secret in secrets for form in _plain_forms(secret)}
    coded = {core for secret in secrets for core in _cores(secret.encode(), 64)}
    wide = {core for secret in secrets for encoding in ("utf-16-le", "utf-16-be")
            for core in _cores(secret.encode(encoding), 64)}
    base32 = {core for secret in secrets for core in _cores(secret.encode(), 32)}
    short = {core for secret in secrets if len(secret.encode()) >= _RUN
             for core in _cores(secret.encode(), 32) if len(core) < BASE32_HIDDEN_IN_A_ROW}
    hexed = {secret.encode().hex() for secret in secrets}
    forms = ((tuple(sorted(plain | {core.translate(FOLD) for core in coded})),
              SHOWN_AT_A_CUT_MAX, _RUN - 1),
             (tuple(sorted(core.translate(FOLD) for core in wide)),
              UTF16_BASE64_SHOWN_AT_A_CUT_MAX, UTF16_BASE64_HIDDEN_IN_A_ROW - 1),
             (tuple(sorted({core.translate(FOLD) for core in base32})),
              BASE32_SHOWN_AT_A_CUT_MAX, BASE32_HIDDEN_IN_A_ROW - 1))
    lengths = sorted({len(core) for core in short} | {BASE32_HIDDEN_IN_A_ROW})
    searches = (_search(((_runs_of(wide, UTF16_BASE64_HIDDEN_IN_A_ROW),
                          UTF16_BASE64_HIDDEN_IN_A_ROW),), (_BASE64_CHARACTERS,)),
                _search(((_runs_of(base32, BASE32_HIDDEN_IN_A_ROW), BASE32_HIDDEN_IN_A_ROW),
                         *((frozenset(core for core in short if len(core) == length), length)
                           for length in lengths[:-1])), _base32_characters(lengths[0])))
    return (_runs_of(plain), _runs_of(coded), searches,
            (_runs_of(hexed, HEX_HIDDEN_IN_A_ROW), tuple(sorted(hexed))), forms)


def _search(runs: tuple[tuple[frozenset[str], int], ...],
            where: tuple[re.Pattern[str], ...]) -> _Search:
    shortest = min(length for _runs, length in runs)
    return (frozenset(run[:shortest] for found, _length in runs for run in found), shortest,
            runs, where)


def _runs_of(forms: Iterable[str], length: int = _RUN) -> frozenset[str]:
    return frozenset(form[at:at + length] for form in forms
                     for at in range(len(form) - length + 1))


def _plain_forms(secret: str) -> list[str]:
    """The forms a page may repeat ``secret`` in, its escapes read as the characters
    they stand for (``node.peers.escapes.decoded``): as it is; as it is read where it
    holds escape-like text itself (``%41``, ``&amp;``, ``\\n``); its UTF-8 bytes each
    read as a character, as ``%XX`` is read; its characters beyond the BMP as JSON's
    surrogate pairs; each also with ``+`` for a space, as a form's URL encoding writes it.

    >>> _plain_forms("a b")[:2]
    ['a b', 'a+b']
    >>> _plain_forms("%41ä")[::2], [hex(ord(char)) for char in _plain_forms(chr(0x1F600))[6]]
    (['%41ä', '%41Ã¤', 'Aä', '%41ä'], ['0xd83d', '0xde00'])
    """
    read = [secret, secret.encode().decode("latin-1"), escapes.decoded(secret)[0],
            "".join(_surrogates(char) for char in secret)]
    return [form for text in read for form in (text, text.replace(" ", "+"))]


def _surrogates(char: str) -> str:
    """``char`` as UTF-16 writes it: two surrogates beyond the BMP, as JSON escapes it."""
    code = ord(char) - 0x10000
    return char if code < 0 else chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


#: The bases a credential's bytes may be written in (``_cores``): how each encodes, how
#: many bytes make a group, how many bits a character holds, and the other alphabet a
#: page may write the same characters in.
_BASES: dict[int, tuple[Callable[[bytes], bytes], int, int, Callable[[str], str]]] = {
    64: (base64.b64encode, 3, 6, lambda core: core.replace("+", "-").replace("/", "_")),
    32: (base64.b32encode, 5, 5, str.lower),  # RFC 4648's, or as onion addresses write it
}


def _cores(secret: bytes, base: int) -> list[str]:
    """What base64 or base32 (``base``, ``_BASES``) of a text holding ``secret`` shows
    of it, wherever in a group it begins, in either alphabet (base64's URL-safe one):
    only the characters that stand for ``secret``'s bytes alone. A character at either
    end that stands for a byte around it too (the first ones hold the lead bytes' bits
    too, and in a last group short of a whole one, the last one the next bytes' bits)
    stays shown: it tells a few bits, not the secret.

    >>> page = base64.b64encode(b"Authorization: Bearer s3cret-s3cret").decode()
    >>> {core for core in _cores(b"s3cret-s3cret", 64) if core in page}
    {'MzY3JldC1zM2NyZX'}
    >>> page = base64.b32encode(b"Bearer s3cret-s3cret").decode()
    >>> {core for core in _cores(b"s3cret-s3cret", 32) if core in page}
    {'GM3DOJSXILLTGNRXEZLU'}
    """
    encode, group, char_bits, other = _BASES[base]
    cores = []
    for lead in range(group):  # the bytes of the group before the secret's first
        coded = encode(bytes(lead) + secret).decode().rstrip("=")
        bits = 8 * (lead + len(secret))
        start, end = -(-8 * lead // char_bits), len(coded) - (bits % char_bits != 0)
        cores.append(coded[start:end])
    return list(dict.fromkeys(cores + [other(core) for core in cores]))


def _cut_start(folded: str, decoded: str, starts: list[int], forms: tuple[_CutForms, ...],
               spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Where ``folded``, cut short, ends with a start of one of the ``forms`` (its
    ``decoded`` reading) that tells something: more characters than those forms' shown
    at a cut (``SHOWN_AT_A_CUT_MAX``, and as many in UTF-16's base64), or escaped ones,
    or begun in a run hidden before it (one of ``spans``: a page's word may end with the
    secret's first characters); each looked for up to its longest start. An escape's
    start that ends it, whose rest did not come, goes with that start, or with a run
    hidden just before it (one of ``spans``): it is part of them."""
    hidden_end = max((end for _start, end in spans), default=-1)
    partial = ESCAPE_START.search(folded)
    tails = [len(decoded)]  # "&" may be a character of the secret, or an escape's start
    if partial is not None:
        if hidden_end >= partial.start():
            return [(partial.start(), len(folded))]
        tails.append(bisect.bisect_left(starts, partial.start()))
    found = []  # the earliest start told, of either tail: the other may tell less
    for tail in tails:
        end = starts[tail] if tail < len(decoded) else len(folded)
        for starts_of, shown_max, longest in forms:
            for length in range(min(tail, longest), 0, -1):
                at = tail - length
                # Begun in a run hidden before it: what the run hid of the start and
                # what follows tell together more than the few characters shown.
                told = (length > shown_max or end - starts[at] > length  # or escaped
                        or starts[at] < hidden_end)
                if told and any(form.startswith(decoded[at:tail]) for form in starts_of):
                    found.append(starts[at])
                    break
    return [(min(found), len(folded))] if found else []


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with ``spans`` shown as ``HIDDEN_TEXT``, those that overlap or touch as
    one."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, shown = [], 0
    for start, end in merged:
        parts += [text[shown:start], HIDDEN_TEXT]
        shown = end
    return "".join(parts) + text[shown:]
