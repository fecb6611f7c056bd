// Readers for the QA datasets with shared articles: QuALITY v1.0.1, L-Eval, Qasper v0.3.
#include <map>
#include <memory>

#include "eval/error.h"
#include "eval/io.h"
#include "eval/readers.h"
#include "eval/unicode.h"

namespace lloco::eval {
namespace {

std::string choice_answer(size_t index, const std::vector<std::string>& options) {
  return std::string(1, static_cast<char>('A' + index)) + ". " + options[index];
}

std::string split_or(const ReadOptions& opts, const std::string& path) {
  return opts.split.empty() ? split_from_filename(path) : opts.split;
}

// Documents keyed by id; the first text seen for an id wins (QuALITY repeats each article once
// per writer, with identical text).
struct DocumentIndex {
  std::map<std::string, std::shared_ptr<const std::string>> by_id;
  std::shared_ptr<const std::string> add(DatasetFile& out, const std::string& id, std::string text,
                                         const std::string& title, const std::string& split) {
    auto it = by_id.find(id);
    if (it != by_id.end()) return it->second;
    auto ptr = std::make_shared<const std::string>(std::move(text));
    by_id.emplace(id, ptr);
    out.documents.push_back(Document{id, title, split, ptr, std::nullopt});
    return ptr;
  }
};

}  // namespace

DatasetFile read_quality(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "quality", {}, {}, 0, {}};
  const std::string split = split_or(opts, path);
  DocumentIndex docs;
  for_each_jsonl(path, opts.skip_bad, out, [&](const json& rec, size_t) {
    const std::string article_id = get_string(rec, "article_id");
    const std::string title = rec.contains("title") && rec["title"].is_string() ? rec["title"].get<std::string>() : "";
    const json& questions = get_array(rec, "questions");
    std::vector<Example> batch;  // all-or-nothing per line, so a skipped line leaves no residue
    for (size_t qi = 0; qi < questions.size(); ++qi) {
      const json& q = questions[qi];
      const std::string where = "questions[" + std::to_string(qi) + "].";
      Example ex;
      try {
        ex.id = get_string(q, "question_unique_id");
        ex.question = get_string(q, "question");
        ex.options = get_string_array(q, "options");
      } catch (const EvalError& e) {
        throw EvalError(where + e.what());
      }
      if (ex.options.size() < 2 || ex.options.size() > 26)
        throw EvalError(where + "options: expected 2..26 options, got " + std::to_string(ex.options.size()));
      if (q.contains("gold_label") && !q["gold_label"].is_null()) {
        const json& g = q["gold_label"];
        if (!g.is_number_integer())
          throw EvalError(where + "gold_label: expected integer, got " + type_name(g));
        const auto gold = g.get<long long>();
        if (gold < 1 || gold > static_cast<long long>(ex.options.size()))
          throw EvalError(where + "gold_label: " + std::to_string(gold) + " outside 1.." +
                          std::to_string(ex.options.size()));
        ex.answers.push_back(choice_answer(static_cast<size_t>(gold - 1), ex.options));
      }
      if (q.contains("difficult") && q["difficult"].is_number()) ex.meta["difficult"] = q["difficult"].dump();
      ex.doc_id = article_id;
      ex.dataset = "quality";
      ex.split = split;
      batch.push_back(std::move(ex));
    }
    auto text = docs.add(out, article_id, get_string(rec, "article"), title, split);
    for (auto& ex : batch) {
      ex.document = text;
      out.examples.push_back(std::move(ex));
    }
  });
  return out;
}

DatasetFile read_leval(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "leval", {}, {}, 0, {}};
  const std::string stem = file_stem(path);
  const std::string split = opts.split.empty() ? "test" : opts.split;  // L-Eval ships test sets only
  for_each_jsonl(path, opts.skip_bad, out, [&](const json& rec, size_t line) {
    const std::vector<std::string> instructions = get_string_array(rec, "instructions");
    const std::vector<std::string> outputs = get_string_array(rec, "outputs");
    if (instructions.size() != outputs.size())
      throw EvalError("instructions has " + std::to_string(instructions.size()) + " entries but outputs has " +
                      std::to_string(outputs.size()));
    const std::string source = rec.contains("source") && rec["source"].is_string() ? rec["source"].get<std::string>() : stem;
    const std::string dataset = canonical_dataset(source);
    const std::string doc_id = stem + ":" + std::to_string(line);
    std::vector<Example> batch;
    for (size_t k = 0; k < instructions.size(); ++k) {
      Example ex;
      ex.id = doc_id + ":" + std::to_string(k);
      ex.doc_id = doc_id;
      ex.dataset = dataset;
      ex.split = split;
      if (dataset == "quality") {
        if (!split_choice_instruction(instructions[k], &ex.question, &ex.options))
          throw EvalError("instructions[" + std::to_string(k) + "]: no \"(A)\", \"(B)\", ... options on their own lines");
        const std::string& o = outputs[k];
        const size_t letter = o.size() >= 3 && o[0] == '(' && o[2] == ')' ? static_cast<size_t>(o[1] - 'A') : 99;
        if (letter >= ex.options.size())
          throw EvalError("outputs[" + std::to_string(k) + "]: expected \"(A) ...\" with one of the " +
                          std::to_string(ex.options.size()) + " option letters, got \"" + o.substr(0, 40) + "\"");
        ex.answers.push_back(choice_answer(letter, ex.options));
      } else {
        ex.question = text::strip_ws(instructions[k]);
        ex.answers.push_back(outputs[k]);
      }
      batch.push_back(std::move(ex));
    }
    auto text = std::make_shared<const std::string>(get_string(rec, "input"));
    out.documents.push_back(Document{doc_id, "", split, text, std::nullopt});
    for (auto& ex : batch) {
      ex.document = text;
      out.examples.push_back(std::move(ex));
    }
  });
  return out;
}

