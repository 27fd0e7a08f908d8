// Invariants every method must satisfy (parameterised over method specs on tiny-bert and, for every
// method that applies to decoders, on tiny GPT-2 and tiny LLaMA):
// zero-initialised methods leave outputs unchanged; only declared tensors get gradients;
// save -> load is bit-exact; merge equals unmerged; finite-difference gradients (double precision).
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/generate/generate.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/diff_pruning.h"
#include "peft/models/decoder.h"
#include "test_methods_util.h"

namespace fs = std::filesystem;
using peft::test::adapted;
using peft::test::perturb;
using peft::test::tiny_input;

namespace {

struct Case {
  std::string name;
  std::string spec;
  bool zero_init;  // starts as the base model
  std::string model = "tiny-bert";
};

std::vector<Case> encoder_cases() {
  return {
      {"lora", "lora:r=4,lora_dropout=0", true},
      {"lora_rslora_regex", R"s(lora:r=3,use_rslora=true,target_modules=".*(key|dense)",bias=lora_only,lora_dropout=0)s", true},
      {"lora_bias_all", "lora:r=2,bias=all,lora_dropout=0", true},
      {"ia3", "ia3", true},
      {"houlsby", "houlsby:r=4,init=lora", true},
      {"houlsby_near_identity", "houlsby:r=4", false},
      {"pfeiffer", "pfeiffer:r=4,activation=tanh,init=lora", true},
      {"parallel", "parallel:r=4,activation=gelu", true},
      {"scaled_parallel_attention", "scaled_parallel:r=4,placement=attention,activation=identity", true},
      {"gated", "bottleneck:r=4,composition=gated,insertion=parallel", false},
      {"prefix", "prefix:num_virtual_tokens=3,prefix_projection=false", false},
      {"prefix_projection", "prefix:num_virtual_tokens=3,encoder_hidden_size=8", false},
      {"mam", "mam:num_virtual_tokens=3,encoder_hidden_size=8,r=4", false},
      {"lora_and_ia3", "lora:r=2,lora_dropout=0+ia3", true},
      {"adamix_lora", "adamix_lora:num_experts=2,r=2,lora_dropout=0", true},
      {"bitfit", "bitfit", true},
      {"classifier_only", "classifier_only", true},
      {"full", "full", true},
  };
}

bool is_decoder(const std::string& model) { return model != "tiny-bert"; }

// The encoder cases that make sense on decoders (no classifier; LLaMA has no biases for BitFit), on each.
std::vector<Case> cases() {
  std::vector<Case> all = encoder_cases();
  const std::set<std::string> encoder_only = {"lora_rslora_regex", "classifier_only"};
  for (const std::string model : {"tiny-gpt2", "tiny-llama"})
    for (Case c : encoder_cases()) {
      if (encoder_only.count(c.name) || (model == "tiny-llama" && c.name == "bitfit")) continue;
      c.name = (model == "tiny-gpt2" ? "gpt2_" : "llama_") + c.name;
      c.model = model;
      all.push_back(c);
    }
  return all;
}

std::filesystem::path decoder_fixture(const std::string& name) { return peft::test::fixtures_dir() / "decoder" / name; }

peft::AdaptedModel adapted_on(const Case& c, const std::string& spec) {
  if (!is_decoder(c.model)) return adapted(spec, c.model);
  auto lm = peft::load_causal_lm(decoder_fixture(c.model).string());
  peft::AdaptedModel m(std::static_pointer_cast<peft::Model>(lm));
  lm->eval();
  if (!spec.empty()) m.add(peft::make_methods(peft::parse_method_spec(spec)));
  return m;
}

peft::ModelInput input_of(const Case& c) {
  if (!is_decoder(c.model)) return tiny_input();
  auto t = peft::test::read_tensors(decoder_fixture(c.model + ".expected.safetensors"));
  return {t["input_ids"], t["attention_mask"], {}};
}

torch::Tensor labels_of(const Case& c) {
  if (!is_decoder(c.model)) return torch::tensor({0, 2, 1});
  return peft::test::read_tensors(decoder_fixture(c.model + ".expected.safetensors"))["labels"];
}

class MethodInvariants : public ::testing::TestWithParam<Case> {};

torch::Tensor logits(peft::AdaptedModel& m, const Case& c) {
  torch::NoGradGuard no_grad;
  return m.forward(input_of(c));
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("peft_methods_{}_{}", ::getpid(), name);
  fs::remove_all(dir);
  return dir;
}

}  // namespace

