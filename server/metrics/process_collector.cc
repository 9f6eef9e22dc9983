#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace dinov3::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily One(std::string name, std::string help, MetricType type, double value) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

// The fields of /proc/self/stat after the command name (which may contain spaces), so that
// fields[0] is field 3 (state) of proc(5).
bool ReadStatFields(std::vector<std::string>& fields) {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  while (rest >> field) fields.push_back(field);
  return fields.size() >= 22;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

int OpenFileDescriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the descriptor opendir itself holds
}

class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<MetricFamily> Collect() const override {
    std::vector<std::string> f;
    if (!ReadStatFields(f)) return {};
    // proc(5) field N is f[N - 3]: utime 14, stime 15, starttime 22, vsize 23, rss 24.
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    const double start = BootTimeSeconds() + std::stod(f[19]) / ticks;
    const double virtual_bytes = std::stod(f[20]);
    const double resident = std::stod(f[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    return {
        One("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
            MetricType::Counter, cpu),
        One("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
            resident),
        One("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
            virtual_bytes),
        One("process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.", MetricType::Gauge, start),
        One("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
            OpenFileDescriptors()),
        One("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
            static_cast<double>(limit.rlim_cur)),
    };
  }
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeProcessCollector() {
  return std::make_shared<ProcessCollector>();
}

}  // namespace dinov3::metrics
