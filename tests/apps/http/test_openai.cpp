// The OpenAI protocol without sockets: request parsing and validation, stop-string filtering.
#include <gtest/gtest.h>

#include "apps/http/openai_api.h"

namespace lloco::http {
namespace {

// The HttpError's param for a body that must be rejected.
std::string rejected_param(const std::string& body) {
  try {
    parse_chat_request(body);
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 400) << e.what();
    return e.param();
  }
  ADD_FAILURE() << "accepted: " << body;
  return "";
}

TEST(OpenAiParse, FullRequest) {
  const ChatRequest r = parse_chat_request(R"({
    "model": "m", "messages": [{"role": "system", "content": "be brief"},
                               {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                               {"role": "assistant", "content": "ok", "name": "bot"}],
    "max_completion_tokens": 7, "temperature": 0, "top_p": 0.9, "n": 1, "stop": ["\n", "END"], "seed": -3,
    "stream": true, "stream_options": {"include_usage": true}, "user": "u1", "presence_penalty": 0,
    "lloco": {"top_k": 2, "doc_ids": ["d1"], "adapter": "group-1"}})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[1].content, "a\nb");
  EXPECT_EQ(r.messages[2].role, "assistant");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0.0);
  EXPECT_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_EQ(r.seed, -3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.lloco.top_k, 2);
  EXPECT_EQ(r.lloco.doc_ids, std::vector<std::string>{"d1"});
  EXPECT_EQ(r.lloco.adapter, "group-1");
}

TEST(OpenAiParse, NullsMeanAbsentAndStopMayBeAString) {
  const ChatRequest r = parse_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":null,"temperature":null,
          "stop":"END","seed":null,"stream":null,"lloco":null})");
  EXPECT_FALSE(r.max_tokens);
  EXPECT_FALSE(r.temperature);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.lloco.top_k);
}

TEST(OpenAiParse, RejectionsNameTheField) {
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  auto with = [&](const std::string& field) { return R"({"model":"m",)" + msgs + "," + field + "}"; };
  EXPECT_EQ(rejected_param("[1, 2]"), "");
  EXPECT_EQ(rejected_param(R"({"messages":[{"role":"user","content":"x"}]})"), "model");
  EXPECT_EQ(rejected_param(R"({"model":"m","messages":[]})"), "messages");
  EXPECT_EQ(rejected_param(R"({"model":"m","messages":[{"role":"user"}]})"), "messages[0].content");
  EXPECT_EQ(rejected_param(R"({"model":"m","messages":[{"role":"user","content":null}]})"), "messages[0].content");
  EXPECT_EQ(rejected_param(R"({"model":"m","messages":[{"role":"user","content":"x","extra":1}]})"),
            "messages[0].extra");
  EXPECT_EQ(rejected_param(with(R"("n":3)")), "n");
  EXPECT_EQ(rejected_param(with(R"("temperature":2.5)")), "temperature");
  EXPECT_EQ(rejected_param(with(R"("top_p":0)")), "top_p");
  EXPECT_EQ(rejected_param(with(R"("max_tokens":1.5)")), "max_tokens");
  EXPECT_EQ(rejected_param(with(R"("max_tokens":3,"max_completion_tokens":4)")), "max_completion_tokens");
  EXPECT_EQ(rejected_param(with(R"("stop":["a","b","c","d","e"])")), "stop");
  EXPECT_EQ(rejected_param(with(R"("stop":"")")), "stop");
  EXPECT_EQ(rejected_param(with(R"("stream":"yes")")), "stream");
  EXPECT_EQ(rejected_param(with(R"("stream_options":{"include_usage":true})")), "stream_options");
  EXPECT_EQ(rejected_param(with(R"("stream":true,"stream_options":{"usage":true})")), "stream_options.usage");
  EXPECT_EQ(rejected_param(with(R"("lloco":{"top_k":-1})")), "lloco.top_k");
  EXPECT_EQ(rejected_param(with(R"("lloco":{"adapter":""})")), "lloco.adapter");
  EXPECT_EQ(rejected_param(with(R"("lloco":{"doc_ids":["a",2]})")), "lloco.doc_ids[1]");
  EXPECT_EQ(rejected_param(with(R"("lloco":{"retriever":"bm25"})")), "lloco.retriever");
  EXPECT_EQ(rejected_param(with(R"("frequency_penalty":0.5)")), "frequency_penalty");
  EXPECT_EQ(rejected_param(with(R"("logprobs":true)")), "logprobs");
  EXPECT_EQ(rejected_param(with(R"("temprature":1)")), "temprature");
}

TEST(DeltaFilter, StopStringAcrossDeltas) {
  DeltaFilter f({"END", "\n\n"});
  EXPECT_EQ(f.push("hello E"), "hello ");  // "E" might start "END"
  EXPECT_EQ(f.push("x"), "Ex");            // it did not
  EXPECT_EQ(f.push(" EN"), " ");
  EXPECT_EQ(f.push("D tail"), "");
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.push("more"), "");
  EXPECT_EQ(f.flush(), "");
}

TEST(DeltaFilter, HoldsBackSplitUtf8AndFlushes) {
  DeltaFilter f({});
  // U+20AC (E2 82 AC) split after its second byte.
  EXPECT_EQ(f.push("a\xE2\x82"), "a");
  EXPECT_EQ(f.push("\xAC" "b"), "\xE2\x82\xAC" "b");
  EXPECT_EQ(f.push("\xF0\x9F"), "");
  EXPECT_EQ(f.flush(), "\xF0\x9F");  // an unfinished sequence at the end is handed over as is
  EXPECT_FALSE(f.stopped());
}

TEST(OpenAiJson, InvalidUtf8NeverThrows) {
  ChatResult r;
  const auto j = completion_json("chatcmpl-x", 1, "m", "bad \xFF byte", r);
  EXPECT_NE(dump(j).find("bad \xEF\xBF\xBD byte"), std::string::npos);
}

}  // namespace
}  // namespace lloco::http
