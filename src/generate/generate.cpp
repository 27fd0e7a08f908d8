#include "peft/generate/generate.h"

#include <chrono>
#include <limits>

#include <algorithm>

#include <fmt/format.h>

#include "peft/error.h"
#include "peft/generate/decode_session.h"

namespace peft {

torch::Tensor process_logits(torch::Tensor logits, const torch::Tensor& seen, const GenerationOptions& o) {
  logits = logits.to(torch::kFloat);
  if (o.repetition_penalty != 1.0) {
    // HF: a seen token's logit is divided by the penalty when positive, multiplied when negative.
    torch::Tensor score = logits.gather(1, seen);
    score = torch::where(score < 0, score * o.repetition_penalty, score / o.repetition_penalty);
    logits = logits.scatter(1, seen, score);
  }
  if (!o.do_sample) return logits;
  const float lowest = -std::numeric_limits<float>::infinity();
  if (o.temperature != 1.0) logits = logits / o.temperature;
  if (o.top_k > 0 && o.top_k < logits.size(1)) {
    const torch::Tensor kth = std::get<0>(logits.topk(o.top_k, 1)).narrow(1, o.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, lowest);
  }
  if (o.top_p < 1.0) {
    // HF: sort ascending, drop the tokens whose cumulative probability stays within 1 - top_p (keep >= 1).
    auto [sorted, order] = logits.sort(1, /*descending=*/false);
    torch::Tensor cumulative = sorted.softmax(1).cumsum(1);
    torch::Tensor drop = cumulative <= (1 - o.top_p);
    drop.narrow(1, drop.size(1) - 1, 1).fill_(false);
    logits = logits.masked_fill(drop.scatter(1, order, drop), lowest);
  }
  if (o.min_p > 0.0) {
    const torch::Tensor probs = logits.softmax(1);
    const torch::Tensor threshold = probs.amax(1, /*keepdim=*/true) * o.min_p;
    logits = logits.masked_fill(probs < threshold, lowest);
  }
  return logits;
}

GenerationResult generate(Model& model, const std::vector<std::vector<int64_t>>& prompts, const GenerationOptions& o,
                          const TokenCallback& on_step) {
  if (prompts.empty()) fail("generate: no prompts");
  const bool routed = !o.row_adapters.empty();
  if (routed && o.row_adapters.size() != prompts.size())
    fail("generate: {} row adapters for {} prompts", o.row_adapters.size(), prompts.size());
  DecodeSession session(model, routed);
  const auto options = std::make_shared<const GenerationOptions>(o);
  std::vector<DecodeRow> rows;
  for (size_t r = 0; r < prompts.size(); ++r) rows.push_back({r, prompts[r], routed ? o.row_adapters[r] : "", options});

  GenerationResult result;
  result.tokens.resize(prompts.size());
  result.stopped.assign(prompts.size(), false);
  for (auto& p : prompts) result.prompt_tokens = std::max(result.prompt_tokens, int64_t(p.size()));
  // Hands each step's tokens to the callback, which may end rows early.
  auto deliver = [&](const std::vector<DecodedToken>& tokens) {
    std::vector<int64_t> newest(prompts.size(), -1);
    std::vector<bool> finish(prompts.size(), false);
    bool any = false;
    for (const DecodedToken& t : tokens) {
      if (t.token < 0) continue;
      newest[t.row] = t.token;
      result.tokens[t.row].push_back(t.token);
      finish[t.row] = t.stopped;
      any = true;
    }
    if (on_step && any) {
      GenerationStep view{newest, finish};
      on_step(view);
    }
    for (const DecodedToken& t : tokens) {
      if (t.token < 0) continue;
      result.stopped[t.row] = finish[t.row];
      if (finish[t.row] && !t.last) session.remove(t.row);
    }
  };
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  deliver(session.add(rows));
  const auto prefill_done = Clock::now();
  while (!session.empty()) deliver(session.step());
  result.prefill_seconds = std::chrono::duration<double>(prefill_done - started).count();
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - prefill_done).count();
  return result;
}

GenerationResult generate(AdaptedModel& model, const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationOptions& options, const TokenCallback& on_step) {
  for (auto& m : model.methods()) m->before_forward(*model.model());
  return generate(*model.model(), prompts, options, on_step);
}

}  // namespace peft
