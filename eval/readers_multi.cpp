// Readers for NarrativeQA (csv), HotpotQA (json), QMSum, SCROLLS, LongBench and needle cases (jsonl).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "eval/csv.h"
#include "eval/error.h"
#include "eval/io.h"
#include "eval/readers.h"

namespace lloco::eval {
namespace fs = std::filesystem;

namespace {

void note_skip(DatasetFile& out, const std::string& reason) {
  ++out.skipped;
  if (out.skip_reasons.size() < 5) out.skip_reasons.push_back(reason);
}

std::string read_whole_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail_at(p.string(), 0, "cannot open story file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path first_existing(const std::vector<fs::path>& candidates) {
  for (const auto& p : candidates)
    if (fs::exists(p)) return p;
  return {};
}

}  // namespace

DatasetFile read_narrativeqa(const std::string& path, const ReadOptions& opts) {
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  DatasetFile out{dir.string(), "narrativeqa", {}, {}, 0, {}};
  const fs::path documents_csv = first_existing({dir / "documents.csv"});
  const fs::path qaps_csv = first_existing({dir / "qaps.csv"});
  const fs::path summaries_csv = first_existing({dir / "summaries.csv", dir / "third_party" / "wikipedia" / "summaries.csv"});
  const fs::path stories = !opts.narrativeqa_stories_dir.empty() ? fs::path(opts.narrativeqa_stories_dir) : dir / "tmp";
  if (documents_csv.empty() && qaps_csv.empty())
    fail_at(dir.string(), 0, "NarrativeQA: neither documents.csv nor qaps.csv found");
  if (opts.narrativeqa_use_summaries && summaries_csv.empty())
    fail_at(dir.string(), 0, "NarrativeQA: summaries requested but no summaries.csv found");

  std::map<std::string, std::string> summaries;
  if (!summaries_csv.empty() && opts.narrativeqa_use_summaries) {
    const CsvTable t = read_csv_table(summaries_csv.string(), opts.skip_bad, &out.skipped, &out.skip_reasons);
    const size_t id = t.column("document_id", summaries_csv.string()), sum = t.column("summary", summaries_csv.string());
    for (const auto& row : t.rows) summaries[row[id]] = row[sum];
  }

  std::map<std::string, size_t> doc_index;  // document_id -> index in out.documents
  auto keep_set = [&](const std::string& set) { return opts.narrativeqa_set.empty() || set == opts.narrativeqa_set; };
  if (!documents_csv.empty()) {
    const std::string p = documents_csv.string();
    const CsvTable t = read_csv_table(p, opts.skip_bad, &out.skipped, &out.skip_reasons);
    const size_t c_id = t.column("document_id", p), c_set = t.column("set", p), c_title = t.column("wiki_title", p),
                 c_words = t.column("story_word_count", p);
    for (size_t r = 0; r < t.rows.size(); ++r) {
      const auto& row = t.rows[r];
      if (!keep_set(row[c_set])) continue;
      Document d{row[c_id], row[c_title], row[c_set], nullptr, std::nullopt};
      try {
        d.declared_words = static_cast<size_t>(std::stoull(row[c_words]));
      } catch (const std::exception&) {
        const std::string msg = at_line(p, t.row_lines[r], "field 'story_word_count': expected an integer, got '" + row[c_words] + "'");
        if (!opts.skip_bad) throw EvalError(msg);
        note_skip(out, msg);
        continue;
      }
      if (opts.narrativeqa_use_summaries) {
        if (auto it = summaries.find(d.id); it != summaries.end()) d.text = std::make_shared<const std::string>(it->second);
      } else if (fs::exists(stories / (d.id + ".content"))) {
        d.text = std::make_shared<const std::string>(read_whole_file(stories / (d.id + ".content")));
      }
      if (!doc_index.emplace(d.id, out.documents.size()).second)
        fail_at(p, t.row_lines[r], "duplicate document_id '" + d.id + "'");
      out.documents.push_back(std::move(d));
    }
  }

  if (!qaps_csv.empty()) {
    const std::string p = qaps_csv.string();
    const CsvTable t = read_csv_table(p, opts.skip_bad, &out.skipped, &out.skip_reasons);
    const size_t c_id = t.column("document_id", p), c_set = t.column("set", p), c_q = t.column("question", p),
                 c_a1 = t.column("answer1", p), c_a2 = t.column("answer2", p);
    std::map<std::string, size_t> per_doc;
    for (size_t r = 0; r < t.rows.size(); ++r) {
      const auto& row = t.rows[r];
      if (!keep_set(row[c_set])) continue;
      Example ex;
      ex.doc_id = row[c_id];
      if (!documents_csv.empty()) {
        auto it = doc_index.find(ex.doc_id);
        if (it == doc_index.end()) {
          const std::string msg = at_line(p, t.row_lines[r], "document_id '" + ex.doc_id + "' is not in documents.csv");
          if (!opts.skip_bad) throw EvalError(msg);
          note_skip(out, msg);
          continue;
        }
        ex.document = out.documents[it->second].text;
      }
      ex.id = ex.doc_id + ":" + std::to_string(per_doc[ex.doc_id]++);
      ex.question = row[c_q];
      ex.answers = {row[c_a1], row[c_a2]};
      ex.dataset = "narrativeqa";
      ex.split = row[c_set];
      out.examples.push_back(std::move(ex));
    }
  }
  return out;
}

namespace {

// "title\n" + the sentences concatenated, paragraphs separated by a blank line (LLoCO's layout).
std::string hotpot_document(const json& context) {
  std::string doc;
  auto add = [&](const std::string& title, const json& sentences, size_t i) {
    if (i > 0) doc += "\n\n";
    doc += title + "\n";
    if (!sentences.is_array()) throw EvalError("context[" + std::to_string(i) + "]: sentences must be an array");
    for (const json& s : sentences) {
      if (!s.is_string()) throw EvalError("context[" + std::to_string(i) + "]: sentence must be a string, got " + type_name(s));
      doc += s.get<std::string>();
    }
  };
  if (context.is_array()) {  // original files: [[title, [sentence, ...]], ...]
    for (size_t i = 0; i < context.size(); ++i) {
      const json& para = context[i];
      if (!para.is_array() || para.size() != 2 || !para[0].is_string())
        throw EvalError("context[" + std::to_string(i) + "]: expected [title, [sentences]]");
      add(para[0].get<std::string>(), para[1], i);
    }
  } else if (context.is_object()) {  // Hugging Face layout: {title: [...], sentences: [[...], ...]}
    const auto titles = get_string_array(context, "title");
    const json& sentences = get_array(context, "sentences");
    if (sentences.size() != titles.size()) throw EvalError("context: title and sentences differ in length");
    for (size_t i = 0; i < titles.size(); ++i) add(titles[i], sentences[i], i);
  } else {
    throw EvalError("field 'context': expected array or object, got " + type_name(context));
  }
  return doc;
}

}  // namespace

DatasetFile read_hotpotqa(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "hotpotqa", {}, {}, 0, {}};
  const std::string split = opts.split.empty() ? split_from_filename(path) : opts.split;
  if (first_nonspace_char(path) != '[') fail_at(path, 1, "HotpotQA: expected a JSON array of questions");
  for_each_json_record(path, [&](const json& rec, const std::string&, size_t index) {
    try {
      Example ex;
      ex.id = rec.contains("_id") ? get_string(rec, "_id") : get_string(rec, "id");
      ex.question = get_string(rec, "question");
      if (rec.contains("answer")) ex.answers.push_back(get_string(rec, "answer"));
      for (const char* k : {"type", "level"})
        if (rec.contains(k) && rec[k].is_string()) ex.meta[k] = rec[k].get<std::string>();
      auto text = std::make_shared<const std::string>(hotpot_document(field(rec, "context")));
      ex.doc_id = ex.id;
      ex.document = text;
      ex.dataset = "hotpotqa";
      ex.split = split;
      out.documents.push_back(Document{ex.id, "", split, text, std::nullopt});
      out.examples.push_back(std::move(ex));
    } catch (const std::exception& e) {
      const std::string msg = "record " + std::to_string(index) + ": " + e.what();
      if (!opts.skip_bad) fail_at(path, 0, msg);
      note_skip(out, at_line(path, 0, msg));
    }
  });
  return out;
}

