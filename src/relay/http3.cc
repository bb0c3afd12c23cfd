#include "relay/http3.h"

#include <nghttp3/nghttp3.h>

#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <utility>

#include "base/error.h"
#include "base/log.h"

namespace parley::relay {

namespace {

// RFC 9114 4.2.2: a field's size is its name and value lengths plus 32.
constexpr size_t kFieldOverhead = 32;

nghttp3_nv make_nv(const char *name, const std::string &value) {
  nghttp3_nv nv;
  nv.name = reinterpret_cast<const uint8_t *>(name);
  nv.namelen = std::strlen(name);
  nv.value = reinterpret_cast<const uint8_t *>(value.data());
  nv.valuelen = value.size();
  nv.flags = NGHTTP3_NV_FLAG_NONE;  // nghttp3 copies both (it encodes later)
  return nv;
}

// One HTTP/3 server connection: nghttp3 on top of the quic::Connection that owns it. Every
// method runs on the loop thread; nghttp3's callbacks run inside nghttp3 calls made from the
// StreamApp methods, so they may only queue work on the connection (consume, shutdown_*).
class Http3App final : public quic::StreamApp {
 public:
  Http3App(quic::Connection &conn, std::shared_ptr<const HttpHandler> handler,
           std::shared_ptr<const Http3Options> options)
      : conn_(conn), handler_(std::move(handler)), options_(std::move(options)) {}
  ~Http3App() override {
    if (h3_) nghttp3_conn_del(h3_);
  }

  int on_connected() override { return setup(); }

  int64_t on_stream_data(int64_t stream_id, const uint8_t *data, size_t len, bool fin) override {
    if (!h3_ && setup() < 0) return -1;
    // nghttp3 returns what it consumed itself (frames, headers); request body bytes are
    // credited by recv_data / deferred_consume below.
    const nghttp3_ssize n = nghttp3_conn_read_stream(h3_, stream_id, data, len, fin ? 1 : 0);
    if (n < 0) return failed(int(n), "read");
    return n;
  }

  int on_acked(int64_t stream_id, uint64_t n) override {
    if (!h3_) return 0;
    const int rv = nghttp3_conn_add_ack_offset(h3_, stream_id, n);
    return rv == 0 ? 0 : failed(rv, "ack");
  }

  int on_stream_reset(int64_t stream_id, uint64_t) override { return stop_reading(stream_id); }
  int on_stop_sending(int64_t stream_id, uint64_t) override { return stop_reading(stream_id); }

  int on_stream_close(int64_t stream_id, bool has_error_code, uint64_t app_error_code) override {
    if (!h3_) return 0;
    const uint64_t code = has_error_code ? app_error_code : NGHTTP3_H3_NO_ERROR;
    const int rv = nghttp3_conn_close_stream(h3_, stream_id, code);
    // A stream nghttp3 never saw (e.g. reset before any byte) is not an error.
    if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) return failed(rv, "close stream");
    requests_.erase(stream_id);  // normally already gone through http_stream_close
    return 0;
  }

  int on_stream_credit(int64_t stream_id) override {
    if (!h3_) return 0;
    const int rv = nghttp3_conn_unblock_stream(h3_, stream_id);
    return rv == 0 ? 0 : failed(rv, "unblock");
  }

  void on_max_remote_bidi_streams(uint64_t max_streams) override {
    if (h3_) nghttp3_conn_set_max_client_streams_bidi(h3_, max_streams);
  }

  int next_outgoing(Outgoing *out) override {
    if (!h3_) return 0;
    nghttp3_vec vec[Outgoing::kMaxVecs];
    int64_t stream_id = -1;
    int fin = 0;
    const nghttp3_ssize n =
        nghttp3_conn_writev_stream(h3_, &stream_id, &fin, vec, Outgoing::kMaxVecs);
    if (n < 0) return failed(int(n), "write");
    out->stream_id = stream_id;
    out->count = size_t(n);
    for (size_t i = 0; i < out->count; ++i) out->vecs[i] = {vec[i].base, vec[i].len};
    out->fin = fin != 0;
    return 0;
  }

  int on_sent(int64_t stream_id, size_t n) override {
    const int rv = nghttp3_conn_add_write_offset(h3_, stream_id, n);
    return rv == 0 ? 0 : failed(rv, "write offset");
  }

  void on_blocked(int64_t stream_id) override { nghttp3_conn_block_stream(h3_, stream_id); }
  void on_write_shut(int64_t stream_id) override {
    nghttp3_conn_shutdown_stream_write(h3_, stream_id);
  }

  uint64_t error_code() const override { return error_code_; }

 private:
  struct Request {
    std::string method, path;
    size_t header_bytes = 0;
    bool too_large = false;
    // The response body: nghttp3 sends it from here and ngtcp2 retransmits from here, so it
    // lives until the stream is closed (which needs the client's acknowledgement).
    std::string body;
    bool body_offered = false;
  };

