#include "server/http/http_server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <list>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/memory_budget.h"

namespace dinov3::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(std::min(d, absl::Hours(24 * 365))));
}

absl::StatusOr<std::shared_ptr<ssl::context>> MakeTlsContext(const HttpServerOptions& o) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
  boost::system::error_code ec;
  context->use_certificate_chain_file(o.cert_file, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("tls.cert_file: ", o.cert_file, ": ", ec.message()));
  context->use_private_key_file(o.key_file, ssl::context::pem, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("tls.key_file: ", o.key_file, ": ", ec.message()));
  if (!o.client_ca_file.empty()) {
    context->load_verify_file(o.client_ca_file, ec);
    if (ec)
      return absl::InvalidArgumentError(
          absl::StrCat("tls.client_ca_file: ", o.client_ca_file, ": ", ec.message()));
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

std::string PeerOf(const tcp::socket& socket) {
  boost::system::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  if (peer.address().is_v6()) {
    return absl::StrCat("ipv6:[", peer.address().to_string(), "]:", peer.port());
  }
  return absl::StrCat("ipv4:", peer.address().to_string(), ":", peer.port());
}

// What outlives the server for the answers still on their way: a way to post onto the event
// loop while it runs, and the count of open exchanges.
class Mailbox {
 public:
  explicit Mailbox(asio::io_context* loop) : loop_(loop) {}
  void Post(absl::AnyInvocable<void() &&> work) {
    absl::MutexLock lock(&mu_);
    if (loop_ != nullptr) {
      asio::post(*loop_, [work = std::move(work)]() mutable { std::move(work)(); });
    }
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    loop_ = nullptr;
  }
  std::atomic<int> open_exchanges{0};

 private:
  absl::Mutex mu_;
  asio::io_context* loop_ ABSL_GUARDED_BY(mu_);
};

// Held by an exchange's respond function: counts it open until that function is gone.
class ExchangeTicket {
 public:
  explicit ExchangeTicket(std::shared_ptr<Mailbox> mailbox) : mailbox_(std::move(mailbox)) {
    mailbox_->open_exchanges.fetch_add(1);
  }
  ExchangeTicket(ExchangeTicket&& other) noexcept : mailbox_(std::move(other.mailbox_)) {}
  ExchangeTicket(const ExchangeTicket&) = delete;
  ~ExchangeTicket() {
    if (mailbox_ != nullptr) mailbox_->open_exchanges.fetch_sub(1);
  }

 private:
  std::shared_ptr<Mailbox> mailbox_;
};

}  // namespace

class SessionBase {
 public:
  enum class State { kWaiting, kReading, kHandling, kWriting };
  virtual ~SessionBase() = default;
  virtual void Close() = 0;
  State state = State::kWaiting;
  std::chrono::steady_clock::time_point waiting_since = std::chrono::steady_clock::now();
};

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        mailbox_(std::make_shared<Mailbox>(&loop_)) {}

  absl::Status Listen();
  void Accept();
  void Stop(absl::Time deadline);

  const HttpServerOptions options_;
  const HttpHandler handler_;
  std::list<SessionBase*> sessions_;  // the event loop's thread only
  asio::io_context loop_{1};
  std::shared_ptr<Mailbox> mailbox_;
  tcp::acceptor acceptor_{loop_};
  asio::steady_timer accept_pause_{loop_};
  std::shared_ptr<ssl::context> tls_;  // null: plaintext; the event loop's thread after Start
  std::chrono::steady_clock::time_point next_tls_reload_;
  std::atomic<bool> draining_{false};
  int port_ = 0;
  std::thread thread_;
  absl::Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;

 private:
  void ReloadTlsIfDue();
  bool MakeRoom();
};

namespace {

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  static constexpr size_t kFirstRead = 4096;
  static constexpr absl::Duration kLingerTime = absl::Seconds(2);

