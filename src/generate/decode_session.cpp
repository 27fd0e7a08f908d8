#include "peft/generate/decode_session.h"

#include <algorithm>
#include <map>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "peft/error.h"

namespace peft {

// Options and random generator of the rows of one add() that share an options object.
struct DecodeSession::Sampler {
  std::shared_ptr<const GenerationOptions> options;
  std::optional<torch::Generator> generator;  // drawn on the CPU, so a seed means the same on CUDA
  // Greedy without a repetition penalty: the logits' argmax, batched over every such row.
  bool plain_greedy() const { return !options->do_sample && options->repetition_penalty == 1.0; }
};

namespace {

void check_options(const GenerationOptions& o) {
  if (o.max_new_tokens < 0) fail("generate: max_new_tokens must be >= 0");
  if (o.do_sample && !(o.temperature > 0)) fail("generate: temperature must be > 0 when sampling");
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("generate: top_p must be in (0, 1]");
}

bool is_stop(const GenerationOptions& o, int64_t token) {
  return std::find(o.stop_token_ids.begin(), o.stop_token_ids.end(), token) != o.stop_token_ids.end();
}

}  // namespace

DecodeSession::DecodeSession(Model& model, bool routed) : model_(model), routed_(routed) {
  if (!model.arch().causal) fail("generate: the model is not a causal language model");
  context_.last_position_only = true;
}

std::vector<int64_t> DecodeSession::virtual_tokens_per_row(const RowRouting& routing, int64_t batch) const {
  // Sites normally share one prefix table; take the largest count if they do not.
  std::vector<int64_t> out(size_t(batch), 0);
  for (auto& site : model_.sites().attention_kv_sites()) {
    if (site->empty()) continue;
    const std::vector<int64_t> mine = routed_ ? site->virtual_tokens_per_row(routing, batch)
                                              : std::vector<int64_t>(size_t(batch), site->virtual_tokens());
    for (size_t r = 0; r < out.size(); ++r) out[r] = std::max(out[r], mine[r]);
  }
  return out;
}

RowRouting DecodeSession::routing_of(const std::vector<const Row*>& rows) const {
  RowRouting routing;
  if (!routed_) return routing;
  std::map<std::string, std::vector<int64_t>> by_adapter;
  for (size_t r = 0; r < rows.size(); ++r)
    if (!rows[r]->adapter.empty()) by_adapter[rows[r]->adapter].push_back(int64_t(r));
  routing.assign("", {});  // routed, even if every row is a base-model row
  for (auto& [adapter, members] : by_adapter) routing.assign(adapter, members);
  return routing;
}

std::vector<int64_t> DecodeSession::choose(const torch::Tensor& logits, const std::vector<Row*>& rows) const {
  std::vector<int64_t> out(rows.size(), -1);
  const auto device = logits.device();
  auto pick = [&](const std::vector<size_t>& members, const torch::Tensor& chosen) {
    const torch::Tensor ids = chosen.cpu().contiguous();
    for (size_t i = 0; i < members.size(); ++i) out[members[i]] = ids.data_ptr<int64_t>()[i];
  };
  auto subset = [&](const std::vector<size_t>& members) {
    if (members.size() == rows.size()) return logits;
    std::vector<int64_t> index(members.begin(), members.end());
    return logits.index_select(0, torch::tensor(index, torch::kLong).to(device));
  };
  std::vector<size_t> greedy;
  std::vector<std::pair<Sampler*, std::vector<size_t>>> groups;  // in order of first appearance
  for (size_t r = 0; r < rows.size(); ++r) {
    Sampler* s = rows[r]->sampler.get();
    if (s->plain_greedy()) {
      greedy.push_back(r);
      continue;
    }
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == s; });
    if (it == groups.end()) groups.push_back({s, {r}});
    else it->second.push_back(r);
  }
  if (!greedy.empty()) pick(greedy, subset(greedy).argmax(1));
  for (auto& [sampler, members] : groups) {
    const GenerationOptions& o = *sampler->options;
    torch::Tensor seen = torch::zeros({int64_t(members.size()), 0}, torch::kLong);
    if (o.repetition_penalty != 1.0) {
      // Rows have seen different counts; repeat a row's first id to fill (the penalty is per distinct id).
      size_t longest = 0;
      for (size_t m : members) longest = std::max(longest, rows[m]->seen.size());
      seen = torch::empty({int64_t(members.size()), int64_t(longest)}, torch::kLong);
      for (size_t i = 0; i < members.size(); ++i) {
        const auto& ids = rows[members[i]]->seen;
        seen[int64_t(i)].fill_(ids.front());
        seen[int64_t(i)].narrow(0, 0, int64_t(ids.size())).copy_(torch::tensor(ids, torch::kLong));
      }
    }
    torch::Tensor scores = process_logits(subset(members), seen.to(device), o);
    if (!o.do_sample) {
      pick(members, scores.argmax(1));
      continue;
    }
    const torch::Tensor probs = scores.softmax(1).cpu();
    auto& gen = sampler->generator;
    pick(members, (gen ? probs.multinomial(1, false, *gen) : probs.multinomial(1)).squeeze(1));
  }
  return out;
}

std::vector<DecodedToken> DecodeSession::advance(std::vector<Row>& rows, const std::vector<int64_t>& tokens,
                                                 std::vector<bool>& ends) {
  std::vector<DecodedToken> out;
  ends.assign(rows.size(), false);
  for (size_t r = 0; r < rows.size(); ++r) {
    Row& row = rows[r];
    DecodedToken t{row.id, tokens[r], false, false};
    row.seen.push_back(t.token);
    row.next_token = t.token;
    --row.budget;
    t.stopped = is_stop(*row.sampler->options, t.token);
    t.last = t.stopped || row.budget <= 0;
    ends[r] = t.last;
    out.push_back(t);
  }
  return out;
}

std::vector<DecodedToken> DecodeSession::add(const std::vector<DecodeRow>& requests) {
  if (requests.empty()) fail("generate: no prompts");
  const ModelArch& arch = model_.arch();
  std::set<uint64_t> ids;
  for (auto& r : rows_) ids.insert(r.id);
  std::map<const GenerationOptions*, std::shared_ptr<Sampler>> samplers;
  std::vector<Row> rows;
  for (auto& q : requests) {
    if (!q.options) fail("generate: a row without generation options");
    if (q.prompt.empty()) fail("generate: an empty prompt (a prompt needs at least one token)");
    if (!routed_ && !q.adapter.empty()) fail("generate: a row names adapter \"{}\" but rows are not routed", q.adapter);
    if (!ids.insert(q.id).second) fail("generate: row {} is already decoding", q.id);
    auto& sampler = samplers[q.options.get()];
    if (!sampler) {
      check_options(*q.options);
      sampler = std::make_shared<Sampler>();
      sampler->options = q.options;
      if (q.options->seed) sampler->generator = at::detail::createCPUGenerator(*q.options->seed);
    }
    Row row;
    row.id = q.id;
    row.adapter = q.adapter;
    row.sampler = sampler;
    row.seen = q.prompt;
    rows.push_back(std::move(row));
  }

  // Each row's budget: its max_new_tokens, cut so that its positions stay within the context.
  std::vector<const Row*> all;
  for (auto& r : rows) all.push_back(&r);
  const std::vector<int64_t> virtual_tokens = virtual_tokens_per_row(routing_of(all), int64_t(rows.size()));
  std::vector<DecodedToken> out(rows.size());
  std::vector<size_t> prefill;  // rows with room for a token
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t used = virtual_tokens[r] + int64_t(rows[r].seen.size());
    if (arch.max_positions > 0 && used > arch.max_positions)
      fail("generate: a prompt of {} tokens{} does not fit the model's context of {} positions (shorten it or truncate "
           "it on the left)",
           rows[r].seen.size(), virtual_tokens[r] > 0 ? fmt::format(" after {} virtual tokens", virtual_tokens[r]) : "",
           arch.max_positions);
    rows[r].budget = rows[r].sampler->options->max_new_tokens;
    if (arch.max_positions > 0) rows[r].budget = std::min(rows[r].budget, arch.max_positions - used);
    out[r] = DecodedToken{rows[r].id, -1, true, false};
    if (rows[r].budget > 0) prefill.push_back(r);
  }
  if (prefill.empty()) return out;

  std::vector<Row> batch;
  std::vector<const Row*> members;
  size_t longest = 0;
  for (size_t r : prefill) {
    batch.push_back(rows[r]);
    longest = std::max(longest, rows[r].seen.size());
  }
  for (auto& r : batch) members.push_back(&r);
  const int64_t n = int64_t(batch.size()), length = int64_t(longest);
  // Left padding: every row's last prompt token sits in the last column.
  torch::Tensor input = torch::empty({n, length}, torch::kLong), mask = torch::zeros({n, length}, torch::kLong);
  int64_t prefix = 0;  // virtual positions the prefill may prepend, at most
  for (int64_t r = 0; r < n; ++r) {
    const auto& p = batch[size_t(r)].seen;
    const int64_t start = length - int64_t(p.size());
    input[r].fill_(batch[size_t(r)].sampler->options->pad_token_id);
    input[r].narrow(0, start, int64_t(p.size())).copy_(torch::tensor(p, torch::kLong));
    mask[r].narrow(0, start, int64_t(p.size())).fill_(1);
    prefix += virtual_tokens[prefill[size_t(r)]];
  }
  const torch::Tensor ref = model_.reference_weight();
  input = input.to(ref.device());
  mask = mask.to(ref.device());
  int64_t most_virtual = 0;
  for (auto& site : model_.sites().attention_kv_sites()) most_virtual = std::max(most_virtual, site->virtual_tokens());
  prefix = std::min(prefix, most_virtual);

  KVCache cache(arch.num_layers, n, arch.num_kv_heads, prefix + length, arch.head_dim, ref.options());
  ForwardContext context;
  context.cache = &cache;
  context.last_position_only = true;
  context.routing = routing_of(members);
  torch::NoGradGuard no_grad;
  // HF's position ids: the count of real tokens before each one; padding gets 1.
  const torch::Tensor positions = (mask.cumsum(1) - 1).masked_fill(mask.eq(0), 1);
  const torch::Tensor logits = model_.forward(ModelInput{input, mask, {}, false, positions}, context).select(1, 0);
  std::vector<Row*> choosing;
  for (auto& r : batch) choosing.push_back(&r);
  const std::vector<int64_t> first = choose(logits, choosing);
  std::vector<bool> ends;
  const std::vector<DecodedToken> tokens = advance(batch, first, ends);
  for (size_t i = 0; i < prefill.size(); ++i) out[prefill[i]] = tokens[i];

  // Join the rows that go on; from here on nothing throws but allocation.
  std::vector<int64_t> staying;
  int64_t spare = 0;
  for (auto& r : rows_) spare = std::max(spare, r.budget);
  for (size_t i = 0; i < batch.size(); ++i)
    if (!ends[i]) {
      staying.push_back(int64_t(i));
      spare = std::max(spare, batch[i].budget);
    }
  if (staying.empty()) return out;
  if (int64_t(staying.size()) < n) cache.select_rows(torch::tensor(staying, torch::kLong));
  if (cache_) {
    cache_->join(cache, spare);
  } else {
    cache.reserve(spare);
    cache_.emplace(std::move(cache));
  }
  for (int64_t i : staying) rows_.push_back(std::move(batch[size_t(i)]));
  std::vector<const Row*> running;
  for (auto& r : rows_) running.push_back(&r);
  context_.routing = routing_of(running);
  context_.cache = &*cache_;
  return out;
}