  int failed(int liberr, const char *what) {
    error_code_ = nghttp3_err_infer_quic_app_error_code(liberr);
    PARLEY_LOG(kLogInfo, "http3", "connection with %s: %s failed: %s",
               conn_.remote().to_string().c_str(), what, nghttp3_strerror(liberr));
    return -1;
  }

  int stop_reading(int64_t stream_id) {
    if (!h3_) return 0;
    const int rv = nghttp3_conn_shutdown_stream_read(h3_, stream_id);
    return rv == 0 ? 0 : failed(rv, "shutdown read");
  }

  // Creates the nghttp3 connection and our three unidirectional streams (control, QPACK
  // encoder, QPACK decoder). Runs at the end of the handshake.
  int setup() {
    if (h3_) return 0;
    nghttp3_callbacks cb;
    std::memset(&cb, 0, sizeof cb);
    cb.stream_close = http_stream_close;
    cb.recv_data = http_recv_data;
    cb.deferred_consume = http_deferred_consume;
    cb.begin_headers = http_begin_headers;
    cb.recv_header = http_recv_header;
    cb.end_stream = http_end_stream;
    cb.stop_sending = http_stop_sending;
    cb.reset_stream = http_reset_stream;
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.max_field_section_size = options_->max_request_header_bytes;
    // A small dynamic table, and no blocked streams: a request whose headers refer to table
    // entries not yet received is a QPACK error instead of being buffered until they arrive.
    settings.qpack_max_dtable_capacity = 4096;
    settings.qpack_blocked_streams = 0;
    int rv = nghttp3_conn_server_new(&h3_, &cb, &settings, nghttp3_mem_default(), this);
    if (rv != 0) {
      h3_ = nullptr;
      return failed(rv, "nghttp3_conn_server_new");
    }
    const uint64_t max_requests = conn_.max_peer_bidi_streams();
    nghttp3_conn_set_max_client_streams_bidi(h3_, max_requests);
    nghttp3_conn_set_max_concurrent_streams(h3_, size_t(max_requests) + 3);
    int64_t control = -1, encoder = -1, decoder = -1;
    if (conn_.open_uni_stream(&control) != kOk || conn_.open_uni_stream(&encoder) != kOk ||
        conn_.open_uni_stream(&decoder) != kOk) {
      // RFC 9114 6.2: the peer must allow at least these three.
      error_code_ = NGHTTP3_H3_GENERAL_PROTOCOL_ERROR;
      PARLEY_LOG(kLogInfo, "http3", "%s allows too few unidirectional streams: %s",
                 conn_.remote().to_string().c_str(), last_error_message());
      return -1;
    }
    rv = nghttp3_conn_bind_control_stream(h3_, control);
    if (rv == 0) rv = nghttp3_conn_bind_qpack_streams(h3_, encoder, decoder);
    if (rv != 0) return failed(rv, "bind streams");
    return 0;
  }

  // Answers a complete request. Only ever one response per stream: nghttp3 calls end_stream
  // once.
  int respond(int64_t stream_id, Request &r) {
    HttpResponse resp;
    bool allow = false;
    if (r.too_large) {
      resp = {431, "text/plain", "request header fields too large\n"};
    } else if (r.method != "GET" && r.method != "HEAD") {
      resp = {405, "text/plain", "method not allowed\n"};
      allow = true;
    } else {
      try {
        resp = (*handler_)(r.method, r.path);
      } catch (const std::exception &e) {
        PARLEY_LOG(kLogWarn, "http3", "handler failed for %s: %s", r.path.c_str(), e.what());
        resp = {500, "text/plain", "internal error\n"};
      } catch (...) {
        resp = {500, "text/plain", "internal error\n"};
      }
      if (resp.status < 200 || resp.status > 599) {
        PARLEY_LOG(kLogWarn, "http3", "handler answered %s with status %d", r.path.c_str(),
                   resp.status);
        resp = {500, "text/plain", "internal error\n"};
      }
    }
    const bool send_body = r.method != "HEAD" && !resp.body.empty();
    const std::string status = std::to_string(resp.status);
    const std::string length = std::to_string(resp.body.size());
    static const std::string kAllowed = "GET, HEAD";
    nghttp3_nv nva[5];
    size_t n = 0;
    nva[n++] = make_nv(":status", status);
    if (!options_->server.empty()) nva[n++] = make_nv("server", options_->server);
    if (!resp.content_type.empty()) nva[n++] = make_nv("content-type", resp.content_type);
    nva[n++] = make_nv("content-length", length);
    if (allow) nva[n++] = make_nv("allow", kAllowed);
    if (send_body) r.body = std::move(resp.body);
    nghttp3_data_reader dr;
    dr.read_data = read_body;
    const int rv = nghttp3_conn_submit_response(h3_, stream_id, nva, n, send_body ? &dr : nullptr);
    if (rv != 0) return failed(rv, "submit response");
    return 0;
  }

