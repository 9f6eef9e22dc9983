// How the load generator talks to a server: one blocking call at a time per worker.
//
// Open(workers) prepares per-worker state (a stream, a connection); then Call(w) may run on
// several threads at once for distinct w; Close() ends the per-worker state after the last
// Call has returned. Failures of a call are reported in its CallResult, never thrown.
#ifndef DINOV3_CLIENT_BENCH_TRANSPORT_H_
#define DINOV3_CLIENT_BENCH_TRANSPORT_H_

#include "absl/status/status.h"
#include "client/bench/call_result.h"

namespace dinov3::bench {

class Transport {
 public:
  virtual ~Transport() = default;

  // Errors: the server cannot be reached or the per-worker state cannot be made.
  virtual absl::Status Open(int workers) = 0;
  virtual CallResult Call(int worker) = 0;
  virtual void Close() = 0;
};

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_TRANSPORT_H_
