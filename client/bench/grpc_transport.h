// Transports over the dinov3.v1 gRPC API (synchronous stubs, one channel shared by all
// workers, as a real client would hold it):
//   kEmbed  - one unary Embed per call;
//   kStream - one StreamEmbed stream per worker, one request in flight on it at a time;
//   kDense  - one EmbedDense call per call, all its chunks read.
// A call's error is its gRPC status code name (for StreamEmbed, the code of the response's
// Error, or of the stream when it breaks; a broken stream is reopened by the next call).
#ifndef DINOV3_CLIENT_BENCH_GRPC_TRANSPORT_H_
#define DINOV3_CLIENT_BENCH_GRPC_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "client/bench/transport.h"
#include "dinov3/v1/embedding.pb.h"

namespace dinov3::bench {

enum class GrpcMethod { kEmbed, kStream, kDense };

struct GrpcTarget {
  std::string address;  // host:port, as grpc::CreateChannel takes it
  double timeout_seconds = 120;  // deadline of each unary or dense call (streams have none)
  double connect_seconds = 10;   // Open waits this long for the channel to connect
};

// Calls cycle through `requests` (or `dense_requests` for kDense).
std::unique_ptr<Transport> MakeGrpcTransport(const GrpcTarget& target, GrpcMethod method,
                                             std::vector<v1::EmbedRequest> requests,
                                             std::vector<v1::EmbedDenseRequest> dense_requests);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_GRPC_TRANSPORT_H_