TEST_P(MethodInvariants, ZeroInitialisedMethodLeavesOutputsUnchanged) {
  if (!GetParam().zero_init) GTEST_SKIP() << "not zero-initialised";
  auto base = adapted_on(GetParam(), "");
  auto m = adapted_on(GetParam(), GetParam().spec);
  EXPECT_TRUE(torch::equal(logits(m, GetParam()), logits(base, GetParam())));
}

TEST_P(MethodInvariants, OnlyDeclaredTensorsReceiveGradients) {
  auto m = adapted_on(GetParam(), GetParam().spec);
  perturb(m);  // so that no gradient is zero by accident of initialisation (LoRA's B = 0)
  m.model()->train();
  // Several steps: mixtures (AdaMix) route each forward through one expert, so one step reaches only some.
  for (int step = 0; step < 6; ++step) {
    peft::test::seed_all(step);
    m.head().loss(m.forward(input_of(GetParam())), labels_of(GetParam())).backward();
  }
  std::set<const void*> declared;
  for (auto& t : m.trainable_tensors()) declared.insert(t.tensor.unsafeGetTensorImpl());
  // Declared tensors are reached by backward (a defined gradient: an entry can still be exactly zero,
  // e.g. behind a ReLU that no token activates); every other tensor gets no gradient at all.
  double declared_total = 0;
  for (auto& item : m.model()->named_parameters()) {
    const auto& grad = item.value().grad();
    if (declared.count(item.value().unsafeGetTensorImpl())) {
      EXPECT_TRUE(grad.defined()) << item.key();
      if (grad.defined()) declared_total += grad.abs().sum().item<double>();
    } else {
      EXPECT_TRUE(!grad.defined() || grad.abs().sum().item<double>() == 0) << item.key();
    }
  }
  EXPECT_GT(declared_total, 0);
}

TEST_P(MethodInvariants, SaveThenLoadIsBitExact) {
  auto m = adapted_on(GetParam(), GetParam().spec);
  perturb(m);
  const torch::Tensor want = logits(m, GetParam());
  const fs::path dir = temp_dir(GetParam().name);
  peft::save_adapter(m, dir.string(), GetParam().model);
  auto loaded = adapted_on(GetParam(), "");
  peft::load_adapter(loaded, dir.string());
  EXPECT_TRUE(torch::equal(logits(loaded, GetParam()), want));
  EXPECT_EQ(loaded.methods().size(), m.methods().size());
  for (size_t i = 0; i < m.methods().size(); ++i) EXPECT_EQ(loaded.methods()[i]->type(), m.methods()[i]->type());
  fs::remove_all(dir);
}

TEST_P(MethodInvariants, MergeEqualsUnmerged) {
  auto m = adapted_on(GetParam(), GetParam().spec);
  if (!m.mergeable()) {
    EXPECT_THROW(m.merge(), peft::Error);
    GTEST_SKIP() << "not mergeable";
  }
  perturb(m);
  std::vector<torch::Tensor> before;
  for (auto& p : m.model()->parameters()) before.push_back(p.detach().clone());
  // Decoders: padding query rows are fully masked and mean nothing; compare the real positions.
  const torch::Tensor keep = is_decoder(GetParam().model)
                                 ? input_of(GetParam()).attention_mask.unsqueeze(-1).to(torch::kBool)
                                 : torch::ones({1}, torch::kBool);
  const torch::Tensor unmerged = logits(m, GetParam()).masked_fill(keep.logical_not(), 0);
  // Float rounding scales with the logits (decoder fixtures' are ~10x tiny-bert's: init std 0.3-0.5).
  const double atol = 1e-5 * std::max(1.0, unmerged.abs().max().item<double>());
  m.merge();
  const torch::Tensor merged = logits(m, GetParam()).masked_fill(keep.logical_not(), 0);
  EXPECT_TRUE(torch::allclose(merged, unmerged, 1e-5, atol)) << (merged - unmerged).abs().max().item<double>();
  m.unmerge();
  const torch::Tensor again = logits(m, GetParam()).masked_fill(keep.logical_not(), 0);
  EXPECT_TRUE(torch::allclose(again, unmerged, 1e-5, atol)) << (again - unmerged).abs().max().item<double>();
  auto after = m.model()->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::allclose(after[i], before[i], 1e-6, 1e-6));
}