  // --- nghttp3 callbacks (conn_user_data is the app, stream_user_data the Request) ---

  static Http3App *app(void *user) { return static_cast<Http3App *>(user); }

  static int http_begin_headers(nghttp3_conn *h3, int64_t stream_id, void *user, void *) {
    Http3App *a = app(user);
    auto &slot = a->requests_[stream_id];
    if (!slot) slot = std::make_unique<Request>();
    nghttp3_conn_set_stream_user_data(h3, stream_id, slot.get());
    return 0;
  }

  static int http_recv_header(nghttp3_conn *, int64_t, int32_t token, nghttp3_rcbuf *name,
                              nghttp3_rcbuf *value, uint8_t, void *user, void *stream_user) {
    auto *r = static_cast<Request *>(stream_user);
    if (r == nullptr) return 0;
    const nghttp3_vec n = nghttp3_rcbuf_get_buf(name);
    const nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
    r->header_bytes += n.len + v.len + kFieldOverhead;
    if (r->header_bytes > app(user)->options_->max_request_header_bytes) {
      // Keep decoding (QPACK state must stay in step) but store nothing more.
      r->too_large = true;
      r->method.clear();
      r->path.clear();
      return 0;
    }
    if (token == NGHTTP3_QPACK_TOKEN__METHOD) {
      r->method.assign(reinterpret_cast<const char *>(v.base), v.len);
    } else if (token == NGHTTP3_QPACK_TOKEN__PATH) {
      r->path.assign(reinterpret_cast<const char *>(v.base), v.len);
    }
    return 0;
  }

  static int http_end_stream(nghttp3_conn *, int64_t stream_id, void *user, void *stream_user) {
    auto *r = static_cast<Request *>(stream_user);
    if (r == nullptr) return 0;
    return app(user)->respond(stream_id, *r) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
  }

  // Request bodies (GET and HEAD have none worth keeping) are dropped and credited at once.
  static int http_recv_data(nghttp3_conn *, int64_t stream_id, const uint8_t *, size_t len,
                            void *user, void *) {
    app(user)->conn_.consume(stream_id, len);
    return 0;
  }

  static int http_deferred_consume(nghttp3_conn *, int64_t stream_id, size_t consumed,
                                   void *user, void *) {
    app(user)->conn_.consume(stream_id, consumed);
    return 0;
  }

  static int http_stream_close(nghttp3_conn *, int64_t stream_id, uint64_t, void *user, void *) {
    app(user)->requests_.erase(stream_id);
    return 0;
  }

  static int http_stop_sending(nghttp3_conn *, int64_t stream_id, uint64_t app_error_code,
                               void *user, void *) {
    app(user)->conn_.shutdown_stream_read(stream_id, app_error_code);
    return 0;
  }

  static int http_reset_stream(nghttp3_conn *, int64_t stream_id, uint64_t app_error_code,
                               void *user, void *) {
    app(user)->conn_.shutdown_stream_write(stream_id, app_error_code);
    return 0;
  }

  static nghttp3_ssize read_body(nghttp3_conn *, int64_t, nghttp3_vec *vec, size_t veccnt,
                                 uint32_t *pflags, void *, void *stream_user) {
    auto *r = static_cast<Request *>(stream_user);
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    if (r == nullptr || r->body_offered || veccnt == 0) return 0;
    r->body_offered = true;
    vec[0].base = reinterpret_cast<uint8_t *>(r->body.data());
    vec[0].len = r->body.size();
    return 1;
  }

  quic::Connection &conn_;
  std::shared_ptr<const HttpHandler> handler_;
  std::shared_ptr<const Http3Options> options_;
  nghttp3_conn *h3_ = nullptr;
  uint64_t error_code_ = NGHTTP3_H3_INTERNAL_ERROR;
  std::unordered_map<int64_t, std::unique_ptr<Request>> requests_;
};

}  // namespace

std::unique_ptr<quic::StreamApp> make_http3_app(quic::Connection &conn,
                                                std::shared_ptr<const HttpHandler> handler,
                                                std::shared_ptr<const Http3Options> options) {
  return std::make_unique<Http3App>(conn, std::move(handler), std::move(options));
}

void enable_http3(quic::EndpointConfig *config, HttpHandler handler, Http3Options options) {
  auto h = std::make_shared<const HttpHandler>(std::move(handler));
  auto o = std::make_shared<const Http3Options>(std::move(options));
  config->h3_app = [h, o](quic::Connection &conn) { return make_http3_app(conn, h, o); };
}

}  // namespace parley::relay
