// text_extract.h — turning the files found in packages into plain text.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace lory::corpus {

// Visible text of an HTML page: <head>, <script>, <style> dropped, block
// elements (p, div, li, h1-h6, tr, br, pre, ...) as line breaks, entities
// decoded, runs of spaces collapsed, at most one empty line in a row.
std::string html_to_text(const std::string& html);

// Text of an XML fragment (OSIS Bible markup): tags dropped (a line break
// after each verse and block element; <note> content dropped), entities
// decoded, spaces collapsed.
std::string strip_markup(const std::string& xml);

// Decodes &amp; &lt; &gt; &quot; &apos; &nbsp; and numeric character references.
std::string decode_entities(const std::string& s);

// Makes `s` valid UTF-8 (each invalid byte becomes U+FFFD), turns CRLF and
// lone CR into LF, drops NUL and other C0 controls except tab and newline,
// and trims trailing whitespace of the document.
std::string clean_text(const std::string& s);

// Length in bytes of the longest line.
size_t longest_line(const std::string& s);

// dictd dictionaries: the .index file lists "headword TAB offset TAB length"
// with offset and length in dictd's base64; returns (headword, definition)
// pairs from the uncompressed .dict text, in index order.
std::vector<std::pair<std::string, std::string>> dictd_entries(const std::string& index, const std::string& dict);

}  // namespace lory::corpus
