#include "peft/serve/multi_task.h"

#include <filesystem>
#include <fstream>
#include <numeric>

#include "peft/data/batching.h"
#include "peft/error.h"
#include "peft/methods/adapted_model.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/model_params.h"
#include "peft/methods/sparse_diff.h"
#include "peft/models/checkpoint.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"
#include "peft/models/model_tokenizer.h"

namespace fs = std::filesystem;

namespace peft::serve {
namespace {

int64_t tensor_bytes(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// Task names travel in URLs and JSON: keep them to a safe alphabet.
void check_task_name(const std::string& name) {
  if (name.empty() || name.size() > 128) fail("task name \"{}\": expected 1 to 128 characters", name);
  if (name == "default") fail("task name \"default\" is reserved (the name of a model's single task)");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != ':')
      fail("task name \"{}\": only letters, digits and - _ . : are allowed", name);
}

nlohmann::json read_task_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail("{}: no task.json (expected a task folder written by `peft train`)", path.parent_path().string());
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a JSON object", path.string());
  return j;
}

}  // namespace

MultiTaskModel::MultiTaskModel(const std::string& base_model, Options options)
    : base_name_(base_model), options_(options) {
  LoadOptions load;
  load.device = options.device;
  load.dtype = options.dtype;
  causal_ = is_decoder_model(base_model);
  if (causal_) {
    model_dir_ = resolve_model_source(base_model).string();
    model_ = load_causal_lm(base_model, load);
    frozen_ = std::make_unique<AdaptedModel>(model_);  // generate_text's view; tasks attach to model_ itself
  } else {
    model_dir_ = resolve_model_dir(base_model).string();
    classifier_ = load_sequence_classifier(model_dir_, load);
    model_ = std::shared_ptr<Model>(classifier_.ptr());
    diffs_ = std::make_unique<DiffStore>(model_);
  }
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
  for (auto& p : model_->parameters()) base_bytes_ += tensor_bytes(p);
  ModelTokenizer mt = load_model_tokenizer(model_dir_);
  check_tokenizer_fits(mt, model_->arch().vocab_size);
  tokenizer_ = std::move(mt.tokenizer);
  chat_template_ = std::move(mt.chat_template);
  if (!causal_) base_max_length_ = sentence_max_length(model_dir_, *tokenizer_, classifier_->config());
  else base_max_length_ = static_cast<size_t>(model_->arch().max_positions);
}

void MultiTaskModel::set_eval(const std::string& task) {
  // New modules start in training mode (dropout on). Only the task's own modules are switched: a
  // pass over the whole model would cost more with every task loaded.
  const std::string prefix = task + "_";
  SiteIndex sites = model_->sites();
  auto visit = [&](torch::nn::Module& site) {
    for (auto& child : site.named_children())
      if (child.key().rfind(prefix, 0) == 0) child.value()->eval();
  };
  for (auto& [path, site] : sites.linear) visit(*site);
  for (auto& [path, site] : sites.sublayer) visit(*site);
  const auto base = model_->base_children();
  for (auto& child : model_->named_children())
    if (std::find(base.begin(), base.end(), child.key()) == base.end()) child.value()->eval();
}

const MultiTaskModel::Task& MultiTaskModel::find(const std::string& name) const {
  auto it = tasks_.find(name);
  if (it == tasks_.end()) fail("unknown task \"{}\"", name);
  return it->second;
}

bool MultiTaskModel::has_task(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return tasks_.count(name) > 0;
}

std::optional<TaskSummary> MultiTaskModel::task(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(name);
  if (it == tasks_.end()) return std::nullopt;
  return it->second.summary;
}

std::vector<TaskSummary> MultiTaskModel::tasks() const {
  std::lock_guard lock(mutex_);
  std::vector<TaskSummary> out;
  for (auto& [name, t] : tasks_) out.push_back(t.summary);
  return out;
}