std::vector<DecodedToken> DecodeSession::step() {
  if (rows_.empty()) return {};
  const int64_t n = int64_t(rows_.size());
  std::vector<int64_t> tokens, positions;
  int64_t spare = 0;
  for (auto& r : rows_) {
    tokens.push_back(r.next_token);
    positions.push_back(int64_t(r.seen.size()) - 1);  // real tokens before the newest one
    spare = std::max(spare, r.budget);
  }
  cache_->reserve(spare);
  const auto device = model_.reference_weight().device();
  ModelInput in{torch::tensor(tokens, torch::kLong).view({n, 1}).to(device),
                torch::ones({n, 1}, torch::kLong).to(device), {}, false,
                torch::tensor(positions, torch::kLong).view({n, 1}).to(device)};
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model_.forward(in, context_).select(1, 0);
  std::vector<Row*> choosing;
  for (auto& r : rows_) choosing.push_back(&r);
  const std::vector<int64_t> next = choose(logits, choosing);
  std::vector<bool> ends;
  std::vector<DecodedToken> out = advance(rows_, next, ends);
  keep_rows(ends);
  return out;
}

void DecodeSession::remove(uint64_t row) {
  std::vector<bool> leaving(rows_.size(), false);
  bool any = false;
  for (size_t r = 0; r < rows_.size(); ++r)
    if (rows_[r].id == row) leaving[r] = any = true;
  if (any) keep_rows(leaving);
}

void DecodeSession::keep_rows(const std::vector<bool>& leaving) {
  std::vector<int64_t> keep;
  for (size_t r = 0; r < rows_.size(); ++r)
    if (!leaving[r]) keep.push_back(int64_t(r));
  if (keep.size() == rows_.size()) return;
  std::vector<Row> kept;
  for (int64_t r : keep) kept.push_back(std::move(rows_[size_t(r)]));
  rows_ = std::move(kept);
  if (rows_.empty()) {
    context_.cache = nullptr;
    cache_.reset();
    context_.routing = RowRouting();
    return;
  }
  cache_->select_rows(torch::tensor(keep, torch::kLong));
  std::vector<const Row*> running;
  for (auto& r : rows_) running.push_back(&r);
  context_.routing = routing_of(running);
}

}  // namespace peft
