// libFuzzer target for the request parsers of `peft serve` (every request body is untrusted). Built
// without LibTorch: see the PEFT_FUZZ block of CMakeLists.txt.
//
//   fuzz_serve_api -max_total_time=60 -dict=fuzz/serve_api.dict fuzz/corpus/serve_api
//
// Besides crashes and sanitizer reports, it checks what a successful parse promises: the fields a
// request needs are there and in range. The only exception a parser may throw is HttpError 400.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "serve/api.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

template <typename F>
void parse_or_400(F f) {
  try {
    f();
  } catch (const peft::serve::HttpError& e) {
    check(e.status == 400 && !std::string(e.what()).empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace peft::serve;
  const std::string body(reinterpret_cast<const char*>(data), size);
  nlohmann::json j;
  try {
    j = parse_body(body);
  } catch (const HttpError& e) {
    check(e.status == 400);
    return 0;
  }
  check(j.is_object());
  parse_or_400([&] {
    auto r = parse_embeddings(j);
    check(!r.inputs.empty());
  });
  parse_or_400([&] {
    auto r = parse_classify(j);
    check(!r.inputs.empty());
  });
  parse_or_400([&] {
    auto r = parse_completion(j);
    check(!r.prompts.empty() && r.sampling.max_tokens >= 1 && r.sampling.temperature >= 0 && r.sampling.top_p > 0 &&
          r.sampling.top_k >= 0);
    check(!r.sampling.stream || r.prompts.size() == 1);
  });
  parse_or_400([&] {
    auto r = parse_chat(j);
    check(!r.messages.empty() && r.sampling.max_tokens >= 1);
  });
  parse_or_400([&] { parse_task_load(j); });
  return 0;
}
