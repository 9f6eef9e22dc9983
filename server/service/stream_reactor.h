// The StreamEmbed call: reads EmbedRequests as they come, admits each (its memory footprint
// reserved in the budget until its answer is written) and runs it through the pipeline
// concurrently, and writes each response as soon as it is ready, so responses may come out of
// order; each carries its request_id. Reading pauses while 32 requests are computing or their
// answers unwritten, or while they hold limits.max_stream_buffered_bytes, so a client that does
// not read cannot make the server buffer without bound; a client must read each answer within
// server.max_call_seconds or the stream is cancelled, and each request's work gets that
// deadline when the client's is later. A request that fails (also one refused by the budget) yields
// a response with `error` set; the stream goes on. The call finishes (OK) once the client
// half-closed and every response is written, or with CANCELLED if the client went away, or with
// UNAVAILABLE once a drain started and every accepted request is answered (requests read after the
// drain started are answered UNAVAILABLE; a read that completes after the call finished is dropped,
// never written); never while a request is still in the pipeline. Deletes itself in OnDone.
#ifndef DINOV3_SERVER_SERVICE_STREAM_REACTOR_H_
#define DINOV3_SERVER_SERVICE_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dinov3/v1/embedding.pb.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/service/call_context.h"

namespace dinov3::service {

// An open stream as the registry sees it.
class DrainableStream {
 public:
  virtual ~DrainableStream() = default;
  virtual void Drain() = 0;
};

// The open StreamEmbed calls, so that a drain can end them instead of waiting for clients to
// close them. Thread-safe.
class StreamRegistry {
 public:
  // Tells every open stream, and every stream opened from now on, to drain.
  void DrainAll();
  // Returns true when the stream must drain at once.
  bool Add(DrainableStream* stream);
  void Remove(DrainableStream* stream);

 private:
  absl::Mutex mu_;
  std::set<DrainableStream*> streams_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

// `registry` must outlive every stream. Each request message is recorded in env.metrics
// (RequestRecorder) when it is answered; a stream refused at once counts as one.
// Each request message runs on the model it names in env.models; a `refused` status that is
// not OK (the server is draining) ends the stream with it at once.
grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* StartStreamCall(
    grpc::CallbackServerContext* context, const absl::Status& refused, StreamRegistry* registry,
    const CallEnvironment& env);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_STREAM_REACTOR_H_
