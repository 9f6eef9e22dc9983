// Boost.Beast on Boost.Asio: one io_context thread, one async session per connection, as in
// server/http/http_server.cc (there with a hang-up watch, TLS, drain and oldest-idle eviction).
// POST /echo-size answers {"bytes": N}; keep-alive per HTTP/1.1.
//   timeout: beast::tcp_stream::expires_after(30 s) before each read, a deadline for the whole
//            request (idle wait + head + body), so a client dripping bytes is closed at 30 s;
//   cap:     Beast has none; this program counts sessions and closes new connections at 1024;
//   threads: Beast starts none; the one event-loop thread is ours (std::thread, default stack).
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "common.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

int open_sessions = 0;  // the event-loop thread only

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : stream_(std::move(socket)) { ++open_sessions; }
  ~Session() { --open_sessions; }

  void Read() {
    parser_.emplace();
    parser_->header_limit(16 << 10);
    parser_->body_limit(1 << 20);
    stream_.expires_after(std::chrono::seconds(bench::kTimeoutSeconds));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) return Close();  // timeout, EOF, reset or a malformed request
    bench::RecordHandlerStack();
    http::request<http::string_body> request = parser_->release();
    response_.emplace();
    response_->version(11);
    response_->keep_alive(request.keep_alive());
    if (request.method() == http::verb::post && request.target() == "/echo-size") {
      response_->result(http::status::ok);
      response_->set(http::field::content_type, "application/json");
      response_->body() = bench::EchoSizeBody(request.body().size());
    } else {
      response_->result(http::status::not_found);
      response_->set(http::field::content_type, "text/plain");
      response_->body() = "not found\n";
    }
    response_->prepare_payload();
    // An asynchronous handler would asio::post() this write from another thread instead.
    stream_.expires_after(std::chrono::seconds(bench::kTimeoutSeconds));
    http::async_write(stream_, *response_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        const bool keep_alive = self->response_->keep_alive();
                        self->response_.reset();
                        if (ec || !keep_alive) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
};

void Accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (!ec) {
      if (open_sessions >= bench::kMaxConnections) {
        socket.close(ec);
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket))->Read();
      }
    }
    Accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  bench::BlockStopSignals();
  const int port = bench::PortFromArgs(argc, argv);
  asio::io_context loop{1};
  tcp::acceptor acceptor(loop);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  Accept(acceptor);
  std::thread thread([&loop] { loop.run(); });
  std::printf("beast listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  bench::WaitForStopSignal();
  loop.stop();
  thread.join();
  return 0;
}
