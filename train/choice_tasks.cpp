// choice_tasks.cpp — see choice_tasks.h.
#include "train/choice_tasks.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "io/atomic_file.h"
#include "io/json_text.h"

namespace lory::train {

namespace {

// A seeded permutation of [0, n): Fisher-Yates on raw mt19937_64 outputs
// (portable, unlike std::shuffle with a distribution).
std::vector<size_t> permutation(size_t n, std::mt19937_64& rng) {
  std::vector<size_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = i;
  for (size_t i = n; i > 1; --i) std::swap(p[i - 1], p[static_cast<size_t>(rng() % i)]);
  return p;
}

// The last space at or before `pos` (npos if none after the first byte): a
// cut there leaves the space to what follows.
size_t space_at_or_before(const std::string& text, size_t pos) {
  if (text.empty()) return std::string::npos;
  const size_t at = text.rfind(' ', std::min(pos, text.size() - 1));
  return at == 0 ? std::string::npos : at;
}

// text[begin, next space at or after begin + length): a span that starts
// with the space at `begin` and ends before a space.
std::string span_from(const std::string& text, size_t begin, size_t length) {
  const size_t end = text.find(' ', begin + length);
  return end == std::string::npos ? std::string() : text.substr(begin, end - begin);
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  return s;
}

}  // namespace

ChoiceTask continuation_task(const std::vector<corpus::CorpusLine>& documents, const CorpusTaskOptions& o) {
  LORY_CHECK(o.choices >= 2, "continuation task: choices must be >= 2, got ", o.choices);
  const size_t context = static_cast<size_t>(o.context_bytes), length = static_cast<size_t>(o.continuation_bytes);
  // Documents long enough for an opening and a continuation at the same place.
  std::vector<size_t> usable;
  for (size_t i = 0; i < documents.size(); ++i) {
    const std::string& t = documents[i].text;
    const size_t cut = space_at_or_before(t, context);
    if (cut != std::string::npos && !span_from(t, cut, length).empty()) usable.push_back(i);
  }
  std::mt19937_64 rng(o.seed);
  const std::vector<size_t> order = permutation(usable.size(), rng);
  const size_t wanted = static_cast<size_t>(o.test_examples + o.train_examples);
  LORY_CHECK(order.size() >= wanted, "continuation task: ", usable.size(), " documents hold ", o.context_bytes, " + ",
             o.continuation_bytes, " bytes, ", wanted, " are needed");
  std::map<std::string, std::vector<size_t>> by_domain;
  for (size_t u : usable) by_domain[documents[u].domain].push_back(u);
  ChoiceTask task;
  task.name = "continuation";
  for (size_t k = 0; k < wanted; ++k) {
    const corpus::CorpusLine& doc = documents[usable[order[k]]];
    const size_t cut = space_at_or_before(doc.text, context);
    ChoiceExample e;
    e.context = doc.text.substr(0, cut);
    const std::string truth = span_from(doc.text, cut, length);
    // Distractors: the words at the same place in other documents, of the
    // same domain when it has enough; never a copy of the truth.
    const std::vector<size_t>& pool =
        by_domain[doc.domain].size() > static_cast<size_t>(o.choices) ? by_domain[doc.domain] : usable;
    std::vector<std::string> others;
    for (size_t p : permutation(pool.size(), rng)) {
      if (static_cast<int64_t>(others.size()) == o.choices - 1) break;
      const corpus::CorpusLine& other = documents[pool[p]];
      if (&other == &doc) continue;
      const std::string span = span_from(other.text, space_at_or_before(other.text, context), length);
      if (span.empty() || span == truth || std::find(others.begin(), others.end(), span) != others.end()) continue;
      others.push_back(span);
    }
    LORY_CHECK(static_cast<int64_t>(others.size()) == o.choices - 1, "continuation task: too few distinct documents ",
               "for ", o.choices, " choices");
    e.gold = static_cast<int64_t>(rng() % static_cast<uint64_t>(o.choices));
    e.choices = others;
    e.choices.insert(e.choices.begin() + e.gold, truth);
    (k < static_cast<size_t>(o.test_examples) ? task.test : task.train).push_back(std::move(e));
  }
  return task;
}

ChoiceTask domain_task(const std::vector<corpus::CorpusLine>& documents, const CorpusTaskOptions& o) {
  std::map<std::string, std::vector<size_t>> by_domain;
  for (size_t i = 0; i < documents.size(); ++i)
    if (space_at_or_before(documents[i].text, static_cast<size_t>(o.context_bytes)) != std::string::npos)
      by_domain[documents[i].domain].push_back(i);
  LORY_CHECK(by_domain.size() >= 2, "domain task: the corpus has ", by_domain.size(), " domain(s); 2 or more are needed");
  std::vector<std::string> choices;
  for (const auto& [domain, docs] : by_domain) choices.push_back(" " + domain);
  // Round-robin over the domains (each in a seeded order): balanced classes.
  std::mt19937_64 rng(o.seed);
  std::vector<std::vector<size_t>> queues;
  for (const auto& [domain, docs] : by_domain) {
    std::vector<size_t> q;
    for (size_t p : permutation(docs.size(), rng)) q.push_back(docs[p]);
    queues.push_back(std::move(q));
  }
  ChoiceTask task;
  task.name = "domain";
  const size_t wanted = static_cast<size_t>(o.test_examples + o.train_examples);
  size_t taken = 0;
  for (size_t round = 0; taken < wanted; ++round) {
    bool any = false;
    for (size_t d = 0; d < queues.size() && taken < wanted; ++d) {
      if (round >= queues[d].size()) continue;
      any = true;
      const std::string& text = documents[queues[d][round]].text;
      ChoiceExample e;
      e.context = "Text: " + one_line(text.substr(0, space_at_or_before(text, static_cast<size_t>(o.context_bytes)))) +
                  "\nDomain:";
      e.choices = choices;
      e.gold = static_cast<int64_t>(d);
      (taken < static_cast<size_t>(o.test_examples) ? task.test : task.train).push_back(std::move(e));
      ++taken;
    }
    LORY_CHECK(any, "domain task: the corpus has ", taken, " usable documents, ", wanted, " are needed");
  }
  return task;
}

namespace {

// lm-evaluation-harness's HellaSwag preprocess: trim, " [title]" -> ". ",
// drop "[...]" tags, "  " -> " ".
std::string hellaswag_clean(std::string text) {
  const size_t b = text.find_first_not_of(" \t\n\r"), e = text.find_last_not_of(" \t\n\r");
  text = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
  for (size_t at = 0; (at = text.find(" [title]", at)) != std::string::npos; at += 2) text.replace(at, 8, ". ");
  for (size_t open; (open = text.find('[')) != std::string::npos;) {
    const size_t close = text.find(']', open);
    if (close == std::string::npos) break;
    text.erase(open, close - open + 1);
  }
  // One left-to-right pass, as Python's str.replace: "   " becomes "  ".
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    out += text[i];
    if (text[i] == ' ' && i + 1 < text.size() && text[i + 1] == ' ') ++i;
  }
  return out;
}

// Python's str.capitalize() on ASCII: the first letter up, the rest down.
std::string capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i)
    s[i] = static_cast<char>(i == 0 ? std::toupper(static_cast<unsigned char>(s[i]))
                                    : std::tolower(static_cast<unsigned char>(s[i])));
  return s;
}

