// Builds a task's model input on the host, for engines whose instances are all CPU ones: the
// preprocess pool calls it (ModelEngine::PrepareInput) so that the to-float conversion, resize
// and normalisation of each image run there, in parallel across images, and the instances'
// threads only stack inputs and run the model.
//
// Runs on the calling thread with one intra-op thread (set once per thread: the pool's
// parallelism is across images) under InferenceMode. Sets task.input (image_tensor.h,
// WriteModelInput) and releases task.image. ResourceExhausted (reason out_of_memory) when an
// allocation fails, Internal for any other LibTorch error. Thread-safe.
#ifndef DINOV3_SERVER_ENGINE_HOST_INPUT_H_
#define DINOV3_SERVER_ENGINE_HOST_INPUT_H_

#include "absl/status/status.h"
#include "server/batching/task.h"
#include "server/engine/image_tensor.h"

namespace dinov3::engine {

absl::Status PrepareHostInput(batching::EmbedTask& task, const Normalization& norm);

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_HOST_INPUT_H_
