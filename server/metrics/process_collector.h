// The standard process_* metrics of Prometheus client libraries, read from /proc/self at scrape
// time: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds, process_open_fds,
// process_max_fds. On a system without /proc the collector returns no families. Thread-safe.
#ifndef DINOV3_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define DINOV3_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <prometheus/collectable.h>

#include <memory>

namespace dinov3::metrics {

std::shared_ptr<prometheus::Collectable> MakeProcessCollector();

}  // namespace dinov3::metrics

#endif  // DINOV3_SERVER_METRICS_PROCESS_COLLECTOR_H_