DatasetFile read_qmsum(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "qmsum", {}, {}, 0, {}};
  const std::string stem = file_stem(path);
  const std::string split = opts.split.empty() ? split_from_filename(path) : opts.split;
  for_each_jsonl(path, opts.skip_bad, out, [&](const json& rec, size_t line) {
    std::string transcript;
    const json& turns = get_array(rec, "meeting_transcripts");
    for (size_t i = 0; i < turns.size(); ++i) {
      try {
        transcript += (i ? "\n" : "") + get_string(turns[i], "speaker") + ": " + get_string(turns[i], "content");
      } catch (const EvalError& e) {
        throw EvalError("meeting_transcripts[" + std::to_string(i) + "]: " + e.what());
      }
    }
    const std::string doc_id = stem + ":" + std::to_string(line);
    std::vector<Example> batch;
    for (const auto& [list, tag] : {std::pair{"general_query_list", "g"}, std::pair{"specific_query_list", "s"}}) {
      if (!rec.contains(list)) continue;
      const json& queries = get_array(rec, list);
      for (size_t k = 0; k < queries.size(); ++k) {
        Example ex;
        try {
          ex.question = get_string(queries[k], "query");
          ex.answers.push_back(get_string(queries[k], "answer"));
        } catch (const EvalError& e) {
          throw EvalError(std::string(list) + "[" + std::to_string(k) + "]: " + e.what());
        }
        ex.id = doc_id + ":" + tag + std::to_string(k);
        ex.doc_id = doc_id;
        ex.dataset = "qmsum";
        ex.split = split;
        ex.meta["query_type"] = tag[0] == 'g' ? "general" : "specific";
        batch.push_back(std::move(ex));
      }
    }
    auto text = std::make_shared<const std::string>(std::move(transcript));
    out.documents.push_back(Document{doc_id, "", split, text, std::nullopt});
    for (auto& ex : batch) {
      ex.document = text;
      out.examples.push_back(std::move(ex));
    }
  });
  return out;
}

