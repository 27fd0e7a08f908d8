#pragma once
// Many tasks on one frozen base model in memory (seed 000's motivation: one shared base, a small
// per-task part). Tasks are task folders or run folders written by `peft train` (adapters of any
// method, PEFT adapter folders, diff-pruned tasks), loaded and unloaded by name at run time.
//
// A batch may mix tasks: each row names its task (or "" for the base model). Adapter tasks sit in
// the sites' banks under their task name and one forward routes every row to its own modules
// (rows gathered per task at each site, see peft/models/sites.h); each classification task keeps its
// head outside the shared model. Diff-pruned tasks change the base weights themselves, so their rows
// run as one forward per diff task, with the diff applied in place and reverted right after
// (DiffStore: cost proportional to the diff's non-zeros). Each row's output equals running its
// task alone.
//
// Thread safety: every public call takes the model's lock; calls from several threads serialize.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "peft/data/task.h"
#include "peft/generate/text_generation.h"
#include "peft/methods/adapted_model.h"
#include "peft/methods/diff_store.h"
#include "peft/methods/method.h"
#include "peft/models/encoder.h"
#include "peft/serve/fair_mutex.h"
#include "peft/serve/text_input.h"
#include "peft/tokenize/tokenizer.h"

namespace peft::serve {

struct TaskSummary {
  std::string name;
  std::string source;                // the folder it was loaded from
  std::vector<std::string> methods;  // method types, or {"diff_pruning"}
  data::TaskInfo info;               // labels, metrics, causal_lm
  size_t max_seq_length = 0;         // inputs are truncated to it
  int64_t parameters = 0;            // the task's own tensors (methods + head, or the diff's non-zeros + head)
  int64_t bytes = 0;                 // memory those tensors take
};

// One row of a mixed batch: its task ("" for the base model) and its input.
struct TaskRow {
  std::string task;
  TextInput input;
};

struct Classification {
  std::string label;                  // the most probable label (empty for regression)
  std::vector<double> probabilities;  // softmax, in the task's label order (empty for regression)
  std::optional<double> score;        // regression
};

// One prompt of a mixed generation batch: its task ("" for the base model) and its token ids.
struct PromptRow {
  std::string task;
  std::vector<int64_t> prompt;
};

class MultiTaskModel {
 public:
  class Decoding;
  struct Options {
    torch::Device device = torch::kCPU;
    torch::ScalarType dtype = torch::kFloat;  // decoders may run in bfloat16
  };
  // `base_model`: a model folder, installed model package or GGUF file (as `peft info` takes).
  explicit MultiTaskModel(const std::string& base_model, Options options);
  MultiTaskModel(const std::string& base_model) : MultiTaskModel(base_model, Options{}) {}

  const std::string& base_name() const { return base_name_; }  // as given
  bool causal() const { return causal_; }
  const ModelArch& arch() const { return model_->arch(); }
  const tok::Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::string& chat_template() const { return chat_template_; }
  int64_t base_bytes() const { return base_bytes_; }

  // Loads TASK_DIR (or RUN_DIR/task) as `name`. Throws peft::Error, leaving the model as it was, when
  // the name is taken or invalid, the folder is damaged, or it was made for another base model.
  TaskSummary load_task(const std::string& name, const std::string& dir);
  // Throws if there is no such task or it still has prompts decoding (see decoding_rows).
  void unload_task(const std::string& name);
  bool has_task(const std::string& name) const;
  size_t decoding_rows(const std::string& name) const;  // prompts of this task in running decoding sessions
  std::optional<TaskSummary> task(const std::string& name) const;
  std::vector<TaskSummary> tasks() const;  // by name

  // Encoders: class probabilities (or scores) of classification tasks; every row's task must be one.
  std::vector<Classification> classify(const std::vector<TaskRow>& rows);
  // Encoders: sentence embeddings (mean pooling over the mask, L2-normalised unless `normalize` is
  // false) under each row's task, as `peft embed` computes them for the base model. `max_length` 0:
  // the task's max_seq_length, or the base model's limit for base rows.
  std::vector<std::vector<float>> embed(const std::vector<TaskRow>& rows, bool normalize = true, size_t max_length = 0);
  // Decoders: text continuations of each row under its task, in one batch.
  std::vector<GeneratedText> generate(const std::vector<PromptRow>& rows, const TextGenerationOptions& options,
                                      const TextCallback& on_text = {});
  // Decoders: continuous batching (peft serve). Prompts join and leave the returned decoding batch
  // between steps; each join and step holds the model for one forward, so tasks load in between. A
  // task with rows in a decoding batch cannot be unloaded until they end.
  std::unique_ptr<Decoding> start_decoding();
  // Inputs are truncated to this many tokens for base rows (the model's or sentence-transformers' limit).
  size_t base_max_length() const { return base_max_length_; }

 private:
  struct Task {
    TaskSummary summary;
    std::vector<std::shared_ptr<Method>> methods;  // adapter tasks, attached under the task's name
    std::map<std::string, torch::Tensor> head;     // classification heads (HF names)
    bool diff = false;                             // a diff-pruned task, held by diffs_
  };
  const Task& find(const std::string& name) const;
  void set_eval(const std::string& task);
  // Splits rows into forward passes: one for all adapter and base rows, one per diff task.
  std::vector<std::vector<size_t>> passes(const std::vector<TaskRow>& rows) const;
  // The encoder's output for rows[indices], each row routed to its task.
  EncoderOutput encode(const std::vector<TaskRow>& rows, const std::vector<size_t>& indices, size_t max_length,
                       torch::Tensor* attention_mask);

  std::string base_name_, model_dir_;
  Options options_;
  bool causal_ = false;
  std::shared_ptr<Model> model_;
  SequenceClassifier classifier_{nullptr};  // encoders: the shared encoder (its own head is unused)
  std::unique_ptr<AdaptedModel> frozen_;      // decoders: the model as generate_text takes it
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  std::string chat_template_;
  std::unique_ptr<DiffStore> diffs_;
  std::map<std::string, Task> tasks_;
  std::map<std::string, size_t> decoding_rows_;  // per task: rows in decoding batches
  int64_t base_bytes_ = 0;
  size_t base_max_length_ = 512;
  mutable FairMutex mutex_;  // the model and the task table; granted in order (see fair_mutex.h)
};

// A continuous decoding batch on a MultiTaskModel's decoder (see start_decoding); one thread uses it.
class MultiTaskModel::Decoding {
 public:
  ~Decoding();
  // Prefills `rows` (their `adapter` is the task, "" for the base model) and joins them; see
  // TextDecodeSession::add. Unknown tasks throw before anything runs.
  void add(const std::vector<TextDecodeRow>& rows, const TextDecodeSession::OnText& on_text,
           const TextDecodeSession::OnDone& on_done);
  void step(const TextDecodeSession::OnText& on_text, const TextDecodeSession::OnDone& on_done);
  GeneratedText remove(uint64_t row);
  size_t size() const { return session_.size(); }
  bool empty() const { return session_.empty(); }

 private:
  friend class MultiTaskModel;
  explicit Decoding(MultiTaskModel& owner);
  // Reports on_done and releases the row's task (under the owner's lock).
  TextDecodeSession::OnDone releasing(const TextDecodeSession::OnDone& on_done);
  void release(uint64_t row);

  MultiTaskModel& owner_;
  TextDecodeSession session_;
  std::map<uint64_t, std::string> task_of_;  // running rows with a task
};

}  // namespace peft::serve
