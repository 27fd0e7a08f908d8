#include "peft/train/adapted.h"

#include "peft/models/decoder.h"
#include "peft/models/model_tokenizer.h"

#include <filesystem>
#include <fstream>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/sparse_diff.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"

namespace fs = std::filesystem;

namespace peft::train {

TrainableModel trainable_adapted(std::shared_ptr<AdaptedModel> model, const std::string& base_model,
                                 const nlohmann::json& task_json) {
  TrainableModel out;
  for (auto& t : model->trainable_tensors()) out.tensors.push_back({t.key, t.tensor});
  out.forward = [model](const ModelInput& in) { return model->forward(in); };
  out.set_training = [model](bool on) { model->model()->train(on); };
  out.head = model->head();
  // A method that runs the model its own way (AdaMix: consistency loss, route ensembles) takes over
  // the loss and the evaluation forward.
  for (auto& method : model->methods())
    if (method->runs_model()) {
      const HeadSpec head = out.head;
      out.loss = [model, method, head](const ModelInput& in, const torch::Tensor& labels) {
        return method->training_loss([&] { return model->forward(in); }, head, labels);
      };
      out.forward = [model, method, head](const ModelInput& in) {
        return method->predict([&] { return model->forward(in); }, head);
      };
      break;
    }
  out.save_task = [model, base_model, task_json](const std::string& dir) {
    save_adapter(*model, dir, base_model);
    io::write_file_atomically(dir + "/task.json", task_json.dump(2) + "\n");
  };
  return out;
}

LoadedTask load_task(const std::string& dir_in, const std::string& base_model, torch::Device device) {
  fs::path dir = dir_in;
  if (!fs::exists(dir / "task.json") && fs::exists(dir / "task" / "task.json")) dir /= "task";
  const fs::path task_path = dir / "task.json";
  std::ifstream in(task_path);
  if (!in) fail("{}: no task.json (expected a task folder written by `peft train`)", dir.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON ({})", task_path.string(), e.what());
  }
  LoadedTask t;
  t.task = data::TaskInfo::from_json(j, task_path.string());
  t.max_seq_length = j.value("max_seq_length", size_t{128});
  t.base_model = base_model.empty() ? j.value("base_model", std::string("all-MiniLM-L6-v2")) : base_model;
  LoadOptions load;
  load.device = device;
  std::string model_dir;
  if (t.task.causal_lm) {
    model_dir = t.base_model;
    t.model = std::make_shared<AdaptedModel>(std::static_pointer_cast<Model>(load_causal_lm(t.base_model, load)));
  } else {
    model_dir = resolve_model_dir(t.base_model).string();
    load.num_labels = t.task.num_labels();
    load.problem_type = t.task.regression() ? ProblemType::Regression : ProblemType::SingleLabel;
    t.model = std::make_shared<AdaptedModel>(load_sequence_classifier(model_dir, load));
  }
  if (fs::exists(dir / kDiffFileName))  // diff pruning: the sparse diff goes straight into the base weights
    apply_diff(*t.model->model(), read_sparse_diff((dir / kDiffFileName).string()));
  else
    load_adapter(*t.model, dir.string());
  t.model->model()->eval();
  ModelTokenizer mt = load_model_tokenizer(model_dir);
  t.tokenizer = std::move(mt.tokenizer);
  t.chat_template = std::move(mt.chat_template);
  t.trainable = trainable_adapted(t.model, t.base_model, j);
  return t;
}

}  // namespace peft::train