DatasetFile read_scrolls(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "scrolls", {}, {}, 0, {}};
  std::string dataset = opts.dataset;
  if (dataset.empty()) {
    // The file name ("qasper_validation.jsonl"), else its folder (HF exports: "scrolls/qasper/train.jsonl").
    const std::filesystem::path p(path);
    for (const std::string name : {file_stem(path), p.parent_path().filename().string()}) {
      for (const char* d : {"qmsum", "qasper", "narrative_qa", "narrativeqa", "quality", "gov_report", "summ_screen_fd", "contract_nli"})
        if (name.find(d) != std::string::npos) dataset = d;
      if (!dataset.empty()) break;
    }
    if (dataset.empty())
      fail_at(path, 0, "SCROLLS: cannot tell the dataset from the file or folder name; pass it (--dataset)");
  }
  dataset = canonical_dataset(dataset);
  const std::string split = opts.split.empty() ? split_from_filename(path) : opts.split;
  std::map<std::string, size_t> by_id;                            // id -> example index
  std::map<std::string, std::shared_ptr<const std::string>> docs;  // doc id -> text
  size_t rows = 0;  // records seen (blank lines are not rows)
  for_each_jsonl(path, opts.skip_bad, out, [&](const json& rec, size_t) {
    const size_t row = rows++;
    const std::string id = get_string(rec, "id");
    const std::string input = get_string(rec, "input");
    const json& output = field(rec, "output");
    if (!output.is_string() && !output.is_null()) throw EvalError("field 'output': expected string or null, got " + type_name(output));
    if (auto it = by_id.find(id); it != by_id.end()) {  // SCROLLS repeats an id once per reference
      if (output.is_string()) out.examples[it->second].answers.push_back(output.get<std::string>());
      return;
    }
    Example ex;
    std::string document;
    split_scrolls_input(input, &ex.question, &document);
    ex.id = id;
    ex.doc_id = id.substr(0, id.find('_'));  // LLoCO keys compressed contexts by this prefix
    auto& text = docs[ex.doc_id];
    if (!text || *text != document) {
      text = std::make_shared<const std::string>(std::move(document));
      out.documents.push_back(Document{ex.doc_id, "", split, text, std::nullopt});
    }
    ex.document = text;
    if (output.is_string()) ex.answers.push_back(output.get<std::string>());
    if (rec.contains("pid") && rec["pid"].is_string()) ex.meta["pid"] = rec["pid"].get<std::string>();
    // The 0-based row of the example's first record, as the HF split indexes it (LLoCO's needle
    // haystack is NarrativeQA validation row 97).
    ex.meta["row"] = std::to_string(row);
    ex.dataset = dataset;
    ex.split = split;
    by_id.emplace(id, out.examples.size());
    out.examples.push_back(std::move(ex));
  });
  return out;
}