namespace {

// The reference string of one Qasper annotation, in the official evaluator's order of precedence:
// unanswerable, extractive spans (joined with ", "), free-form answer, then yes/no.
std::string qasper_reference(const json& answer) {
  if (answer.value("unanswerable", false)) return "Unanswerable";
  if (answer.contains("extractive_spans") && answer["extractive_spans"].is_array() &&
      !answer["extractive_spans"].empty()) {
    std::string joined;
    for (const auto& span : get_string_array(answer, "extractive_spans")) joined += (joined.empty() ? "" : ", ") + span;
    return joined;
  }
  if (answer.contains("free_form_answer") && answer["free_form_answer"].is_string() &&
      !answer["free_form_answer"].get<std::string>().empty())
    return answer["free_form_answer"].get<std::string>();
  if (answer.contains("yes_no") && answer["yes_no"].is_boolean()) return answer["yes_no"].get<bool>() ? "Yes" : "No";
  throw EvalError("answer holds none of unanswerable / extractive_spans / free_form_answer / yes_no");
}

std::string qasper_document(const json& paper) {
  std::string doc = paper.value("title", std::string());
  if (paper.contains("abstract") && paper["abstract"].is_string()) doc += "\n\nAbstract\n" + paper["abstract"].get<std::string>();
  if (!paper.contains("full_text")) return doc;
  for (const json& section : get_array(paper, "full_text")) {
    doc += "\n\n";
    if (section.contains("section_name") && section["section_name"].is_string())
      doc += section["section_name"].get<std::string>() + "\n";
    bool first = true;
    for (const std::string& para : get_string_array(section, "paragraphs")) {
      if (para.empty()) continue;
      if (!first) doc += "\n";
      doc += para;
      first = false;
    }
  }
  return doc;
}

}  // namespace

DatasetFile read_qasper(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "qasper", {}, {}, 0, {}};
  const std::string split = split_or(opts, path);
  if (first_nonspace_char(path) != '{') fail_at(path, 1, "Qasper: expected a JSON object keyed by paper id");
  for_each_json_record(path, [&](const json& paper, const std::string& paper_id, size_t index) {
    try {
      std::vector<Example> batch;
      const json& qas = get_array(paper, "qas");
      for (size_t qi = 0; qi < qas.size(); ++qi) {
        const json& qa = qas[qi];
        Example ex;
        try {
          ex.id = get_string(qa, "question_id");
          ex.question = get_string(qa, "question");
          if (qa.contains("answers"))
            for (const json& a : get_array(qa, "answers")) ex.answers.push_back(qasper_reference(get_object(a, "answer")));
        } catch (const EvalError& e) {
          throw EvalError("qas[" + std::to_string(qi) + "]: " + e.what());
        }
        ex.doc_id = paper_id;
        ex.dataset = "qasper";
        ex.split = split;
        batch.push_back(std::move(ex));
      }
      auto text = std::make_shared<const std::string>(qasper_document(paper));
      out.documents.push_back(Document{paper_id, paper.value("title", std::string()), split, text, std::nullopt});
      for (auto& ex : batch) {
        ex.document = text;
        out.examples.push_back(std::move(ex));
      }
    } catch (const std::exception& e) {
      const std::string msg = "record " + std::to_string(index) + " (paper '" + paper_id + "'): " + e.what();
      if (!opts.skip_bad) fail_at(path, 0, msg);
      ++out.skipped;
      if (out.skip_reasons.size() < 5) out.skip_reasons.push_back(at_line(path, 0, msg));
    }
  });
  return out;
}

}  // namespace lloco::eval
