// Invariants every method must satisfy (parameterised over method specs on tiny-bert):
// zero-initialised methods leave outputs unchanged; only declared tensors get gradients;
// save -> load is bit-exact; merge equals unmerged; finite-difference gradients (double precision).
#include <filesystem>

#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/methods/adapter_io.h"
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
};

std::vector<Case> cases() {
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
      {"bitfit", "bitfit", true},
      {"classifier_only", "classifier_only", true},
      {"full", "full", true},
  };
}

class MethodInvariants : public ::testing::TestWithParam<Case> {};

torch::Tensor logits(peft::AdaptedModel& m) {
  torch::NoGradGuard no_grad;
  return m.forward(tiny_input());
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("peft_methods_{}_{}", ::getpid(), name);
  fs::remove_all(dir);
  return dir;
}

}  // namespace

TEST_P(MethodInvariants, ZeroInitialisedMethodLeavesOutputsUnchanged) {
  if (!GetParam().zero_init) GTEST_SKIP() << "not zero-initialised";
  auto base = adapted("");
  auto m = adapted(GetParam().spec);
  EXPECT_TRUE(torch::equal(logits(m), logits(base)));
}

TEST_P(MethodInvariants, OnlyDeclaredTensorsReceiveGradients) {
  auto m = adapted(GetParam().spec);
  perturb(m);  // so that no gradient is zero by accident of initialisation (LoRA's B = 0)
  m.model()->train();
  torch::manual_seed(0);
  torch::Tensor loss = m.head().loss(m.forward(tiny_input()), torch::tensor({0, 2, 1}));
  loss.backward();
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
  auto m = adapted(GetParam().spec);
  perturb(m);
  const torch::Tensor want = logits(m);
  const fs::path dir = temp_dir(GetParam().name);
  peft::save_adapter(m, dir.string(), "tiny-bert");
  auto loaded = adapted("");
  peft::load_adapter(loaded, dir.string());
  EXPECT_TRUE(torch::equal(logits(loaded), want));
  EXPECT_EQ(loaded.methods().size(), m.methods().size());
  for (size_t i = 0; i < m.methods().size(); ++i) EXPECT_EQ(loaded.methods()[i]->type(), m.methods()[i]->type());
  fs::remove_all(dir);
}

TEST_P(MethodInvariants, MergeEqualsUnmerged) {
  auto m = adapted(GetParam().spec);
  if (!m.mergeable()) {
    EXPECT_THROW(m.merge(), peft::Error);
    GTEST_SKIP() << "not mergeable";
  }
  perturb(m);
  std::vector<torch::Tensor> before;
  for (auto& p : m.model()->parameters()) before.push_back(p.detach().clone());
  const torch::Tensor unmerged = logits(m);
  m.merge();
  EXPECT_TRUE(torch::allclose(logits(m), unmerged, 1e-5, 1e-5));
  m.unmerge();
  EXPECT_TRUE(torch::allclose(logits(m), unmerged, 1e-5, 1e-6));
  auto after = m.model()->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::allclose(after[i], before[i], 1e-6, 1e-6));
}

TEST_P(MethodInvariants, FiniteDifferenceGradients) {
  auto m = adapted(GetParam().spec);
  perturb(m);
  m.model()->to(torch::kDouble);
  const auto in = tiny_input();
  torch::manual_seed(3);
  const torch::Tensor weights = torch::randn({3, 3}, torch::kDouble);
  auto loss = [&] { return (m.forward(in) * weights).sum(); };

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

INSTANTIATE_TEST_SUITE_P(AllMethods, MethodInvariants, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });
