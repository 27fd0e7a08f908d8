#include "peft/methods/param_count.h"

#include <nlohmann/json.hpp>

#include "peft/methods/model_params.h"

namespace peft {

nlohmann::json ParamReport::to_json() const {
  nlohmann::json s = nlohmann::json::array();
  for (auto& site : sites) s.push_back({{"site", site.site}, {"params", site.params}});
  return {{"base", base},
          {"trainable", trainable},
          {"added", added},
          {"inference", inference},
          {"percent_of_base", percent_of_base()},
          {"sites", s}};
}

ParamReport count_parameters(AdaptedModel& model) {
  ParamReport r;
  r.base = model.base_parameter_count();
  int64_t all = 0;
  for (auto& p : model.model()->parameters()) all += p.numel();
  r.added = all - base_parameter_count(*model.model());
  for (auto& t : model.trainable_tensors()) {
    r.trainable += t.tensor.numel();
    if (r.sites.empty() || r.sites.back().site != t.site) {
      auto it = std::find_if(r.sites.begin(), r.sites.end(), [&](auto& s) { return s.site == t.site; });
      if (it == r.sites.end()) {
        r.sites.push_back({t.site, 0});
        it = r.sites.end() - 1;
      }
      it->params += t.tensor.numel();
    } else {
      r.sites.back().params += t.tensor.numel();
    }
  }
  r.inference = r.trainable;
  for (auto& m : model.methods()) {
    int64_t trained = 0;
    for (auto& t : m->tensors()) trained += t.tensor.numel();
    r.inference += m->inference_parameter_count() - trained;
  }
  return r;
}

}  // namespace peft
