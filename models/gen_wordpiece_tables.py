#!/usr/bin/env python3
"""Generate models/wordpiece_tables.inc from this Python's own unicodedata and str.lower().

transformers' slow BertTokenizer runs on CPython, so every Unicode property the WordPiece tokenizer
needs is taken from CPython itself (the models layer keeps its own copy; it must not link eval):
  - character classes   : the class of each code point as BertTokenizer sees it (control -> dropped,
                          Zs -> space, punctuation -> split, Mn -> dropped by accent stripping,
                          other str.isspace() -> split by str.split()); stored as class-change points,
  - lowercase mapping   : str.lower() of each single code point as (first, last, stride, delta) runs;
                          U+0130 (the only multi-code-point result) is special-cased in C++,
  - canonical data      : one-level canonical decompositions (Hangul syllables are algorithmic and
                          left out), whether each is a primary composite (recomposed by NFC), and
                          canonical combining classes; C++ derives NFD and NFC from them.
Run: python3 models/gen_wordpiece_tables.py  (rewrites models/wordpiece_tables.inc; commit it)
"""
import os
import sys
import unicodedata

MAX_CP = 0x110000
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3

# Must match enum class CharClass in models/wordpiece.cpp.
CLASS_OTHER, CLASS_CONTROL, CLASS_SPACE, CLASS_PUNCT, CLASS_MARK, CLASS_SPLIT_SPACE = range(6)


def is_bert_punct(c, cat):
    return 33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126 or cat.startswith("P")


def char_class(c):
    ch = chr(c)
    cat = unicodedata.category(ch)
    if ch in "\t\n\r" or cat == "Zs":
        return CLASS_SPACE
    if cat.startswith("C"):  # Cc, Cf, Cn, Co, Cs: BertTokenizer._is_control
        return CLASS_CONTROL
    if is_bert_punct(c, cat):
        return CLASS_PUNCT
    if cat == "Mn":
        return CLASS_MARK
    if ch.isspace():  # not cleaned to " " but still split on by str.split()
        return CLASS_SPLIT_SPACE
    return CLASS_OTHER


def class_starts():
    starts, prev = [], None
    for c in range(MAX_CP):
        k = char_class(c)
        if k != prev:
            starts.append((c, k))
            prev = k
    return starts


def lower_runs():
    """(first, last, stride, delta) runs: lower(c) = c + delta for c = first, first+stride, ..."""
    runs = []
    for c in range(MAX_CP):
        if 0xD800 <= c <= 0xDFFF:
            continue
        low = chr(c).lower()
        if c == 0x130:
            assert low == "i\u0307"
            continue
        assert len(low) == 1, hex(c)
        assert low.lower() == low, hex(c)  # the tokenizer lowers twice; that must be a no-op
        d = ord(low) - c
        if d == 0:
            continue
        if runs:
            first, last, stride, delta = runs[-1]
            if delta == d and ((stride == 0 and c - last in (1, 2)) or (stride and c - last == stride)):
                runs[-1] = [first, c, c - last, delta]
                continue
        runs.append([c, c, 0, d])
    return [(f, l, s if s else 1, d) for f, l, s, d in runs]


def canonical_decompositions():
    """(cp, first, second or 0, composes) for every code point with a canonical decomposition."""
    out = []
    for c in range(MAX_CP):
        if HANGUL_FIRST <= c <= HANGUL_LAST:
            continue
        d = unicodedata.decomposition(chr(c))
        if not d or d.startswith("<"):
            continue
        parts = [int(p, 16) for p in d.split()]
        assert 1 <= len(parts) <= 2, hex(c)
        composes = unicodedata.normalize("NFC", chr(c)) == chr(c)
        assert not composes or len(parts) == 2, hex(c)
        out.append((c, parts[0], parts[1] if len(parts) == 2 else 0, int(composes)))
    return out