TaskSummary MultiTaskModel::load_task(const std::string& name, const std::string& dir_in) {
  check_task_name(name);
  fs::path dir = dir_in;
  if (!fs::exists(dir / "task.json") && fs::exists(dir / "task" / "task.json")) dir /= "task";
  if (!fs::is_directory(dir)) fail("{}: not a task folder", dir_in);
  const nlohmann::json j = read_task_json(dir / "task.json");
  Task task;
  task.summary.name = name;
  task.summary.source = dir.string();
  task.summary.info = data::TaskInfo::from_json(j, (dir / "task.json").string());
  task.summary.max_seq_length = j.value("max_seq_length", size_t{128});
  if (task.summary.info.causal_lm != causal_)
    fail("{}: a {} task cannot run on the {} base model {}", dir.string(),
         task.summary.info.causal_lm ? "causal-LM" : "classification", causal_ ? "decoder" : "encoder", base_name_);

  std::lock_guard lock(mutex_);
  if (tasks_.count(name)) fail("task \"{}\" is already loaded (unload it first)", name);
  const fs::path diff_file = dir / kDiffFileName;
  if (fs::exists(diff_file)) {
    if (causal_) fail("{}: diff-pruned tasks are served on encoders only", dir.string());
    SparseDiff diff = read_sparse_diff(diff_file.string());
    for (auto& [param, t] : diff.head) task.head[param] = t.to(options_.device, options_.dtype);
    diff.head.clear();  // the head stays with the task, not in the shared model
    task.summary.methods = {"diff_pruning"};
    task.summary.parameters = diff.nnz();
    task.summary.bytes = diff.nnz() * int64_t(sizeof(int64_t) + sizeof(float));
    diffs_->add(name, std::move(diff));  // checks names, shapes and the base checksum
    task.diff = true;
  } else {
    NamedAdapter adapter = load_named_adapter(*model_, dir.string(), name);
    task.methods = std::move(adapter.methods);
    for (auto& [param, t] : adapter.head) task.head[param] = t;
    for (auto& m : task.methods) {
      m->finalize();  // inference form: prefix tables precomputed, AdaMix experts averaged
      task.summary.methods.push_back(m->type());
      task.summary.parameters += m->inference_parameter_count();
      for (auto& t : m->tensors()) task.summary.bytes += tensor_bytes(t.tensor);
    }
    set_eval(name);
  }
  for (auto& [param, t] : task.head) {
    task.summary.parameters += t.numel();
    task.summary.bytes += tensor_bytes(t);
  }
  if (!causal_) {
    // The head must be there and have an output per label of task.json.
    std::string problem;
    const auto out = task.head.count("classifier.out_proj.weight") ? task.head.find("classifier.out_proj.weight")
                                                                    : task.head.find("classifier.weight");
    if (out == task.head.end())
      problem = "the task carries no classifier head";
    else if (out->second.size(0) != task.summary.info.num_labels())
      problem = fmt::format("its head has {} outputs but task.json lists {} labels", out->second.size(0),
                            task.summary.info.num_labels());
    if (!problem.empty()) {
      if (!task.diff)
        for (auto it = task.methods.rbegin(); it != task.methods.rend(); ++it) (*it)->detach(*model_);
      else
        diffs_->remove(name);
      fail("{}: {}", dir.string(), problem);
    }
  }
  TaskSummary summary = task.summary;
  tasks_.emplace(name, std::move(task));
  return summary;
}

void MultiTaskModel::unload_task(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(name);
  if (it == tasks_.end()) fail("unknown task \"{}\"", name);
  if (auto busy = decoding_rows_.find(name); busy != decoding_rows_.end() && busy->second > 0)
    fail("task \"{}\" is generating for {} prompts; unload it when they finish", name, busy->second);
  if (it->second.diff) diffs_->remove(name);
  for (auto m = it->second.methods.rbegin(); m != it->second.methods.rend(); ++m) (*m)->detach(*model_);
  tasks_.erase(it);
}

size_t MultiTaskModel::decoding_rows(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = decoding_rows_.find(name);
  return it == decoding_rows_.end() ? 0 : it->second;
}

std::vector<std::vector<size_t>> MultiTaskModel::passes(const std::vector<TaskRow>& rows) const {
  std::vector<size_t> shared;
  std::map<std::string, std::vector<size_t>> per_diff;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].task.empty() || !find(rows[i].task).diff) shared.push_back(i);
    else per_diff[rows[i].task].push_back(i);
  }
  std::vector<std::vector<size_t>> out;
  if (!shared.empty()) out.push_back(std::move(shared));
  for (auto& [task, indices] : per_diff) out.push_back(std::move(indices));
  return out;
}