DatasetFile read_longbench(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "longbench", {}, {}, 0, {}};
  const std::string split = opts.split.empty() ? "test" : opts.split;
  for_each_jsonl(path, opts.skip_bad, out, [&](const json& rec, size_t) {
    Example ex;
    ex.id = get_string(rec, "_id");
    ex.question = get_string(rec, "input");
    ex.answers = get_string_array(rec, "answers");
    const std::string subset = rec.contains("dataset") ? get_string(rec, "dataset") : file_stem(path);
    ex.dataset = "longbench/" + subset;
    ex.split = split;
    for (const char* k : {"length", "language"})
      if (rec.contains(k) && !rec[k].is_null()) ex.meta[k] = rec[k].is_string() ? rec[k].get<std::string>() : rec[k].dump();
    if (rec.contains("all_classes") && !rec["all_classes"].is_null()) ex.meta["all_classes"] = rec["all_classes"].dump();
    auto text = std::make_shared<const std::string>(get_string(rec, "context"));
    ex.doc_id = ex.id;
    ex.document = text;
    out.documents.push_back(Document{ex.id, "", split, text, std::nullopt});
    out.examples.push_back(std::move(ex));
  });
  return out;
}

namespace {

int64_t get_int(const json& obj, const char* name) {
  const json& v = field(obj, name);
  if (!v.is_number_integer()) throw EvalError(std::string("field '") + name + "': expected integer, got " + type_name(v));
  return v.get<int64_t>();
}

}  // namespace

DatasetFile read_needle(const std::string& path, const ReadOptions& opts) {
  DatasetFile out{path, "needle", {}, {}, 0, {}};
  const std::string split = opts.split.empty() ? split_from_filename(path) : opts.split;
  std::map<std::string, size_t> first_line;  // id -> line, to report duplicates
  for_each_jsonl(path, opts.skip_bad, out, [&](const json& rec, size_t line) {
    Example ex;
    ex.id = get_string(rec, "_id");
    ex.question = get_string(rec, "question");
    ex.answers = get_string_array(rec, "answers");
    if (ex.answers.empty()) throw EvalError("field 'answers': empty (a needle case needs its answer)");
    const int64_t depth = get_int(rec, "depth_percent");
    if (depth < 0 || depth > 100) throw EvalError("field 'depth_percent': expected 0..100, got " + std::to_string(depth));
    ex.meta["length"] = std::to_string(get_int(rec, "length"));
    ex.meta["depth_percent"] = std::to_string(depth);
    ex.meta["iteration"] = std::to_string(get_int(rec, "iteration"));
    ex.meta["context_tokens"] = std::to_string(get_int(rec, "context_tokens"));
    ex.meta["needle"] = get_string(rec, "needle");
    auto text = std::make_shared<const std::string>(get_string(rec, "context"));
    if (auto [it, fresh] = first_line.emplace(ex.id, line); !fresh)
      throw EvalError("field '_id': '" + ex.id + "' repeats line " + std::to_string(it->second));
    ex.doc_id = ex.id;
    ex.document = text;
    ex.dataset = "needle";
    ex.split = split;
    out.documents.push_back(Document{ex.id, "", split, text, std::nullopt});
    out.examples.push_back(std::move(ex));
  });
  return out;
}

}  // namespace lloco::eval
