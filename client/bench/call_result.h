// What one benchmark call produced: its outcome, its size and the server's own timing of it.
// A plain value; the transports fill it, the recorder aggregates it.
#ifndef DINOV3_CLIENT_BENCH_CALL_RESULT_H_
#define DINOV3_CLIENT_BENCH_CALL_RESULT_H_

#include <cstddef>
#include <string>

namespace dinov3::bench {

inline constexpr char kBadResponse[] = "BAD_RESPONSE";

struct CallResult {
  // "" when the call succeeded; otherwise the gRPC status code name ("UNAVAILABLE"), "HTTP_<n>"
  // for an HTTP answer other than 200, "CONNECTION" when an HTTP exchange broke, or
  // kBadResponse when a successful answer is not what the request asked for.
  std::string error = "";
  int images = 0;             // images the request carried
  size_t response_bytes = 0;  // serialized response (all chunks of a stream), HTTP body bytes
  // The response's Timing fields (gRPC only; has_timing is false for peers that do not fill it).
  bool has_timing = false;
  double queue_seconds = 0;
  double preprocess_seconds = 0;
  double inference_seconds = 0;
  int batch_size = 0;
};

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_CALL_RESULT_H_
