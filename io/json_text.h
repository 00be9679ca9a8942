// json_text.h — JSON from files we do not trust (config.json, safetensors
// headers and indexes, trainer_state.json): parsing with bounded nesting,
// and short printable excerpts of values for error messages.
//
// Why bounded nesting: nlohmann's parser is iterative, but dump(), which
// every "got <value>" message calls, recurses once per level, so a value of
// 100 000 nested brackets (200 kB of text) overflows the stack when the
// message about it is built. No file of ours nests deeper than a few levels,
// so anything deeper than kMaxJsonDepth is refused while parsing, naming the
// file.
//
// Messages quote values through printable_excerpt (io/text_excerpt.h).
//
// Header-only: nlohmann_json is private to the layers that parse JSON (io/,
// nn/, train/), and only they include this header.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "io/text_excerpt.h"
#include "tensor/error.h"

namespace lory::io {

constexpr int kMaxJsonDepth = 64;
// A value as JSON text for a message (safe: the parse bounded its depth).
template <typename Json>
std::string json_excerpt(const Json& value) {
  return printable_excerpt(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Parses `text` as JSON; a syntax error or nesting deeper than kMaxJsonDepth
// throws lory::Error: "<where>: [<what> is ]not valid JSON: ..." (where: the
// file; what: the part of it, as "header").
template <typename Json = nlohmann::ordered_json>
Json parse_json(const std::string& text, const std::string& where, const std::string& what = "") {
  const std::string subject = what.empty() ? std::string() : what + " is ";
  typename Json::parser_callback_t limit_depth = [&](int depth, nlohmann::json::parse_event_t event, Json&) {
    if (depth > kMaxJsonDepth &&
        (event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start))
      fail(where, ": ", subject, "JSON nested deeper than ", kMaxJsonDepth, " levels");
    return true;
  };
  try {
    return Json::parse(text, limit_depth);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    fail(where, ": ", subject, "not valid JSON: ", printable_excerpt(e.what(), 2 * kExcerptChars));
  }
}

}  // namespace lory::io