std::string field(const nlohmann::json& j, const char* key, const std::string& where) {
  LORY_CHECK(j.contains(key) && j[key].is_string(), where, ": \"", key, "\" must be a string");
  return j[key].get<std::string>();
}

}  // namespace

std::vector<std::string> public_task_formats() { return {"arc", "boolq", "hellaswag", "piqa", "sst2"}; }

ChoiceTask convert_public_task(const std::string& format, const std::string& path, const std::string& labels) {
  const auto formats = public_task_formats();
  LORY_CHECK(std::find(formats.begin(), formats.end(), format) != formats.end(), "unknown task format '", format,
             "'; formats: arc, boolq, hellaswag, piqa, sst2");
  std::ifstream in(path);
  LORY_CHECK(in.good(), path, ": cannot open");
  std::vector<std::string> label_lines;
  if (format == "piqa") {
    LORY_CHECK(!labels.empty(), path, ": piqa needs its labels file (valid-labels.lst)");
    std::ifstream l(labels);
    LORY_CHECK(l.good(), labels, ": cannot open");
    for (std::string line; std::getline(l, line);)
      if (!line.empty()) label_lines.push_back(line);
  }
  ChoiceTask task;
  task.name = format;
  int64_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    ChoiceExample e;
    if (format == "sst2") {  // GLUE dev.tsv: sentence<TAB>label, a header first
      if (number == 1 && line.rfind("sentence", 0) == 0) continue;
      const size_t tab = line.rfind('\t');
      LORY_CHECK(tab != std::string::npos, where, ": expected sentence<TAB>label");
      const std::string label = line.substr(tab + 1);
      LORY_CHECK(label == "0" || label == "1" || label == "0\r" || label == "1\r", where, ": label must be 0 or 1");
      e.context = line.substr(0, tab) + "\nQuestion: Is this sentence positive or negative?\nAnswer:";
      e.choices = {" negative", " positive"};
      e.gold = label[0] - '0';
      task.test.push_back(std::move(e));
      continue;
    }
    const nlohmann::json j = io::parse_json<nlohmann::json>(line, where);
    LORY_CHECK(j.is_object(), where, ": expected a JSON object");
    if (format == "hellaswag") {
      const std::string ctx = field(j, "ctx_a", where) + " " + capitalize(field(j, "ctx_b", where));
      e.context = hellaswag_clean(field(j, "activity_label", where) + ": " + ctx);
      LORY_CHECK(j.contains("endings") && j["endings"].is_array(), where, ": \"endings\" must be a list");
      for (const auto& ending : j["endings"]) {
        LORY_CHECK(ending.is_string(), where, ": every ending must be a string");
        e.choices.push_back(" " + hellaswag_clean(ending.get<std::string>()));
      }
      LORY_CHECK(j.contains("label") && (j["label"].is_number_integer() || j["label"].is_string()), where,
                 ": \"label\" must be the right ending's index");
      e.gold = j["label"].is_string() ? std::stoll(j["label"].get<std::string>()) : j["label"].get<int64_t>();
    } else if (format == "piqa") {
      LORY_CHECK(static_cast<size_t>(task.test.size()) < label_lines.size(), labels, ": fewer labels than ", path,
                 " has examples");
      e.context = "Question: " + field(j, "goal", where) + "\nAnswer:";
      e.choices = {" " + field(j, "sol1", where), " " + field(j, "sol2", where)};
      const std::string& label = label_lines[task.test.size()];
      LORY_CHECK(label == "0" || label == "1", labels, ":", task.test.size() + 1, ": label must be 0 or 1");
      e.gold = label[0] - '0';
    } else if (format == "arc") {
      LORY_CHECK(j.contains("question") && j["question"].is_object(), where, ": \"question\" must be an object");
      const nlohmann::json& q = j["question"];
      e.context = "Question: " + field(q, "stem", where) + "\nAnswer:";
      const std::string key = field(j, "answerKey", where);
      e.gold = -1;
      LORY_CHECK(q.contains("choices") && q["choices"].is_array(), where, ": \"question.choices\" must be a list");
      for (const auto& c : q["choices"]) {
        LORY_CHECK(c.is_object(), where, ": every choice must be an object {\"text\", \"label\"}");
        if (field(c, "label", where) == key) e.gold = static_cast<int64_t>(e.choices.size());
        e.choices.push_back(" " + field(c, "text", where));
      }
      LORY_CHECK(e.gold >= 0, where, ": answerKey \"", key, "\" names no choice");
    } else {  // boolq: SuperGLUE ("label") or the original release ("answer")
      e.context = field(j, "passage", where) + "\nQuestion: " + field(j, "question", where) + "?\nAnswer:";
      e.choices = {" no", " yes"};
      const char* key = j.contains("label") ? "label" : "answer";
      LORY_CHECK(j.contains(key) && j[key].is_boolean(), where, ": \"label\" (or \"answer\") must be true or false");
      e.gold = j[key].get<bool>() ? 1 : 0;
    }
    LORY_CHECK(e.choices.size() >= 2 && e.gold >= 0 && e.gold < static_cast<int64_t>(e.choices.size()), where,
               ": the answer index ", e.gold, " is not one of the ", e.choices.size(), " choices");
    task.test.push_back(std::move(e));
  }
  LORY_CHECK(!task.test.empty(), path, ": no examples");
  return task;
}

void write_choice_task(const ChoiceTask& task, const std::string& path) {
  std::ostringstream out;
  auto write = [&](const ChoiceExample& e, const char* split) {
    nlohmann::ordered_json j{{"context", e.context}, {"choices", e.choices}, {"gold", e.gold}};
    if (split) j["split"] = split;
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  };
  for (const ChoiceExample& e : task.train) write(e, "train");
  for (const ChoiceExample& e : task.test) write(e, nullptr);
  io::write_file_atomically(path, out.str());
}

}  // namespace lory::train
