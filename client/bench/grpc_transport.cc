#include "client/bench/grpc_transport.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dinov3/v1/embedding.grpc.pb.h"

namespace dinov3::bench {
namespace {

using Stub = v1::EmbeddingService::Stub;

std::string CodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::chrono::system_clock::time_point DeadlineIn(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(seconds));
}

void CopyTiming(const v1::Timing& timing, CallResult& result) {
  result.has_timing = true;
  result.queue_seconds = timing.queue_seconds();
  result.preprocess_seconds = timing.preprocess_seconds();
  result.inference_seconds = timing.inference_seconds();
  result.batch_size = static_cast<int>(timing.batch_size());
}

// Shared by the three methods: the channel, the stub and the request rotation.
class GrpcTransportBase : public Transport {
 public:
  explicit GrpcTransportBase(const GrpcTarget& target) : target_(target) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // patch tokens of large images exceed 4 MiB
    args.SetMaxSendMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(target.address, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::EmbeddingService::NewStub(channel_);
  }

  absl::Status Open(int /*workers*/) override {
    if (!channel_->WaitForConnected(DeadlineIn(target_.connect_seconds))) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", target_.address, " within ",
                                                 target_.connect_seconds, " s"));
    }
    return absl::OkStatus();
  }

  void Close() override {}

 protected:
  size_t NextIndex(size_t count) { return next_.fetch_add(1, std::memory_order_relaxed) % count; }

  const GrpcTarget target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;

 private:
  std::atomic<size_t> next_{0};
};

class EmbedTransport : public GrpcTransportBase {
 public:
  EmbedTransport(const GrpcTarget& target, std::vector<v1::EmbedRequest> requests)
      : GrpcTransportBase(target), requests_(std::move(requests)) {}

  CallResult Call(int /*worker*/) override {
    const v1::EmbedRequest& request = requests_[NextIndex(requests_.size())];
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(target_.timeout_seconds));
    v1::EmbedResponse response;
    const grpc::Status status = stub_->Embed(&context, request, &response);
    CallResult result;
    result.images = request.images_size();
    if (!status.ok()) {
      result.error = CodeName(status.error_code());
      return result;
    }
    result.response_bytes = response.ByteSizeLong();
    CopyTiming(response.timing(), result);
    return result;
  }

 private:
  const std::vector<v1::EmbedRequest> requests_;
};

class StreamTransport : public GrpcTransportBase {
 public:
  StreamTransport(const GrpcTarget& target, std::vector<v1::EmbedRequest> requests)
      : GrpcTransportBase(target), requests_(std::move(requests)) {}

  absl::Status Open(int workers) override {
    slots_.clear();
    slots_.resize(workers);
    return GrpcTransportBase::Open(workers);
  }

  CallResult Call(int worker) override {
    const v1::EmbedRequest& request = requests_[NextIndex(requests_.size())];
    Slot& slot = slots_[worker];
    CallResult result;
    result.images = request.images_size();
    if (slot.stream == nullptr) {
      slot.context = std::make_unique<grpc::ClientContext>();
      slot.stream = stub_->StreamEmbed(slot.context.get());
    }
    v1::EmbedResponse response;
    if (!slot.stream->Write(request) || !slot.stream->Read(&response)) {
      result.error = CodeName(Finish(slot).error_code());
      if (result.error == "OK") result.error = "STREAM_ENDED";
      return result;
    }
    if (response.has_error() && response.error().code() != 0) {
      result.error = CodeName(response.error().code());
      return result;
    }
    result.response_bytes = response.ByteSizeLong();
    CopyTiming(response.timing(), result);
    return result;
  }

  void Close() override {
    for (Slot& slot : slots_) {
      if (slot.stream != nullptr) {
        slot.stream->WritesDone();
        Finish(slot);
      }
    }
  }

 private:
  struct Slot {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::EmbedRequest, v1::EmbedResponse>> stream;
  };

  static grpc::Status Finish(Slot& slot) {
    const grpc::Status status = slot.stream->Finish();
    slot.stream.reset();
    slot.context.reset();
    return status;
  }

  const std::vector<v1::EmbedRequest> requests_;
  std::vector<Slot> slots_;  // one per worker; slot w is only touched by worker w
};

class DenseTransport : public GrpcTransportBase {
 public:
  DenseTransport(const GrpcTarget& target, std::vector<v1::EmbedDenseRequest> requests)
      : GrpcTransportBase(target), requests_(std::move(requests)) {}

  CallResult Call(int /*worker*/) override {
    const v1::EmbedDenseRequest& request = requests_[NextIndex(requests_.size())];
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(target_.timeout_seconds));
    auto reader = stub_->EmbedDense(&context, request);
    CallResult result;
    result.images = 1;
    v1::DenseChunk chunk;
    size_t bytes = 0;
    bool first = true;
    while (reader->Read(&chunk)) {
      bytes += chunk.ByteSizeLong();
      if (first) CopyTiming(chunk.timing(), result);
      first = false;
    }
    const grpc::Status status = reader->Finish();
    if (!status.ok()) {
      result = CallResult{.error = CodeName(status.error_code()), .images = 1};
      return result;
    }
    result.response_bytes = bytes;
    return result;
  }

 private:
  const std::vector<v1::EmbedDenseRequest> requests_;
};

}  // namespace

std::unique_ptr<Transport> MakeGrpcTransport(const GrpcTarget& target, GrpcMethod method,
                                             std::vector<v1::EmbedRequest> requests,
                                             std::vector<v1::EmbedDenseRequest> dense_requests) {
  switch (method) {
    case GrpcMethod::kEmbed:
      return std::make_unique<EmbedTransport>(target, std::move(requests));
    case GrpcMethod::kStream:
      return std::make_unique<StreamTransport>(target, std::move(requests));
    case GrpcMethod::kDense:
      return std::make_unique<DenseTransport>(target, std::move(dense_requests));
  }
  return nullptr;
}

}  // namespace dinov3::bench
