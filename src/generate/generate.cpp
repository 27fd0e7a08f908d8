#include "peft/generate/generate.h"

#include <chrono>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include <fmt/format.h>

#include "peft/error.h"

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
  if (o.max_new_tokens < 0) fail("generate: max_new_tokens must be >= 0");
  if (o.do_sample && !(o.temperature > 0)) fail("generate: temperature must be > 0 when sampling");
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("generate: top_p must be in (0, 1]");
  const ModelArch& arch = model.arch();
  if (!arch.causal) fail("generate: the model is not a causal language model");
  const int64_t batch = int64_t(prompts.size());
  size_t longest = 0;
  for (auto& p : prompts) {
    if (p.empty()) fail("generate: an empty prompt (a prompt needs at least one token)");
    longest = std::max(longest, p.size());
  }
  const int64_t length = int64_t(longest);
  int64_t prefix = 0;
  for (auto& site : model.sites().attention_kv_sites()) prefix = std::max(prefix, site->virtual_tokens());
  if (arch.max_positions > 0 && prefix + length > arch.max_positions)
    fail("generate: a prompt of {} tokens{} does not fit the model's context of {} positions (shorten it or truncate "
         "it on the left)",
         length, prefix > 0 ? fmt::format(" after {} virtual tokens", prefix) : "", arch.max_positions);
  const int64_t max_new = arch.max_positions > 0 ? std::min(o.max_new_tokens, arch.max_positions - prefix - length)
                                                 : o.max_new_tokens;
  const torch::Tensor ref = model.reference_weight();
  const auto device = ref.device();

  // Left padding: every row's last prompt token sits in the last column.
  torch::Tensor ids = torch::full({batch, length}, o.pad_token_id, torch::kLong);
  torch::Tensor mask = torch::zeros({batch, length}, torch::kLong);
  for (int64_t r = 0; r < batch; ++r) {
    const auto& p = prompts[size_t(r)];
    const int64_t start = length - int64_t(p.size());
    ids[r].narrow(0, start, int64_t(p.size())).copy_(torch::tensor(p, torch::kLong));
    mask[r].narrow(0, start, int64_t(p.size())).fill_(1);
  }
  ids = ids.to(device);
  mask = mask.to(device);

  KVCache cache(arch.num_layers, batch, arch.num_kv_heads, prefix + length + max_new + 1, arch.head_dim,
                ref.options());
  ForwardContext context;
  context.cache = &cache;
  context.last_position_only = true;
  if (!o.row_adapters.empty()) {
    if (int64_t(o.row_adapters.size()) != batch)
      fail("generate: {} row adapters for {} prompts", o.row_adapters.size(), batch);
    context.routing.assign("", {});  // rows of the base model see no adapter
    for (int64_t r = 0; r < batch; ++r)
      if (!o.row_adapters[size_t(r)].empty()) context.routing.assign(o.row_adapters[size_t(r)], {r});
  }

  std::optional<torch::Generator> generator;  // sampling draws on the CPU so a seed means the same on CUDA
  if (o.seed) generator = at::detail::createCPUGenerator(*o.seed);
  torch::NoGradGuard no_grad;
  // HF's position ids: the count of real tokens before each one; padding gets 1.
  torch::Tensor positions = (mask.cumsum(1) - 1).masked_fill(mask.eq(0), 1);
  ModelInput in{ids, mask, {}, false, positions};
  torch::Tensor seen = ids;
  torch::Tensor last_position = positions.select(1, length - 1);
  torch::Tensor unfinished = torch::ones({batch}, torch::kBool).to(device);
  GenerationResult result;
  result.tokens.resize(size_t(batch));
  result.stopped.assign(size_t(batch), false);
  result.prompt_tokens = length;
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto prefill_done = started;
  for (int64_t step = 0; step < max_new; ++step) {
    torch::Tensor logits = process_logits(model.forward(in, context).select(1, 0), seen, o);
    if (step == 0) prefill_done = Clock::now();
    torch::Tensor next;
    if (o.do_sample) {
      torch::Tensor probs = logits.softmax(1).cpu();
      next = (generator ? probs.multinomial(1, false, *generator) : probs.multinomial(1)).squeeze(1).to(device);
    } else {
      next = logits.argmax(1);
    }
    next = torch::where(unfinished, next, torch::full_like(next, o.pad_token_id));
    const torch::Tensor next_cpu = next.cpu().contiguous(), unfinished_cpu = unfinished.cpu().contiguous();
    const int64_t* next_ids = next_cpu.data_ptr<int64_t>();
    const bool* live = unfinished_cpu.data_ptr<bool>();
    std::vector<int64_t> newest(size_t(batch), -1);
    std::vector<bool> finish(size_t(batch), false);
    for (int64_t r = 0; r < batch; ++r)
      if (live[r]) {
        newest[size_t(r)] = next_ids[r];
        result.tokens[size_t(r)].push_back(next_ids[r]);
        finish[size_t(r)] = std::find(o.stop_token_ids.begin(), o.stop_token_ids.end(), next_ids[r]) !=
                            o.stop_token_ids.end();
      }
    if (on_step) {
      GenerationStep view{newest, finish};
      on_step(view);
    }
    bool any_live = false;
    std::vector<int64_t> finished_rows;
    for (int64_t r = 0; r < batch; ++r) {
      if (!live[r]) continue;
      if (finish[size_t(r)]) {
        result.stopped[size_t(r)] = true;
        finished_rows.push_back(r);
      } else {
        any_live = true;
      }
    }
    if (!finished_rows.empty())
      unfinished.index_fill_(0, torch::tensor(finished_rows, torch::kLong).to(device), false);
    if (!any_live) break;
    last_position = last_position + 1;
    in = ModelInput{next.unsqueeze(1), torch::ones({batch, 1}, torch::kLong).to(device), {}, false, last_position.unsqueeze(1)};
    seen = torch::cat({seen, next.unsqueeze(1)}, 1);
  }
  const auto ended = Clock::now();
  result.prefill_seconds = std::chrono::duration<double>(prefill_done - started).count();
  result.decode_seconds = std::chrono::duration<double>(ended - prefill_done).count();
  return result;
}

GenerationResult generate(AdaptedModel& model, const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationOptions& options, const TokenCallback& on_step) {
  for (auto& m : model.methods()) m->before_forward(*model.model());
  return generate(*model.model(), prompts, options, on_step);
}

}  // namespace peft
