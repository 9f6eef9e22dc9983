// What a served model is, as the front doors describe it (dinov3.v1 ModelInfo, the Open Inference
// Protocol's model metadata, OpenAI's model list): the export's metadata, the limits its
// requests are checked against, the devices it runs on and the CPU. Protocol-free plain data;
// each front door maps it onto its own message.
#ifndef DINOV3_SERVER_REGISTRY_MODEL_DESCRIPTION_H_
#define DINOV3_SERVER_REGISTRY_MODEL_DESCRIPTION_H_

#include <string>

#include "model/runtime/model_metadata.h"
#include "server/common/cpu_features.h"
#include "server/pipeline/request_limits.h"

namespace dinov3::registry {

struct ModelDescription {
  std::string name;  // the served name
  model::ModelMetadata metadata;
  pipeline::RequestLimits limits;  // with the model's shape and geometry
  std::string device;              // the instances' devices (ModelEngine::Describe)
  CpuFeatures cpu;
};

}  // namespace dinov3::registry

#endif  // DINOV3_SERVER_REGISTRY_MODEL_DESCRIPTION_H_