def combining_runs():
    runs = []
    for c in range(MAX_CP):
        v = unicodedata.combining(chr(c))
        if not v:
            continue
        if runs and runs[-1][1] + 1 == c and runs[-1][2] == v:
            runs[-1][1] = c
        else:
            runs.append([c, c, v])
    return runs


def check_assumptions():
    # Python's str.isspace() == the classes the C++ treats as Python whitespace.
    py_space_controls = {0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x1F, 0x85}
    for c in range(MAX_CP):
        k = char_class(c)
        expect = k in (CLASS_SPACE, CLASS_SPLIT_SPACE) or c in py_space_controls
        assert chr(c).isspace() == expect, hex(c)
    for c in py_space_controls:
        assert char_class(c) == CLASS_CONTROL
    # Final sigma can never fire in BasicTokenizer's lower(): every U+03A3 is already lowered one
    # code point at a time, and NFC of lowered text never brings one back.
    for c in range(MAX_CP):
        if not 0xD800 <= c <= 0xDFFF:
            assert "\u03a3" not in unicodedata.normalize("NFC", chr(c).lower()), hex(c)
    # Lowering and canonical decomposition never create whitespace (no re-split needed after them).
    for c in range(MAX_CP):
        ch = chr(c)
        if not ch.isspace() and not 0xD800 <= c <= 0xDFFF:
            assert not any(x.isspace() for x in ch.lower() + unicodedata.normalize("NFD", ch)), hex(c)
    # NFC fast path: text below U+0300 is already NFC (all starters, no pair composes).
    for c in range(0x300):
        assert unicodedata.combining(chr(c)) == 0 and unicodedata.normalize("NFC", chr(c)) == chr(c)
    for _, _, second, composes in canonical_decompositions():
        assert not composes or second >= 0x300


def emit_rows(out, decl, items, fmt, per_row):
    out.write(f"{decl} = {{\n")
    for i in range(0, len(items), per_row):
        out.write("    " + ", ".join(fmt(x) for x in items[i:i + per_row]) + ",\n")
    out.write("};\n\n")


def main():
    check_assumptions()
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "wordpiece_tables.inc")
    starts = class_starts()
    runs = lower_runs()
    decomps = canonical_decompositions()
    ccc = combining_runs()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as out:
        out.write("// Generated by models/gen_wordpiece_tables.py from CPython "
                  f"{sys.version.split()[0]} (Unicode {unicodedata.unidata_version}). Do not edit.\n")
        out.write("// Included by models/wordpiece.cpp inside namespace lloco::models::wp_unicode.\n\n")
        out.write(f"constexpr const char* kUnicodeVersion = \"{unicodedata.unidata_version}\";\n\n")
        out.write("// (first code point, class) at every class change; a class holds until the next entry.\n")
        emit_rows(out, "constexpr ClassStart kClassStarts[]", starts, lambda s: f"{{0x{s[0]:X}, {s[1]}}}", 8)
        emit_rows(out, "constexpr LowerRun kLowerRuns[]", runs,
                  lambda r: f"{{0x{r[0]:X}, 0x{r[1]:X}, {r[2]}, {r[3]}}}", 5)
        out.write("// (code point, first, second or 0 for a singleton, 1 if NFC recomposes it).\n")
        emit_rows(out, "constexpr Decomposition kDecompositions[]", decomps,
                  lambda d: f"{{0x{d[0]:X}, 0x{d[1]:X}, 0x{d[2]:X}, {d[3]}}}", 4)
        emit_rows(out, "constexpr CombiningRun kCombiningRuns[]", ccc,
                  lambda r: f"{{0x{r[0]:X}, 0x{r[1]:X}, {r[2]}}}", 6)
    os.replace(tmp, path)
    print(f"wrote {path}: {len(starts)} class starts, {len(runs)} lower runs, "
          f"{len(decomps)} decompositions, {len(ccc)} combining runs")


if __name__ == "__main__":
    main()