EncoderOutput MultiTaskModel::encode(const std::vector<TaskRow>& rows, const std::vector<size_t>& indices,
                                     size_t max_length, torch::Tensor* attention_mask) {
  // A pass is either one diff task's rows (its diff applied in place) or every other row (the base
  // weights). The diff stays applied after its pass, so batches of one diff task in a row pay nothing.
  const std::string& first = rows[indices.front()].task;
  if (!first.empty() && find(first).diff) diffs_->activate(first);
  else diffs_->deactivate();

  data::TokenizedDataset tokens;
  tokens.pad_id = tokenizer_->pad_id().value_or(0);
  tok::EncodeOptions encode;
  encode.truncation = tok::Truncation::LongestFirst;
  ForwardContext context;
  // Rows of the base model (and of diff tasks) see no adapter; naming an adapter-free route keeps
  // every adapter off those rows.
  context.routing.assign("", {});
  for (size_t k = 0; k < indices.size(); ++k) {
    const TaskRow& row = rows[indices[k]];
    const Task* task = row.task.empty() ? nullptr : &find(row.task);
    encode.max_length = max_length ? max_length : task ? task->summary.max_seq_length : base_max_length_;
    const auto& in = row.input;
    tokens.encodings.push_back(in.pair ? tokenizer_->encode(in.text, std::string_view(*in.pair), encode)
                                       : tokenizer_->encode(in.text, std::nullopt, encode));
    if (task && !task->diff) context.routing.assign(row.task, {static_cast<int64_t>(k)});
  }
  std::vector<size_t> order(indices.size());
  std::iota(order.begin(), order.end(), 0);
  data::Batch batch = data::collate(tokens, order, options_.device);
  batch.input.skip_padding_columns = true;
  if (attention_mask) *attention_mask = batch.input.attention_mask;
  return classifier_->encoder->forward(batch.input, context);
}

std::vector<Classification> MultiTaskModel::classify(const std::vector<TaskRow>& rows) {
  if (causal_) fail("classify: the base model {} is a decoder", base_name_);
  std::lock_guard lock(mutex_);
  for (auto& r : rows) {
    if (r.task.empty()) fail("classify: every input needs a task (the base model has no trained head)");
    if (find(r.task).summary.info.causal_lm) fail("classify: task \"{}\" is not a classification task", r.task);
  }
  torch::InferenceMode inference;
  std::vector<Classification> out(rows.size());
  for (const auto& pass : passes(rows)) {
    const EncoderOutput encoded = encode(rows, pass, 0, nullptr);
    // Each task's head on its rows.
    std::map<std::string, std::vector<int64_t>> by_task;
    for (size_t k = 0; k < pass.size(); ++k) by_task[rows[pass[k]].task].push_back(static_cast<int64_t>(k));
    for (auto& [name, positions] : by_task) {
      const Task& task = find(name);
      const torch::Tensor index = torch::tensor(positions, torch::kLong).to(options_.device);
      EncoderOutput mine{encoded.last_hidden_state.index_select(0, index),
                         encoded.pooled.defined() ? encoded.pooled.index_select(0, index) : torch::Tensor()};
      // Softmax in float32, then widened: the values `peft predict` prints.
      const torch::Tensor logits = classifier_->head_logits(mine, task.head).to(torch::kFloat).cpu();
      const auto& labels = task.summary.info.labels;
      const bool regression = task.summary.info.regression();
      const torch::Tensor probs = (regression ? logits : logits.softmax(1)).to(torch::kDouble);
      for (size_t k = 0; k < positions.size(); ++k) {
        Classification& c = out[pass[static_cast<size_t>(positions[k])]];
        const torch::Tensor row = probs[static_cast<int64_t>(k)].contiguous();
        const double* p = row.data_ptr<double>();
        if (regression) {
          c.score = p[0];
          continue;
        }
        c.probabilities.assign(p, p + row.size(0));
        c.label = labels[static_cast<size_t>(row.argmax().item<int64_t>())];
      }
    }
  }
  return out;
}

