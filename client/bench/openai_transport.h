// Transport over the OpenAI-compatible embeddings API: each call POSTs /v1/embeddings
// (http_transport.h: HTTP/1.1 keep-alive, one connection per worker) with a JSON body built
// once up front: {"model": --model ("" = the server's default), "input": [N data URLs
// "data:image/<type>;base64,..." of the image file, the type sniffed from its first bytes:
// jpeg, png, webp or bmp], "encoding_format": "base64" | "float"}, plus "output": "pooled"
// when the pooled vector is the one asked for (the server's extra field; CLS by default).
// OpenAI carries encoded files only, one float32 vector each: raw pixels, other outputs, other
// dtypes and a resize are refused (InvalidArgument).
// A call succeeds on a 200 answer with N embeddings (counted by their "index" keys, not
// parsed); otherwise its error is "HTTP_<status>", "CONNECTION" or "BAD_RESPONSE".
#ifndef DINOV3_CLIENT_BENCH_OPENAI_TRANSPORT_H_
#define DINOV3_CLIENT_BENCH_OPENAI_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/bench/http_transport.h"
#include "client/bench/request_set.h"
#include "client/bench/transport.h"

namespace dinov3::bench {

enum class OpenAIEncoding { kBase64, kFloat };

// "image/jpeg", "image/png", "image/webp" or "image/bmp" from an encoded file's magic bytes;
// "" when it is none of them.
std::string SniffImageMediaType(absl::string_view file);

// The number of embeddings in an answer's body: its "index" keys.
int CountEmbeddings(absl::string_view body);

// One request per image and model share (request_set.h).
absl::StatusOr<std::vector<HttpRequest>> MakeOpenAIRequests(const RequestSpec& spec,
                                                            const std::vector<v1::Image>& images,
                                                            OpenAIEncoding encoding);

// Calls cycle through MakeOpenAIRequests(spec, images, encoding); InvalidArgument as that.
absl::StatusOr<std::unique_ptr<Transport>> MakeOpenAITransport(const HttpTarget& target,
                                                               const RequestSpec& spec,
                                                               const std::vector<v1::Image>& images,
                                                               OpenAIEncoding encoding);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_OPENAI_TRANSPORT_H_
