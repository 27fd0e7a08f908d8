// The request parsers of `peft serve`: OpenAI's shapes accepted, every wrong type a 400 with a message
// naming the field, and base64 embeddings as numpy's float32 tobytes() + base64 encodes them.
#include <gtest/gtest.h>

#include "serve/api.h"

namespace {

using nlohmann::json;
using namespace peft::serve;

template <typename F>
void expect_400(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << part;
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(ServeApi, BodiesMustBeJsonObjects) {
  expect_400([] { parse_body("{\"a\": "); }, "not valid JSON");
  expect_400([] { parse_body("[1]"); }, "JSON object");
  expect_400([] { parse_body(""); }, "not valid JSON");
  EXPECT_EQ(parse_body(R"({"a": 1})")["a"], 1);
}

TEST(ServeApi, EmbeddingsTakeAStringOrAListAndAnEncodingFormat) {
  auto one = parse_embeddings(json{{"model", "m"}, {"input", "hi"}});
  EXPECT_EQ(one.inputs, std::vector<std::string>{"hi"});
  EXPECT_FALSE(one.base64);
  auto many = parse_embeddings(json{{"model", "m"}, {"input", {"a", "b"}}, {"encoding_format", "base64"}});
  EXPECT_EQ(many.inputs.size(), 2u);
  EXPECT_TRUE(many.base64);
  expect_400([] { parse_embeddings(json{{"input", "x"}}); }, "missing \"model\"");
  expect_400([] { parse_embeddings(json{{"model", 1}, {"input", "x"}}); }, "\"model\" must be a string");
  expect_400([] { parse_embeddings(json{{"model", "m"}, {"input", json::array()}}); }, "non-empty list");
  expect_400([] { parse_embeddings(json{{"model", "m"}, {"input", {1, 2}}}); }, "\"input\" must be");
  expect_400([] { parse_embeddings(json{{"model", "m"}, {"input", "x"}, {"encoding_format", "int8"}}); }, "encoding_format");
}

TEST(ServeApi, ClassifyTakesTextsAndPairs) {
  auto r = parse_classify(json{{"model", "t"}, {"input", json::array({"a", json::array({"b", "c"})})}});
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_FALSE(r.inputs[0].pair);
  EXPECT_EQ(*r.inputs[1].pair, "c");
  expect_400([] { parse_classify(json{{"model", "t"}, {"input", json::array({json::array({"a"})})}}); }, "[text, pair]");
  expect_400([] { parse_classify(json{{"model", "t"}, {"input", 3}}); }, "\"input\" must be");
}

TEST(ServeApi, SamplingOptionsFollowOpenAiNamesAndDefaults) {
  auto c = parse_completion(json{{"model", "m"}, {"prompt", "p"}});
  EXPECT_EQ(c.sampling.max_tokens, 16);
  EXPECT_DOUBLE_EQ(c.sampling.temperature, 1.0);
  EXPECT_FALSE(c.sampling.stream);
  auto s = parse_completion(json{{"model", "m"}, {"prompt", {"a", "b"}}, {"max_tokens", 5}, {"temperature", 0},
                                 {"stop", "\n"}, {"seed", 7}, {"top_k", -1}});
  EXPECT_EQ(s.prompts.size(), 2u);
  EXPECT_EQ(s.sampling.max_tokens, 5);
  EXPECT_EQ(s.sampling.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(*s.sampling.seed, 7u);
  EXPECT_EQ(s.sampling.top_k, 0);
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", "p"}, {"max_tokens", "5"}}); }, "\"max_tokens\" must be an integer");
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", "p"}, {"max_tokens", 0}}); }, "at least 1");
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", "p"}, {"temperature", -1}}); }, "temperature");
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", "p"}, {"top_p", 0}}); }, "top_p");
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", "p"}, {"n", 2}}); }, "\"n\": 1");
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", "p"}, {"stream", "yes"}}); }, "\"stream\"");
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", {"a", "b"}}, {"stream", true}}); }, "single prompt");
  expect_400([] { parse_completion(json{{"model", "m"}, {"prompt", "p"}, {"stop", {1}}}); }, "\"stop\"");
}

TEST(ServeApi, ChatMessagesTakeStringsOrTextParts) {
  auto r = parse_chat(json{{"model", "m"},
                           {"messages", {{{"role", "system"}, {"content", "be brief"}},
                                         {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "hi "}},
                                                                         {{"type", "text"}, {"text", "there"}}}}}}},
                           {"max_completion_tokens", 9}});
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].content, "hi there");
  EXPECT_EQ(r.sampling.max_tokens, 9);
  expect_400([] { parse_chat(json{{"model", "m"}, {"messages", json::array()}}); }, "non-empty list");
  expect_400([] { parse_chat(json{{"model", "m"}, {"messages", {{{"content", "x"}}}}}); }, "\"role\"");
  expect_400([] { parse_chat(json{{"model", "m"}, {"messages", {{{"role", "user"}, {"content", 5}}}}}); }, "\"content\"");
  expect_400(
      [] {
        parse_chat(json{{"model", "m"}, {"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}});
      },
      "content parts");
}

TEST(ServeApi, TaskLoadsTakeANameAndAPath) {
  auto r = parse_task_load(json{{"name", "t"}, {"path", "/p"}});
  EXPECT_EQ(r.name, "t");
  EXPECT_EQ(r.path, "/p");
  auto synonyms = parse_task_load(json{{"task", "u"}, {"dir", "/q"}});
  EXPECT_EQ(synonyms.name, "u");
  EXPECT_EQ(synonyms.path, "/q");
  expect_400([] { parse_task_load(json{{"path", "/p"}}); }, "missing \"name\"");
  expect_400([] { parse_task_load(json{{"name", "t"}, {"path", 3}}); }, "\"path\" must be a string");
}

TEST(ServeApi, Base64EmbeddingsAreLittleEndianFloat32Bytes) {
  // numpy: base64.b64encode(np.array([1.0, -2.5], dtype="<f4").tobytes()) == b"AACAPwAAIMA="
  EXPECT_EQ(base64_floats({1.0f, -2.5f}), "AACAPwAAIMA=");
  EXPECT_EQ(base64_floats({}), "");
  EXPECT_EQ(base64_floats({0.0f}), "AAAAAA==");
}

TEST(ServeApi, ErrorBodiesHaveOpenAisShape) {
  const json e = error_body(404, "not_found_error", "no such model");
  EXPECT_EQ(e["error"]["message"], "no such model");
  EXPECT_EQ(e["error"]["type"], "not_found_error");
  EXPECT_EQ(e["error"]["code"], 404);
}

}  // namespace