  Session(HttpServer::Impl* server, tcp::socket socket, std::shared_ptr<ssl::context> tls)
      : server_(server),
        tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket))),
        timer_(server->loop_),
        peer_(PeerOf(beast::get_lowest_layer(stream_).socket())) {
    server_->sessions_.push_back(this);
    position_ = std::prev(server_->sessions_.end());
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().non_blocking(true, ignored);  // for the peek
  }
  ~Session() override { server_->sessions_.erase(position_); }

  void Start() {
    if constexpr (kTls) {
      state = State::kReading;
      SetDeadline(server_->options_.request_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->WaitForRequest();
                              });
    } else {
      WaitForRequest();
    }
  }

  void Close() override {
    body_hold_ = {};
    const std::shared_ptr<Session> keep = std::move(held_);  // ends it after the return
    timer_.cancel();
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    if (cancelled_ != nullptr) cancelled_->store(true);
  }

 private:
  Stream MakeStream(tcp::socket socket) {
    if constexpr (kTls) {
      return Stream(beast::tcp_stream(std::move(socket)), *tls_);
    } else {
      return Stream(std::move(socket));
    }
  }

  void SetDeadline(absl::Duration timeout) {
    timer_.expires_after(ToSteady(timeout));
    timer_.async_wait([weak = this->weak_from_this()](beast::error_code ec) {
      if (ec) return;  // reset or cancelled
      if (auto self = weak.lock()) self->Close();
    });
  }

  // Idle until the first byte of the next request (or what is already buffered).
  void WaitForRequest() {
    state = State::kWaiting;
    waiting_since = std::chrono::steady_clock::now();
    SetDeadline(server_->options_.idle_timeout);
    if (buffer_.size() > 0) return ReadRequest();
    if constexpr (kTls) {
      // The TLS stream may already hold the request (it came with the handshake's last
      // flight): read through it, not by waiting on the socket.
      stream_.async_read_some(buffer_.prepare(kFirstRead),
                              [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                                if (ec) return self->Close();
                                self->buffer_.commit(n);
                                self->ReadRequest();
                              });
    } else {
      beast::get_lowest_layer(stream_).socket().async_wait(
          tcp::socket::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) return self->Close();
            self->ReadRequest();
          });
    }
  }

  void ReadRequest() {
    state = State::kReading;
    head_ = false;
    keep_alive_ = true;
    SetDeadline(server_->options_.request_timeout);
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options_.max_header_bytes));
    parser_->body_limit(static_cast<std::uint64_t>(server_->options_.max_body_bytes));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               if (ec) return self->OnRead(ec);
                               self->OnHeader();
                             });
  }

  // The head has arrived (its Content-Length already checked against the body limit): a client
  // that waits for "100 Continue" before sending its body (curl does above 1 MiB) gets it.
  void OnHeader() {
    if (MemoryBudget* budget = server_->options_.body_budget; budget != nullptr) {
      // A chunked body may grow to the limit: it reserves the limit.
      const auto length = parser_->content_length();  // boost::optional
      const int64_t body =
          length ? static_cast<int64_t>(*length) : server_->options_.max_body_bytes;
      std::optional<MemoryBudget::Reservation> hold =
          budget->TryReserve(body * kBodyTransientFactor);
      if (!hold.has_value()) {
        return Refuse(429,
                      "the server's memory budget (limits.memory_budget_bytes) has no room "
                      "for this request's body now; retry later\n");
      }
      body_hold_ = *std::move(hold);
    }
    const auto expect = parser_->get().find(bhttp::field::expect);
    if (parser_->is_done() || expect == parser_->get().end() ||
        !beast::iequals(expect->value(), "100-continue")) {
      return ReadBody();
    }
    continue_.emplace(bhttp::status::continue_, 11);
    bhttp::async_write(stream_, *continue_,
                       [self = this->shared_from_this()](beast::error_code ec, size_t) {
                         self->continue_.reset();
                         if (ec) return self->Close();
                         self->ReadBody();
                       });
  }

  void ReadBody() {
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) {
      return Refuse(431, "the request head is larger than the limit of " +
                             std::to_string(server_->options_.max_header_bytes) + " bytes\n");
    }
    if (ec == bhttp::error::body_limit) {
      return Refuse(413, "the request body is larger than the limit of " +
                             std::to_string(server_->options_.max_body_bytes) + " bytes\n");
    }
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::bad_descriptor) {
      return Close();
    }
    if (ec) return Refuse(400, "malformed HTTP request: " + ec.message() + "\n");
    bhttp::request<bhttp::string_body> message = parser_->release();
    parser_.reset();
    keep_alive_ = message.keep_alive();
    head_ = message.method() == bhttp::verb::head;
    if (server_->draining_.load() && !server_->options_.draining_body.empty()) {
      keep_alive_ = false;
      HttpResponse response;
      response.status = 503;
      response.content_type = server_->options_.draining_content_type;
      response.body = server_->options_.draining_body;
      return Write(std::move(response));
    }
    Hand(std::move(message));
  }

  void Hand(bhttp::request<bhttp::string_body> message) {
    state = State::kHandling;
    timer_.cancel();
    HttpExchange exchange;
    HttpRequest& request = exchange.request;
    request.method = std::string(message.method_string());
    const std::string target(message.target());
    const size_t question = target.find('?');
    request.path = target.substr(0, question);
    if (question != std::string::npos) request.query = target.substr(question + 1);
    for (const auto& field : message) {
      std::string name(field.name_string());
      absl::AsciiStrToLower(&name);
      request.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    request.body = std::move(message.body());
    request.peer = peer_;
    request.received = absl::Now();
    cancelled_ = std::make_shared<std::atomic<bool>>(false);
    exchange.is_cancelled = [cancelled = cancelled_] { return cancelled->load(); };
    const uint64_t id = ++exchange_id_;
    // The ticket keeps the exchange open (for Stop) until its answer is written: it moves from
    // the respond function into the posted write, then into the session until the write ends.
    exchange.respond = [mailbox = server_->mailbox_, ticket = ExchangeTicket(server_->mailbox_),
                        weak = this->weak_from_this(), id](HttpResponse response) mutable {
      mailbox->Post(
          [weak, id, response = std::move(response), ticket = std::move(ticket)]() mutable {
            auto self = weak.lock();
            if (self != nullptr && self->exchange_id_ == id && self->state == State::kHandling) {
              self->writing_ticket_.emplace(std::move(ticket));
              self->Write(std::move(response));
            }
          });
    };
    held_ = this->shared_from_this();  // until the answer is written
    WatchForHangUp();
    try {
      server_->handler_(std::move(exchange));
    } catch (const std::exception& e) {
      HandlerFailed(e.what());
    } catch (...) {
      HandlerFailed("an exception that is not a std::exception");
    }
  }

  // A handler threw (a bug): the client gets 500 and the connection closes; an answer the handler
  // may still send is dropped (its exchange is no longer the connection's).
  void HandlerFailed(const char* what) {
    spdlog::error("{}: handler failed: {}", server_->options_.name, what);
    ++exchange_id_;
    Refuse(500, "internal error\n");
  }

  // While the handler works: a readable socket with nothing to read is a client that hung up.
  // Over TLS, a client that closes properly first sends a close_notify alert, which is bytes
  // on the socket (and, in TLS 1.3, looks like application data there): the watch reads
  // through the TLS stream instead. Its end of stream or error is the hang-up; bytes it reads
  // (a pipelined request) are kept for the parser, and the watch ends there, as for plain TCP.
  void WatchForHangUp() {
    if constexpr (kTls) {
      stream_.async_read_some(
          buffer_.prepare(kFirstRead),
          [weak = this->weak_from_this(), cancelled = cancelled_](beast::error_code ec, size_t n) {
            auto self = weak.lock();
            if (self == nullptr) return;
            if (n > 0) self->buffer_.commit(n);
            if (ec && ec != asio::error::operation_aborted && self->state == State::kHandling) {
              cancelled->store(true);
            }
          });
      return;
    }
    beast::get_lowest_layer(stream_).socket().async_wait(
        tcp::socket::wait_read,
        [weak = this->weak_from_this(), cancelled = cancelled_](beast::error_code ec) {
          auto self = weak.lock();
          if (ec || self == nullptr || self->state != State::kHandling) return;
          char byte;
          beast::error_code peek_error;
          const size_t n =
              beast::get_lowest_layer(self->stream_)
                  .socket()
                  .receive(asio::buffer(&byte, 1), tcp::socket::message_peek, peek_error);
          if (peek_error == asio::error::would_block) return self->WatchForHangUp();
          if ((!peek_error && n == 0) || peek_error == asio::error::eof ||
              peek_error == asio::error::connection_reset) {
            cancelled->store(true);
          }
        });
  }

  void Refuse(int status, std::string body) {
    keep_alive_ = false;
    unread_body_ = parser_.has_value() && parser_->is_header_done() && !parser_->is_done();
    HttpResponse response;
    response.status = status;
    response.content_type = "text/plain; charset=utf-8";
    response.body = std::move(body);
    Write(std::move(response));
  }

  void Write(HttpResponse response) {
    if (state == State::kWriting) return;  // one answer per request
    state = State::kWriting;
    const std::shared_ptr<Session> self = std::move(held_);
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().cancel(ignored);  // the hang-up watch
    if (server_->draining_.load()) keep_alive_ = false;
    answer_.emplace(static_cast<bhttp::status>(response.status), 11);
    // Beast knows no phrase for nginx's 499 (the client went away before its answer).
    if (response.status == 499) answer_->reason("Client Closed Request");
    answer_->set(bhttp::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) answer_->set(name, value);
    answer_->keep_alive(keep_alive_);
    if (head_) {
      answer_->content_length(response.body.size());  // and no body
    } else {
      answer_->body() = std::move(response.body);
      answer_->prepare_payload();
    }
    SetDeadline(server_->options_.write_timeout);
    bhttp::async_write(stream_, *answer_,
                       [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                         self->answer_.reset();
                         self->cancelled_.reset();
                         self->writing_ticket_.reset();
                         self->body_hold_ = {};
                         if (ec || !self->keep_alive_) return self->Finish(ec);
                         self->WaitForRequest();
                       });
  }

  void Finish(beast::error_code ec) {
    if constexpr (kTls) {
      if (!ec) {
        SetDeadline(server_->options_.write_timeout);
        return stream_.async_shutdown(
            [self = this->shared_from_this()](beast::error_code) { self->Close(); });
      }
    } else {
      if (!ec && unread_body_) return Linger();
    }
    Close();
  }

  // After refusing a request whose body was still coming (413, 429): the answer is sent, then
  // what the client still sends is read and dropped for a short while before the close, so the
  // client reads the status instead of a connection reset (closing a socket with unread data
  // resets it).
  void Linger() {
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    SetDeadline(kLingerTime);
    DropInput();
  }

  void DropInput() {
    beast::get_lowest_layer(stream_).socket().async_read_some(
        asio::buffer(scratch_), [self = this->shared_from_this()](beast::error_code ec, size_t) {
          if (ec) return self->Close();  // the client's EOF, or the linger time ran out
          self->DropInput();
        });
  }

  HttpServer::Impl* const server_;
  const std::shared_ptr<ssl::context> tls_;  // before stream_: the stream uses it
  Stream stream_;
  asio::steady_timer timer_;
  const std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> answer_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::shared_ptr<Session> held_;  // the session itself while a handler has its request
  std::optional<ExchangeTicket> writing_ticket_;  // the exchange whose answer is being written
  MemoryBudget::Reservation body_hold_;  // the request's body and its parse, until answered
  uint64_t exchange_id_ = 0;  // of the request being handled; answers for others are dropped
  bool keep_alive_ = true;
  bool unread_body_ = false;  // refused before its body was read: linger before the close
  std::array<char, 16 << 10> scratch_{};  // where a lingering connection's input is dropped
  bool head_ = false;                     // the request was HEAD: the answer has no body
  std::list<SessionBase*>::iterator position_;
};

}  // namespace

