#include "server/service/api_key_auth.h"

#include <algorithm>
#include <iterator>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/common/logging.h"
#include "server/common/secret_file.h"
#include "server/common/status_reason.h"
#include "server/service/model_admin_service.h"

namespace dinov3::service {
namespace {

constexpr absl::string_view kHealthPrefix = "/grpc.health.v1.Health/";
// The Open Inference Protocol's probes (server/kserve): like health, they tell only whether the
// server is up, and Kubernetes / KServe probes carry no key.
constexpr absl::string_view kInferenceProbes[] = {"/inference.GRPCInferenceService/ServerLive",
                                                  "/inference.GRPCInferenceService/ServerReady"};
constexpr absl::string_view kBearer = "Bearer ";

absl::string_view View(grpc::string_ref s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

ApiKeyAuthProcessor::ApiKeyAuthProcessor(std::vector<std::string> keys, bool exempt_health,
                                         metrics::ServerMetrics* metrics)
    : keys_(std::move(keys)), exempt_health_(exempt_health), metrics_(metrics) {}

grpc::Status ApiKeyAuthProcessor::Process(const InputMetadata& auth_metadata, grpc::AuthContext*,
                                          OutputMetadata* consumed, OutputMetadata*) {
  absl::string_view path;
  if (auto it = auth_metadata.find(":path"); it != auth_metadata.end()) path = View(it->second);
  if (exempt_health_ && absl::StartsWith(path, kHealthPrefix)) return grpc::Status::OK;
  if (exempt_health_ && std::find(std::begin(kInferenceProbes), std::end(kInferenceProbes), path) !=
                            std::end(kInferenceProbes)) {
    return grpc::Status::OK;
  }
  // The admin service checks its own keys (model_admin_service.h): its key stays in place.
  if (absl::StartsWith(path, kModelAdminPathPrefix)) return grpc::Status::OK;

  const auto header = auth_metadata.find("authorization");
  absl::string_view key;
  if (header != auth_metadata.end()) {
    key = View(header->second);
    consumed->emplace("authorization", std::string(key));
  }
  const char* refusal = nullptr;
  if (header == auth_metadata.end()) {
    refusal = "missing 'authorization: Bearer <key>' metadata";
  } else if (!absl::ConsumePrefix(&key, kBearer)) {
    refusal = "the authorization metadata must be 'Bearer <key>'";
  } else if (!MatchesAnySecret(keys_, key)) {
    refusal = "invalid API key";
  }
  if (refusal == nullptr) return grpc::Status::OK;
  metrics_->RecordUnauthenticated();
  LogRefusal(path, refusal);
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, refusal);
}

void ApiKeyAuthProcessor::LogRefusal(absl::string_view path, const char* what) {
  const int64_t second = absl::ToUnixSeconds(absl::Now());
  int64_t last = last_log_second_.load();
  if (last == second || !last_log_second_.compare_exchange_strong(last, second)) {
    unlogged_.fetch_add(1);
    return;
  }
  const int64_t skipped = unlogged_.exchange(0);
  const std::string error =
      skipped == 0 ? std::string(what)
                   : absl::StrCat(what, " (", skipped, " more refusals since the last line)");
  logging::LogAccess({.method = std::string_view(path.data(), std::min<size_t>(path.size(), 128)),
                      .code = "UNAUTHENTICATED",
                      .reason = kReasonUnauthenticated,
                      .error = error});
}

}  // namespace dinov3::service
