#include "server/service/dense_reactor.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/pipeline/request_footprint.h"
#include "server/registry/model_registry.h"
#include "server/service/admitted_call.h"
#include "server/service/call_context.h"
#include "server/service/proto_conversion.h"
#include "server/service/request_recorder.h"

namespace dinov3::service {
namespace {

constexpr int64_t kDefaultChunkBytes = 1 << 20;

class DenseReactor : public grpc::ServerWriteReactor<v1::DenseChunk> {
 public:
  DenseReactor(grpc::CallbackServerContext* context, const v1::EmbedDenseRequest& request,
               RequestRecorder recorder)
      : context_(context),
        request_id_(request.request_id()),
        rows_per_chunk_(request.rows_per_chunk()),
        recorder_(std::move(recorder)) {}

  void Refuse(const absl::Status& status) { FinishCall(status); }

  void Start(const v1::EmbedDenseRequest& request, std::shared_ptr<registry::ServedModel> model,
             const CallEnvironment& env) {
    model_ = std::move(model);  // held until the pipeline answers (OnEmbedded)
    model_name_ = model_->name();
    // The request outlives the call's Finish, which comes after the pipeline's answer.
    std::shared_ptr<const v1::EmbedDenseRequest> borrowed(&request,
                                                          [](const v1::EmbedDenseRequest*) {});
    pipeline::EmbedPipeline& model_pipeline = model_->pipeline();
    absl::StatusOr<pipeline::EmbedJob> job =
        ToEmbedJob(std::move(borrowed), model_pipeline.limits());
    absl::Status admitted = job.status();
    if (admitted.ok()) {
      admitted = AdmitAndRun(model_pipeline, *std::move(job), context_, env, "EmbedDense", hold_,
                             [this](absl::Status status, pipeline::EmbedResult result) {
                               OnEmbedded(std::move(status), std::move(result));
                             });
    }
    if (!admitted.ok()) FinishCall(admitted);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishCall(absl::CancelledError("client stopped reading the stream"));
      return;
    }
    WriteNext();
  }

  void OnDone() override {
    hold_.watch.Reset();
    delete this;  // releases the memory reservation
  }

 private:
  void FinishCall(const absl::Status& status) {
    recorder_.Finish(status);
    Finish(ToGrpcStatus(status));
  }

  void OnEmbedded(absl::Status status, pipeline::EmbedResult result) {
    model_.reset();  // never the last holder: the registry or the retiring lifecycle is
    if (!status.ok()) {
      FinishCall(status);
      return;
    }
    response_ = ToEmbedResponse(std::move(result));
    // From now on the call holds the answer and its chunks, no longer pixels or tensors.
    hold_.memory.ShrinkTo(pipeline::kResponseCopies *
                          static_cast<int64_t>(response_.ByteSizeLong()));
    const v1::Embedding& e = response_.embeddings(0);
    const v1::Tensor& tokens = e.patch_tokens();
    grid_h_ = e.grid_height();
    grid_w_ = e.grid_width();
    dim_ = tokens.shape_size() == 2 ? tokens.shape(1) : 0;
    row_bytes_ = grid_h_ > 0 ? static_cast<int64_t>(tokens.data().size()) / grid_h_ : 0;
    if (rows_per_chunk_ == 0) {
      rows_per_chunk_ = static_cast<uint32_t>(
          std::max<int64_t>(1, kDefaultChunkBytes / std::max<int64_t>(1, row_bytes_)));
    }
    WriteNext();
  }

  // Writes rows [next_row_, next_row_ + rows_per_chunk_) of the final patch tokens, then of
  // each intermediate layer's in turn (DenseChunk.layer), or finishes after the last row.
  void WriteNext() {
    const v1::Embedding& embedding = response_.embeddings(0);
    if (next_row_ >= grid_h_) {
      if (layer_slot_ == embedding.layers_size()) {
        FinishCall(absl::OkStatus());
        return;
      }
      ++layer_slot_;
      next_row_ = 0;
    }
    const bool final_tokens = layer_slot_ == 0;
    const v1::Tensor& tokens =
        final_tokens ? embedding.patch_tokens() : embedding.layers(layer_slot_ - 1).patch_tokens();
    const uint32_t rows = std::min(rows_per_chunk_, grid_h_ - next_row_);
    chunk_.Clear();
    chunk_.set_grid_height(grid_h_);
    chunk_.set_grid_width(grid_w_);
    chunk_.set_dim(static_cast<uint32_t>(dim_));
    chunk_.set_dtype(tokens.dtype());
    chunk_.set_row_start(next_row_);
    chunk_.set_request_id(request_id_);
    chunk_.set_model_name(model_name_);
    if (final_tokens && next_row_ == 0) *chunk_.mutable_timing() = response_.timing();
    if (!final_tokens) chunk_.set_layer(embedding.layers(layer_slot_ - 1).layer());
    v1::Tensor* out = chunk_.mutable_rows();
    out->set_dtype(tokens.dtype());
    out->add_shape(rows);
    out->add_shape(grid_w_);
    out->add_shape(dim_);
    out->set_data(tokens.data().substr(next_row_ * row_bytes_, rows * row_bytes_));
    if (tokens.scales_size() > 0) {  // INT8, UINT8: one scale per patch, rows * grid_w_ here
      const auto first = tokens.scales().begin() + int64_t{next_row_} * grid_w_;
      out->mutable_scales()->Add(first, first + int64_t{rows} * grid_w_);
    }
    next_row_ += rows;
    StartWrite(&chunk_);
  }

  grpc::CallbackServerContext* const context_;
  const std::string request_id_;
  uint32_t rows_per_chunk_;
  RequestRecorder recorder_;
  CallHold hold_;
  v1::EmbedResponse response_;
  v1::DenseChunk chunk_;
  std::shared_ptr<registry::ServedModel> model_;
  std::string model_name_;
  uint32_t grid_h_ = 0;
  uint32_t grid_w_ = 0;
  int64_t dim_ = 0;
  int64_t row_bytes_ = 0;
  uint32_t next_row_ = 0;
  int layer_slot_ = 0;  // 0: the final patch tokens; i > 0: embedding.layers(i - 1)
};

}  // namespace

grpc::ServerWriteReactor<v1::DenseChunk>* StartDenseCall(grpc::CallbackServerContext* context,
                                                         const v1::EmbedDenseRequest* request,
                                                         const absl::Status& refused,
                                                         const CallEnvironment& env) {
  auto* reactor = new DenseReactor(
      context, *request,
      RequestRecorder(env.metrics, "EmbedDense", env.models->Label(request->model()), *context,
                      request->request_id(), request->has_image() ? 1 : 0));
  if (!refused.ok()) {
    reactor->Refuse(refused);
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<registry::ServedModel>> model = env.models->Find(request->model());
  if (model.ok()) {
    reactor->Start(*request, *std::move(model), env);
  } else {
    reactor->Refuse(model.status());
  }
  return reactor;
}

}  // namespace dinov3::service
