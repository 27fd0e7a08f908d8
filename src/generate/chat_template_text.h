#pragma once
// Text helpers for the chat-template interpreter. Templates see Python strings (sequences of code
// points), so lengths, indices and case changes work on decoded UTF-8, with Python's notions of
// whitespace and number formatting.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace peft::jinja {

std::u32string decode_utf8(std::string_view s);  // invalid bytes decode as U+FFFD
std::string encode_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t cp);

bool is_py_space(char32_t cp);   // str.isspace()
char32_t upper_cp(char32_t cp);  // simple case mappings (Latin, Greek, Cyrillic, Armenian, fullwidth)
char32_t lower_cp(char32_t cp);
bool is_cased(char32_t cp);
bool is_alpha(char32_t cp);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title()
std::string py_capitalize(std::string_view s);  // str.capitalize()
std::string jinja_title(std::string_view s);    // the `title` filter: words start after -, space, ( { [ <

// str.strip/lstrip/rstrip: whitespace when `chars` is null, else any code point of *chars.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

// str.splitlines(): \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029 end lines.
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);

std::string float_repr(double d);             // repr(float): shortest round trip, Python's layout
std::string string_repr(std::string_view s);  // repr(str)
// json.dumps of a string; ensure_ascii escapes everything outside printable ASCII.
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);

}  // namespace peft::jinja