TEST_P(MethodInvariants, FiniteDifferenceGradients) {
  auto m = adapted_on(GetParam(), GetParam().spec);
  perturb(m);
  m.model()->to(torch::kDouble);
  const auto in = input_of(GetParam());
  torch::manual_seed(3);
  const torch::Tensor weights = torch::randn(logits(m, GetParam()).sizes(), torch::kDouble);
  // Padding positions of a decoder's output mean nothing (fully masked queries): leave them out.
  const torch::Tensor valid = is_decoder(GetParam().model) ? in.attention_mask.unsqueeze(-1).to(torch::kDouble)
                                                           : torch::ones({1}, torch::kDouble);
  auto loss = [&] { return (m.forward(in) * weights * valid).sum(); };

  auto tensors = m.trainable_tensors();
  for (auto& p : m.model()->parameters()) p.mutable_grad() = torch::Tensor();
  loss().backward();
  int checked = 0;
  for (auto& t : tensors) {
    if (t.site == "classifier" && tensors.size() > 2) continue;  // the head is linear; check the method's tensors
    torch::Tensor flat = t.tensor.detach().view(-1);  // shares storage with the parameter
    torch::Tensor grad = t.tensor.grad().view(-1);
    for (int64_t k : {int64_t(0), flat.numel() / 2, flat.numel() - 1}) {
      const double eps = 1e-6, saved = flat[k].item<double>();
      double up, down;
      {
        torch::NoGradGuard no_grad;
        flat[k] = saved + eps;
        up = loss().item<double>();
        flat[k] = saved - eps;
        down = loss().item<double>();
        flat[k] = saved;
      }
      const double numeric = (up - down) / (2 * eps), analytic = grad[k].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::abs(numeric)) << t.key << "[" << k << "]";
    }
    if (++checked >= 6) break;
  }
  EXPECT_GT(checked, 0);
}

// Decoders: every method acts during KV-cached generation as in a full forward (greedy tokens equal a loop
// that recomputes the whole sequence each step), on a left-padded batch.
TEST_P(MethodInvariants, CachedGenerationEqualsFullRecompute) {
  if (!is_decoder(GetParam().model)) GTEST_SKIP() << "encoder";
  auto m = adapted_on(GetParam(), GetParam().spec);
  perturb(m);
  const std::vector<std::vector<int64_t>> prompts = {{5, 17, 42, 8}, {9, 3}};
  peft::GenerationOptions o;
  o.max_new_tokens = 6;
  const auto cached = peft::generate(m, prompts, o);
  torch::NoGradGuard no_grad;
  for (size_t r = 0; r < prompts.size(); ++r) {
    std::vector<int64_t> seq = prompts[r], fresh;
    for (int step = 0; step < 6; ++step) {
      peft::ModelInput in;
      in.input_ids = torch::tensor(seq).unsqueeze(0);
      const int64_t next = m.forward(in)[0][-1].argmax().item<int64_t>();
      fresh.push_back(next);
      seq.push_back(next);
    }
    EXPECT_EQ(cached.tokens[r], fresh) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(AllMethods, MethodInvariants, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// Diff pruning keeps its tensors outside the module tree (they replace weights before each forward), so
// the generic gradient check above cannot see them: check on the decoders that the task loss plus the L0
// penalty reaches every diff vector and gate, and that zero diffs leave the base model's logits.
TEST(DiffPruningOnDecoders, LossReachesEveryDiffAndGateAndZeroDiffIsTheBase) {
  for (const std::string model : {"tiny-gpt2", "tiny-llama"}) {
    Case c{"diff_pruning", "diff_pruning", true, model};
    auto base = adapted_on(c, "");
    auto m = adapted_on(c, "diff_pruning");
    EXPECT_TRUE(torch::equal(logits(m, c), logits(base, c))) << model;
    m.model()->train();
    torch::manual_seed(0);
    const torch::Tensor loss = m.head().loss(m.forward(input_of(c)), labels_of(c));
    auto method = std::dynamic_pointer_cast<peft::DiffPruning>(m.methods().at(0));
    ASSERT_TRUE(method) << model;
    (loss + 1e-3 * method->penalty()).backward();
    int64_t tensors = 0;
    for (auto& t : m.trainable_tensors()) {
      ++tensors;
      ASSERT_TRUE(t.tensor.grad().defined()) << model << " " << t.key;
      EXPECT_GT(t.tensor.grad().abs().sum().item<double>(), 0) << model << " " << t.key;
    }
    EXPECT_GT(tensors, 10) << model;
  }
}
