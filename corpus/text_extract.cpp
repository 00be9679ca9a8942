// text_extract.cpp — see text_extract.h.
#include "corpus/text_extract.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>

namespace lory::corpus {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The element name of the tag starting at html[i] ('<'), lower-cased, and
// whether it is a closing tag.
std::string tag_name(const std::string& html, size_t i, bool& closing) {
  size_t j = i + 1;
  closing = j < html.size() && html[j] == '/';
  if (closing) ++j;
  size_t k = j;
  while (k < html.size() && (std::isalnum(static_cast<unsigned char>(html[k])))) ++k;
  return lower(html.substr(j, k - j));
}

bool is_block(const std::string& tag) {
  static const char* const kBlocks[] = {"p",  "div", "br", "li",  "ul",    "ol", "h1", "h2",         "h3",      "h4",
                                        "h5", "h6",  "tr", "pre", "table", "dt", "dd", "blockquote", "section", "hr"};
  for (const char* b : kBlocks)
    if (tag == b) return true;
  return false;
}

// Collapses spaces within lines and empty lines between them.
std::string tidy_lines(const std::string& s) {
  std::string out;
  int newlines = 2;  // suppress leading blank lines
  bool space = false;
  for (char c : s) {
    if (c == '\n') {
      space = false;
      if (newlines < 2) out += '\n';
      ++newlines;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      space = newlines == 0;
    } else {
      if (space) out += ' ';
      space = false;
      newlines = 0;
      out += c;
    }
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::string decode_entities(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    const std::string name = s.substr(i + 1, semi - i - 1);
    uint32_t cp = 0;
    if (!name.empty() && name[0] == '#') {
      const bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
      const std::string digits = name.substr(hex ? 2 : 1);
      if (digits.empty() ||
          digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos) {
        out += '&';
        continue;
      }
      cp = static_cast<uint32_t>(std::stoul(digits, nullptr, hex ? 16 : 10) & 0x1FFFFF);
    } else if (name == "amp") {
      cp = '&';
    } else if (name == "lt") {
      cp = '<';
    } else if (name == "gt") {
      cp = '>';
    } else if (name == "quot") {
      cp = '"';
    } else if (name == "apos") {
      cp = '\'';
    } else if (name == "nbsp") {
      cp = ' ';
    } else if (name == "mdash") {
      cp = 0x2014;
    } else if (name == "ndash") {
      cp = 0x2013;
    } else if (name == "copy") {
      cp = 0xA9;
    } else {
      out += '&';
      continue;
    }
    append_utf8(out, cp);
    i = semi;
  }
  return out;
}

std::string html_to_text(const std::string& html) {
  // Outside <pre>, a run of whitespace is one space and a line starts with
  // its first word; inside <pre> (code samples) the text is kept verbatim.
  std::string text;
  text.reserve(html.size() / 2);
  bool pending_space = false;
  int pre = 0;
  auto append_run = [&](const std::string& raw) {
    const std::string run = decode_entities(raw);
    if (pre > 0) {
      text += run;
      return;
    }
    for (char c : run) {
      if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f') {
        pending_space = true;
        continue;
      }
      if (pending_space && !text.empty() && text.back() != '\n') text += ' ';
      pending_space = false;
      text += c;
    }
  };
  size_t i = 0;
  while (i < html.size()) {
    if (html[i] != '<') {
      const size_t next = std::min(html.find('<', i), html.size());
      append_run(html.substr(i, next - i));
      i = next;
      continue;
    }
    if (html.compare(i, 4, "<!--") == 0) {  // comment
      const size_t end = html.find("-->", i + 4);
      i = end == std::string::npos ? html.size() : end + 3;
      continue;
    }
    bool closing = false;
    const std::string tag = tag_name(html, i, closing);
    const size_t end = html.find('>', i);
    if (end == std::string::npos) break;
    i = end + 1;
    if (!closing && (tag == "script" || tag == "style" || tag == "head" || tag == "title")) {
      const size_t close = lower(html.substr(i, std::min<size_t>(html.size() - i, 1 << 20))).find("</" + tag);
      const size_t gt = close == std::string::npos ? std::string::npos : html.find('>', i + close);
      i = gt == std::string::npos ? html.size() : gt + 1;
      continue;
    }
    if (tag == "pre") pre = std::max(0, pre + (closing ? -1 : 1));
    if (is_block(tag)) {
      text += '\n';
      pending_space = false;
    }
  }
  // Trailing spaces off every line, at most one empty line in a row.
  std::string out;
  int newlines = 2;  // no leading empty lines
  for (char c : text) {
    if (c == '\n') {
      while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
      if (newlines < 2) out += '\n';
      ++newlines;
    } else {
      out += c;
      if (c != ' ' && c != '\t') newlines = 0;  // a line of spaces is an empty line
    }
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string strip_markup(const std::string& xml) {
  // Tags become a space, or a line break where OSIS ends a verse or a block
  // (div, p, title, lb, l, chapter): a verse per line, as a Bible is read.
  std::string text;
  text.reserve(xml.size() / 2);
  for (size_t i = 0; i < xml.size();) {
    if (xml[i] != '<') {
      text += xml[i] == '\n' ? ' ' : xml[i];
      ++i;
      continue;
    }
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) break;
    bool closing = false;
    const std::string name = tag_name(xml, i, closing);
    if (name == "note" && !closing && xml[end - 1] != '/') {  // footnotes are not part of the running text
      const size_t close = xml.find("</note>", end);
      i = close == std::string::npos ? xml.size() : close + 7;
      text += ' ';
      continue;
    }
    const bool verse_end = name == "verse" && xml.find("eID=", i) < end;
    const bool block =
        name == "div" || name == "p" || name == "title" || name == "lb" || name == "l" || name == "chapter";
    // Word-level markup (Strong's numbers, added words, the divine name)
    // sits between the source's own spaces: it becomes nothing.
    const bool inline_tag = name == "w" || name == "transchange" || name == "divinename" || name == "seg" ||
                            name == "hi" || name == "foreign" || name == "q" || name == "reference";
    if (!inline_tag) text += verse_end || block ? '\n' : ' ';
    i = end + 1;
  }
  // Per line: single spaces, none before punctuation that followed a tag.
  std::string out;
  for (char c : decode_entities(text)) {
    if (c == ' ' && (out.empty() || out.back() == ' ' || out.back() == '\n')) continue;
    if (c == '\n' && !out.empty() && out.back() == ' ') out.pop_back();
    if ((c == ',' || c == '.' || c == ';' || c == ':' || c == '?' || c == '!') && !out.empty() && out.back() == ' ')
      out.pop_back();
    out += c;
  }
  return tidy_lines(out);
}

std::string clean_text(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      if (c == '\r') {
        out += '\n';
        i += (i + 1 < n && p[i + 1] == '\n') ? 2 : 1;
        continue;
      }
      if (c >= 0x20 || c == '\n' || c == '\t') out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A multi-byte sequence: check its length, continuation bytes and range.
    const int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    bool ok = len > 0 && i + len <= n;
    uint32_t cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    ok = ok && !(len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) &&
         !(len == 4 && (cp < 0x10000 || cp > 0x10FFFF));
    if (ok) {
      out.append(s, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    } else {
      append_utf8(out, 0xFFFD);
      ++i;
    }
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t')) out.pop_back();
  return out;
}

size_t longest_line(const std::string& s) {
  size_t longest = 0, start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find('\n', start), s.size());
    longest = std::max(longest, end - start);
    start = end + 1;
  }
  return longest;
}

std::vector<std::pair<std::string, std::string>> dictd_entries(const std::string& index, const std::string& dict) {
  auto b64 = [](const std::string& s, bool& ok) {
    static const std::string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t v = 0;
    for (char c : s) {
      const size_t d = digits.find(c);
      if (d == std::string::npos) ok = false;
      v = v * 64 + (d == std::string::npos ? 0 : d);
    }
    return v;
  };
  std::vector<std::pair<std::string, std::string>> entries;
  size_t start = 0;
  while (start < index.size()) {
    const size_t end = std::min(index.find('\n', start), index.size());
    const std::string line = index.substr(start, end - start);
    start = end + 1;
    const size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1);
    if (t1 == std::string::npos || t2 == std::string::npos) continue;
    const std::string word = line.substr(0, t1);
    if (word.rfind("00-database", 0) == 0 || word.rfind("00database", 0) == 0) continue;  // dictd's own metadata
    bool ok = true;
    const uint64_t offset = b64(line.substr(t1 + 1, t2 - t1 - 1), ok);
    const uint64_t length = b64(line.substr(t2 + 1), ok);
    if (!ok || offset + length > dict.size()) continue;
    entries.emplace_back(word, dict.substr(offset, length));
  }
  return entries;
}

}  // namespace lory::corpus