std::vector<std::vector<float>> MultiTaskModel::embed(const std::vector<TaskRow>& rows, bool normalize,
                                                      size_t max_length) {
  if (causal_) fail("embed: the base model {} is a decoder", base_name_);
  std::lock_guard lock(mutex_);
  for (auto& r : rows)
    if (!r.task.empty()) find(r.task);
  torch::InferenceMode inference;
  std::vector<std::vector<float>> out(rows.size());
  for (const auto& pass : passes(rows)) {
    torch::Tensor mask;
    const EncoderOutput encoded = encode(rows, pass, max_length, &mask);
    const torch::Tensor pooled = mean_pool(encoded.last_hidden_state, mask, normalize).to(torch::kFloat).cpu().contiguous();
    for (size_t k = 0; k < pass.size(); ++k) {
      const float* p = pooled[static_cast<int64_t>(k)].data_ptr<float>();
      out[pass[k]].assign(p, p + pooled.size(1));
    }
  }
  return out;
}

std::vector<GeneratedText> MultiTaskModel::generate(const std::vector<PromptRow>& rows,
                                                    const TextGenerationOptions& options, const TextCallback& on_text) {
  if (!causal_) fail("generate: the base model {} is an encoder", base_name_);
  std::lock_guard lock(mutex_);
  TextGenerationOptions o = options;
  o.generation.row_adapters.clear();
  std::vector<std::vector<int64_t>> prompts;
  for (auto& r : rows) {
    if (!r.task.empty()) find(r.task);
    // The routing names every row's adapter; base rows get an adapter-free route.
    o.generation.row_adapters.push_back(r.task);
    prompts.push_back(r.prompt);
  }
  return generate_text(*frozen_, *tokenizer_, prompts, o, on_text);
}

std::unique_ptr<MultiTaskModel::Decoding> MultiTaskModel::start_decoding() {
  if (!causal_) fail("generate: the base model {} is an encoder", base_name_);
  return std::unique_ptr<Decoding>(new Decoding(*this));
}

MultiTaskModel::Decoding::Decoding(MultiTaskModel& owner)
    : owner_(owner), session_(*owner.frozen_, *owner.tokenizer_, /*routed=*/true) {}

MultiTaskModel::Decoding::~Decoding() {
  std::lock_guard lock(owner_.mutex_);
  for (auto& [row, task] : task_of_) --owner_.decoding_rows_[task];
}

void MultiTaskModel::Decoding::release(uint64_t row) {
  auto it = task_of_.find(row);
  if (it == task_of_.end()) return;
  --owner_.decoding_rows_[it->second];
  task_of_.erase(it);
}

TextDecodeSession::OnDone MultiTaskModel::Decoding::releasing(const TextDecodeSession::OnDone& on_done) {
  return [this, &on_done](uint64_t row, GeneratedText result) {
    release(row);
    if (on_done) on_done(row, std::move(result));
  };
}

void MultiTaskModel::Decoding::add(const std::vector<TextDecodeRow>& rows, const TextDecodeSession::OnText& on_text,
                                   const TextDecodeSession::OnDone& on_done) {
  std::lock_guard lock(owner_.mutex_);
  for (auto& r : rows)
    if (!r.adapter.empty()) owner_.find(r.adapter);
  // Counted before the prefill, which may end rows at once (and release them); undone if it throws.
  std::vector<uint64_t> counted;
  for (auto& r : rows)
    if (!r.adapter.empty() && task_of_.emplace(r.id, r.adapter).second) {
      ++owner_.decoding_rows_[r.adapter];
      counted.push_back(r.id);
    }
  try {
    session_.add(rows, on_text, releasing(on_done));
  } catch (...) {
    for (uint64_t id : counted) release(id);
    throw;
  }
}

void MultiTaskModel::Decoding::step(const TextDecodeSession::OnText& on_text, const TextDecodeSession::OnDone& on_done) {
  std::lock_guard lock(owner_.mutex_);
  session_.step(on_text, releasing(on_done));
}

GeneratedText MultiTaskModel::Decoding::remove(uint64_t row) {
  std::lock_guard lock(owner_.mutex_);
  release(row);
  return session_.remove(row);
}

}  // namespace peft::serve
