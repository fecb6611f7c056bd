// Python str semantics on UTF-8 text, as needed to match the reference metric scripts exactly:
// str.lower() (full Unicode, with U+0130 and the final-sigma rule), str.isspace()/split()/strip()/
// splitlines(), and the `re` notion of a word character (for \b). Tables are generated from CPython
// by eval/gen_unicode_tables.py (see unicode_version()).
//
// Known remaining differences from Python:
//  - Bytes that are not valid UTF-8 (Python would refuse to decode them) are carried through as
//    U+DC80+byte, like Python's "surrogateescape": not space, not word, not cased, unchanged by
//    lower(), and re-encoded as the original byte.
//  - The tables follow the Unicode version of the CPython that generated them (3.11 -> 14.0);
//    a reference run on another Python version can differ for characters added or changed later.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace lloco::eval::text {

std::u32string decode_utf8(std::string_view s);
std::string encode_utf8(std::u32string_view s);

bool is_space(char32_t c);  // str.isspace()
bool is_word(char32_t c);   // re's \w for str patterns: str.isalnum() or '_'

std::u32string lower(std::u32string_view s);  // str.lower()
std::string lower(std::string_view s);

std::vector<std::u32string> split_ws(std::u32string_view s);  // str.split()
std::vector<std::string> split_ws(std::string_view s);
size_t count_ws_words(std::string_view s);  // len(s.split()) without building the pieces

std::string strip_ws(std::string_view s);                   // str.strip()
std::string lstrip_chars(std::string_view s, char c);       // str.lstrip(c) for an ASCII c
std::vector<std::string> splitlines(std::string_view s);    // str.splitlines()

const char* unicode_version();

}  // namespace lloco::eval::text
