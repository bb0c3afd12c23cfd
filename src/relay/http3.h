// The relay's HTTP/3 endpoints: a small nghttp3 server that rides on the relay's QUIC endpoint
// (same UDP port, same quic::Endpoint) for connections that negotiate ALPN "h3", next to
// parley/1. It answers GET and HEAD from a handler; everything else is refused here.
//
// Per connection it opens the control and QPACK encoder/decoder streams; each request is one
// peer-opened bidirectional stream. Resources are bounded: concurrent requests by QUIC's
// stream limit (EndpointConfig::h3_max_requests), request header fields by
// Http3Options::max_request_header_bytes (431 beyond it), no QPACK-blocked streams (nothing is
// buffered for a request whose headers cannot be decoded yet), request bodies are discarded as
// they arrive (and credited back), and the only buffer per request is the handler's response,
// kept until the client acknowledged it (ngtcp2 retransmits from it).
//
// Loop thread only, like the endpoint it is attached to.
#ifndef PARLEY_RELAY_HTTP3_H
#define PARLEY_RELAY_HTTP3_H

#include <functional>
#include <memory>
#include <string>

#include "quic/connection.h"
#include "quic/endpoint.h"

namespace parley::relay {

struct HttpResponse {
  int status = 200;          // 200..599; anything else is answered as 500
  std::string content_type;  // omitted when empty
  std::string body;
};

// Answers one request. `method` is "GET" or "HEAD" (for HEAD the body is computed but not
// sent; content-length still describes it); `path` is the request's :path as sent (query
// included). The handler owns the 404 for paths it does not serve; the caller owns 405
// (any other method, with "allow: GET, HEAD"), 431 (header fields too large) and 500 (status
// out of range, or the handler threw). Runs on the loop thread, inside the QUIC receive path:
// it must not block.
using HttpHandler =
    std::function<HttpResponse(const std::string &method, const std::string &path)>;

struct Http3Options {
  // Request header fields, counted as RFC 9114 4.2.2 does (name + value + 32 per field) and
  // advertised to the client as SETTINGS_MAX_FIELD_SECTION_SIZE.
  size_t max_request_header_bytes = 16 * 1024;
  // The "server" response header; empty: none.
  std::string server = "parley-relay";
};

// Makes `config`'s endpoint serve HTTP/3 with `handler`: sets config->h3_app, so the endpoint
// also offers ALPN "h3" as a server (see quic::EndpointConfig::h3_app for what that changes).
// The handler is copied into a shared, immutable holder used by every connection.
void enable_http3(quic::EndpointConfig *config, HttpHandler handler, Http3Options options = {});

// The StreamApp enable_http3 attaches to each h3 connection, for callers that build their own
// factory. `conn` owns the result.
std::unique_ptr<quic::StreamApp> make_http3_app(quic::Connection &conn,
                                                std::shared_ptr<const HttpHandler> handler,
                                                std::shared_ptr<const Http3Options> options);

}  // namespace parley::relay

#endif