absl::Status HttpServer::Impl::Listen() {
  const std::string& listen = options_.listen;
  std::string host;
  std::string port_text;
  if (!listen.empty() && listen.front() == '[') {
    const size_t close = listen.find(']');
    if (close != std::string::npos && close + 1 < listen.size() && listen[close + 1] == ':') {
      host = listen.substr(1, close - 1);
      port_text = listen.substr(close + 2);
    }
  } else if (const size_t colon = listen.rfind(':'); colon != std::string::npos) {
    host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
  }
  int port = -1;
  if (host.empty() || !absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(options_.name, ": the address must be host:port",
                                                   " or [v6 address]:port, got '", listen, "'"));
  }
  boost::system::error_code ec;
  tcp::resolver resolver(loop_);
  const auto found = resolver.resolve(host, port_text, tcp::resolver::numeric_service, ec);
  if (ec || found.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options_.name, ": cannot resolve '", host, "': ", ec.message()));
  }
  const tcp::endpoint endpoint = found.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && endpoint.address().is_v6()) acceptor_.set_option(asio::ip::v6_only(false), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat(options_.name, ": cannot listen on ", listen, ": ", ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  if (!options_.cert_file.empty()) {
    absl::StatusOr<std::shared_ptr<ssl::context>> tls = MakeTlsContext(options_);
    if (!tls.ok()) return tls.status();
    tls_ = *std::move(tls);
    next_tls_reload_ = std::chrono::steady_clock::now() + ToSteady(options_.tls_reload);
  }
  return absl::OkStatus();
}

void HttpServer::Impl::ReloadTlsIfDue() {
  if (tls_ == nullptr || std::chrono::steady_clock::now() < next_tls_reload_) return;
  next_tls_reload_ = std::chrono::steady_clock::now() + ToSteady(options_.tls_reload);
  absl::StatusOr<std::shared_ptr<ssl::context>> tls = MakeTlsContext(options_);
  if (tls.ok()) {
    tls_ = *std::move(tls);
  } else {
    spdlog::warn("{}: keeping the previous certificate: {}", options_.name,
                 tls.status().ToString());
  }
}

// At the cap: closes the connection that has waited longest for a request. False if none waits.
bool HttpServer::Impl::MakeRoom() {
  SessionBase* oldest = nullptr;
  for (SessionBase* session : sessions_) {
    if (session->state == SessionBase::State::kHandling ||
        session->state == SessionBase::State::kWriting) {
      continue;
    }
    if (oldest == nullptr || session->waiting_since < oldest->waiting_since) oldest = session;
  }
  if (oldest == nullptr) return false;
  oldest->Close();
  return true;
}

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(loop_, [this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (static_cast<int>(sessions_.size()) >= options_.max_connections && !MakeRoom()) {
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        ReloadTlsIfDue();
        if (tls_ != nullptr) {
          std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(this, std::move(socket),
                                                                          tls_)
              ->Start();
        } else {
          std::make_shared<Session<beast::tcp_stream>>(this, std::move(socket), nullptr)->Start();
        }
      }
    }
    if (ec) {  // e.g. out of file descriptors: try again shortly instead of spinning
      spdlog::warn("{}: accept failed: {}", options_.name, ec.message());
      accept_pause_.expires_after(std::chrono::milliseconds(100));
      return accept_pause_.async_wait([this](boost::system::error_code e) {
        if (!e) Accept();
      });
    }
    Accept();
  });
}

