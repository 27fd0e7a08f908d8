#include "tokenize/post_process.h"

#include <algorithm>

#include "peft/error.h"

namespace peft::tok {

TemplateProcessor::TemplateProcessor(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair)
    : single_(std::move(single)), pair_(std::move(pair)) {}

TemplateProcessor TemplateProcessor::bert(int64_t cls_id, int64_t sep_id) {
  using P = TemplatePiece;
  return TemplateProcessor(
      {{P::Special, {cls_id}, 0}, {P::SequenceA, {}, 0}, {P::Special, {sep_id}, 0}},
      {{P::Special, {cls_id}, 0}, {P::SequenceA, {}, 0}, {P::Special, {sep_id}, 0},
       {P::SequenceB, {}, 1}, {P::Special, {sep_id}, 1}});
}

size_t TemplateProcessor::added_tokens(bool pair) const {
  size_t n = 0;
  for (const TemplatePiece& p : pair ? pair_ : single_)
    if (p.kind == TemplatePiece::Special) n += p.ids.size();
  return n;
}

Encoding TemplateProcessor::apply(const std::vector<int64_t>& a, const std::vector<int64_t>* b,
                                  bool add_special_tokens) const {
  Encoding e;
  const auto append = [&e](const std::vector<int64_t>& ids, int64_t type_id) {
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    e.type_ids.insert(e.type_ids.end(), ids.size(), type_id);
  };
  const std::vector<TemplatePiece>& pieces = b != nullptr ? pair_ : single_;
  if (pieces.empty()) {  // no template: sequences as they are
    append(a, 0);
    if (b != nullptr) append(*b, 1);
  }
  for (const TemplatePiece& p : pieces) {
    if (p.kind == TemplatePiece::SequenceA) append(a, p.type_id);
    else if (p.kind == TemplatePiece::SequenceB) append(*b, p.type_id);
    else if (add_special_tokens) append(p.ids, p.type_id);
  }
  e.attention_mask.assign(e.ids.size(), 1);
  return e;
}

std::optional<TruncationPlan> resolve_truncation(const EncodeOptions& options,
                                                 std::optional<size_t> model_max_length) {
  Truncation strategy = options.truncation.value_or(
      options.max_length && options.padding == Padding::None ? Truncation::LongestFirst
                                                             : Truncation::None);
  if (strategy == Truncation::None) return std::nullopt;
  std::optional<size_t> max_length = options.max_length ? options.max_length : model_max_length;
  if (!max_length) return std::nullopt;
  return TruncationPlan{strategy, *max_length};
}

void truncate_sequences(std::vector<int64_t>& a, std::vector<int64_t>* b, Truncation strategy,
                        size_t budget) {
  const auto cut = [](std::vector<int64_t>& v, size_t n) {
    if (v.size() > n) v.resize(n);
  };
  if (budget == 0) {  // checked before the strategy, so even OnlySecond without a pair is fine
    a.clear();
    if (b != nullptr) b->clear();
    return;
  }
  const size_t total = a.size() + (b != nullptr ? b->size() : 0);
  if (total <= budget) return;
  const size_t to_remove = total - budget;
  switch (strategy) {
    case Truncation::None:
      return;
    case Truncation::LongestFirst: {
      if (b == nullptr) {
        cut(a, budget);
        return;
      }
      // Not one token at a time: the shorter keeps its length if the longer can take the rest,
      // else both get half, the odd token going to the longer (to the second on a tie).
      size_t n1 = a.size(), n2 = b->size();
      const bool swapped = n1 > n2;
      if (swapped) std::swap(n1, n2);
      n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
      if (n1 + n2 > budget) {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
      }
      if (swapped) std::swap(n1, n2);
      cut(a, n1);
      cut(*b, n2);
      return;
    }
    case Truncation::OnlyFirst:
    case Truncation::OnlySecond: {
      const bool first = strategy == Truncation::OnlyFirst;
      if (!first && b == nullptr)
        fail("truncation only_second: no second sequence was given (use longest_first or only_first)");
      std::vector<int64_t>& target = first ? a : *b;
      // Strictly greater: the truncated sequence may not become empty.
      if (target.size() <= to_remove)
        fail("truncation {}: the {} sequence has {} tokens, too short to remove the {} needed to fit "
             "max_length (use longest_first)",
             first ? "only_first" : "only_second", first ? "first" : "second", target.size(), to_remove);
      target.resize(target.size() - to_remove);
      return;
    }
  }
}

Encoding post_process(std::vector<int64_t> a, std::optional<std::vector<int64_t>> b,
                      const EncodeOptions& options, const TemplateProcessor& processor,
                      std::optional<size_t> model_max_length) {
  std::vector<int64_t>* pair = b ? &*b : nullptr;
  if (auto plan = resolve_truncation(options, model_max_length)) {
    const size_t added = options.add_special_tokens ? processor.added_tokens(pair != nullptr) : 0;
    // Below the special tokens' count nothing is truncated: `tokenizers` computes
    // max_length - added in unsigned arithmetic, which wraps to a huge budget.
    if (plan->max_length >= added)
      truncate_sequences(a, pair, plan->strategy, plan->max_length - added);
  }
  return processor.apply(a, pair, options.add_special_tokens);
}

}  // namespace peft::tok