void HttpServer::Impl::Stop(absl::Time deadline) {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  draining_.store(true);
  asio::post(loop_, [this] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    accept_pause_.cancel();
    const std::vector<SessionBase*> open(sessions_.begin(), sessions_.end());
    for (SessionBase* session : open) {
      if (session->state == SessionBase::State::kWaiting) session->Close();
    }
  });
  while (mailbox_->open_exchanges.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  mailbox_->Close();
  asio::post(loop_, [this] {
    const std::vector<SessionBase*> open(sessions_.begin(), sessions_.end());
    for (SessionBase* session : open) session->Close();  // a Close may end its session
  });
  asio::post(loop_, [this] { loop_.stop(); });  // after the posted answers and closes
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler handler) {
  auto impl = std::make_unique<Impl>(options, std::move(handler));
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  impl->Accept();
  Impl* raw = impl.get();
  raw->thread_ = std::thread([raw] {
    // Runs until Stop: the work guard keeps the loop alive while no socket is open.
    auto guard = asio::make_work_guard(raw->loop_);
    raw->loop_.run();
  });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(absl::Now()); }
int HttpServer::port() const { return impl_->port_; }
const char* HttpServer::scheme() const {
  return impl_->options_.cert_file.empty() ? "http" : "https";
}
void HttpServer::StartDraining() { impl_->draining_.store(true); }
void HttpServer::Stop(absl::Time deadline) { impl_->Stop(deadline); }

}  // namespace dinov3::http
