// libFuzzer target: the relay's HTTP/3 (relay/http3.h) after a completed handshake, without
// the relay's Router: a quic::Endpoint with enable_http3 and a fixed handler, and a minimal
// raw ngtcp2 + GnuTLS client (ALPN h3, no certificate, as an HTTP/3 client may be) in memory.
// After the handshake the input writes raw bytes on request streams and on unidirectional
// streams of its own (control, QPACK encoder/decoder, or anything), ends and resets them,
// and runs the network; so nghttp3 and the app parse whatever frames, headers and stream
// types the input makes, in whatever order QUIC delivers them.
//
// Input: records until the input ends (a short last record is dropped). Integers big-endian.
//   record: op u8 (taken mod 8), then
//     0 clock      ms u16                the clock advances; expired timers run
//     1 request    --                    the client opens a bidirectional stream (up to 16)
//     2 write      stream u8 | fin u8 | len u16 | bytes   on the stream % n of the client's
//                                        streams (len cut to what is left); fin & 1 ends it
//     3 uni        len u16 | bytes       the client opens a unidirectional stream with them
//     4 deliver    n u8                  up to n % 16 + 1 packets each way arrive
//     5 drop       --                    the next packet toward the server is lost
//     6 reorder    --                    the next packet toward the server goes to the back
//     7 reset      stream u8 | code u16  the client resets the stream (RESET_STREAM)
// The clock starts at 1 s and only moves forward. At the end the network is run dry.
//
// Checked: nothing crashes, leaks or reads out of bounds (sanitizers); the server never holds
// more than the one connection; the handler only sees GET or HEAD.
//
// corpus/http3/ seeds:
//   seed-get     a control stream with SETTINGS, then requests (QPACK static-table headers,
//                with FIN) for GET / (200), GET /nope (404) and DELETE / (405), answered
//   seed-junk    a request of random-looking frames, an unknown uni stream type, a reset
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "identity/identity.h"
#include "quic/connection.h"
#include "quic/endpoint.h"
#include "raw_quic_client.h"
#include "relay/http3.h"
#include "fuzz_support.h"

namespace {

using parley::fuzz::be;

using namespace parley;

constexpr Timestamp kMs = kNanosPerMilli;
constexpr size_t kMaxQueue = 512;

const identity::Identity &server_identity() {
  static std::unique_ptr<identity::Identity> id;
  if (!id) {
    uint8_t seed[32];
    std::memset(seed, 0x61, sizeof seed);
    if (identity::Identity::from_seed(seed, sizeof seed, &id) != kOk) std::abort();
  }
  return *id;
}

struct Chunk {
  const uint8_t *data;
  size_t len;
  bool fin;
};

struct ClientStream {
  int64_t id;
  std::deque<Chunk> pending;  // not yet handed to ngtcp2
  bool fin_queued = false, reset = false;
};

// Just enough of an ngtcp2 client to speak h3 bytes the input chooses.
struct Client {
  gnutls_certificate_credentials_t cred = nullptr;
  gnutls_session_t session = nullptr;
  ngtcp2_crypto_conn_ref ref{};
  ngtcp2_conn *conn = nullptr;
  SocketAddress local, remote;
  std::vector<ClientStream> streams;
  std::deque<std::vector<uint8_t>> storage;  // stream bytes stay put until the input ends

  ~Client() {
    if (conn) ngtcp2_conn_del(conn);
    if (session) gnutls_deinit(session);
    if (cred) gnutls_certificate_free_credentials(cred);
  }
  ngtcp2_path path() { return quic::make_path(local, remote); }
  bool start(Timestamp now) {
    if (gnutls_certificate_allocate_credentials(&cred) != 0) return false;
    if (gnutls_init(&session, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA) != 0) return false;
    if (gnutls_priority_set_direct(
            session,
            "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
            "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519",
            nullptr) != 0) {
      return false;
    }
    if (ngtcp2_crypto_gnutls_configure_client_session(session) != 0) return false;
    ref.get_conn = [](ngtcp2_crypto_conn_ref *r) { return static_cast<Client *>(r->user_data)->conn; };
    ref.user_data = this;
    gnutls_session_set_ptr(session, &ref);
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_datum_t alpn = {reinterpret_cast<unsigned char *>(const_cast<char *>("h3")), 2};
    gnutls_alpn_set_protocols(session, &alpn, 1, 0);

    ngtcp2_callbacks cb = testing::raw_client_callbacks();
    // The server's responses and streams: taken and credited at once.
    cb.recv_stream_data = [](ngtcp2_conn *c, uint32_t, int64_t id, uint64_t, const uint8_t *,
                             size_t len, void *, void *) {
      ngtcp2_conn_extend_max_stream_offset(c, id, len);
      ngtcp2_conn_extend_max_offset(c, len);
      return 0;
    };
    ngtcp2_cid dcid, scid;
    dcid.datalen = scid.datalen = 16;
    randombytes_buf(dcid.data, 16);
    randombytes_buf(scid.data, 16);
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now;
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_streams_bidi = 0;
    params.initial_max_streams_uni = 16;
    params.initial_max_data = 1 << 20;
    params.initial_max_stream_data_bidi_local = 1 << 18;
    params.initial_max_stream_data_uni = 1 << 18;
    params.max_idle_timeout = 30 * NGTCP2_SECONDS;
    const ngtcp2_path p = path();
    if (ngtcp2_conn_client_new(&conn, &dcid, &scid, &p, NGTCP2_PROTO_VER_V1, &cb, &settings,
                               &params, nullptr, this) != 0) {
      return false;
    }
    ngtcp2_conn_set_tls_native_handle(conn, session);
    return true;
  }
};

struct World {
  std::unique_ptr<quic::Endpoint> server;
  SocketAddress server_addr;
  Client client;
  std::deque<std::vector<uint8_t>> to_server, to_client;
  Timestamp now = kNanosPerSecond;
  bool client_dead = false;

  // Everything the client has to send now: stream bytes, then ACKs and the like.
  void client_write() {
    if (client_dead) return;
    uint8_t buf[1500];
    for (int guard = 0; guard < 256; ++guard) {
      ngtcp2_path_storage ps;
      ngtcp2_path_storage_zero(&ps);
      ngtcp2_pkt_info pi;
      ngtcp2_ssize n = 0;
      bool wrote_stream = false;
      for (ClientStream &s : client.streams) {
        if (s.pending.empty() || s.reset) continue;
        Chunk &c = s.pending.front();
        ngtcp2_vec v = {const_cast<uint8_t *>(c.data), c.len};
        ngtcp2_ssize taken = -1;
        n = ngtcp2_conn_writev_stream(client.conn, &ps.path, &pi, buf, sizeof buf, &taken,
                                      c.fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0, s.id, &v,
                                      c.len ? 1 : 0, now);
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
            n == NGTCP2_ERR_STREAM_NOT_FOUND) {
          s.pending.clear();  // the server stopped it, or flow control: give up on it
          n = 0;
          continue;
        }
        if (n < 0) {
          client_dead = true;
          return;
        }
        if (taken >= 0) {
          c.data += taken;
          c.len -= size_t(taken);
          if (c.len == 0) s.pending.pop_front();
        }
        wrote_stream = n > 0;
        break;
      }
      if (!wrote_stream) {
        n = ngtcp2_conn_write_pkt(client.conn, &ps.path, &pi, buf, sizeof buf, now);
        if (n < 0) {
          client_dead = true;
          return;
        }
        if (n == 0) return;
      }
      if (to_server.size() < kMaxQueue) to_server.emplace_back(buf, buf + n);
    }
  }
  void to_client_one() {
    std::vector<uint8_t> p = std::move(to_client.front());
    to_client.pop_front();
    if (client_dead) return;
    const ngtcp2_path path = client.path();
    ngtcp2_pkt_info pi{};
    if (ngtcp2_conn_read_pkt(client.conn, &path, &pi, p.data(), p.size(), now) != 0) {
      client_dead = true;
    }
  }
  void to_server_one() {
    std::vector<uint8_t> p = std::move(to_server.front());
    to_server.pop_front();
    server->handle_datagram(p.data(), p.size(), client.local, now);
  }
  void step(size_t n) {
    for (size_t i = 0; i < n && !to_server.empty(); ++i) to_server_one();
    server->flush(now);
    for (size_t i = 0; i < n && !to_client.empty(); ++i) to_client_one();
    client_write();
  }
  void expire() {
    const Timestamp t = server->next_expiry();
    if (t != 0 && t <= now) server->handle_expiry(now);
    server->flush(now);
    if (!client_dead && ngtcp2_conn_get_expiry(client.conn) <= now) {
      if (ngtcp2_conn_handle_expiry(client.conn, now) != 0) client_dead = true;
    }
    client_write();
  }
  void run_dry(int steps) {
    for (int i = 0; i < steps; ++i) {
      if (to_server.empty() && to_client.empty()) {
        now += 30 * kMs;
        expire();
        if (to_server.empty() && to_client.empty()) return;
      }
      step(kMaxQueue);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  World w;
  SocketAddress::parse("10.0.0.1:1000", &w.client.local);
  SocketAddress::parse("10.0.0.2:443", &w.server_addr);
  w.client.remote = w.server_addr;
  quic::EndpointConfig ec;
  ec.h3_max_requests = 8;
  relay::enable_http3(&ec, [](const std::string &method, const std::string &path) {
    CHECK(method == "GET" || method == "HEAD");
    relay::HttpResponse r;
    if (path == "/") {
      r.content_type = "text/plain";
      r.body = "ok";
    } else {
      r.status = 404;
    }
    return r;
  });
  if (quic::Endpoint::create(server_identity(), ec,
                             [&w](const SocketAddress &, const uint8_t *d, size_t n) {
                               if (w.to_client.size() < kMaxQueue) w.to_client.emplace_back(d, d + n);
                             },
                             &w.server) != kOk) {
    std::abort();
  }
  w.server->set_local_address(w.server_addr);
  w.server->set_accept([](const SocketAddress &) {
    quic::Endpoint::Incoming in;
    in.verify = [](const identity::Fingerprint &) { return true; };
    in.handler = [](quic::Connection &, const quic::Event &) {};
    return in;
  });
  if (!w.client.start(w.now)) std::abort();
  w.client_write();
  for (int i = 0; i < 32 && !ngtcp2_conn_get_handshake_completed(w.client.conn); ++i) {
    w.step(kMaxQueue);
    w.now += kMs;
  }
  CHECK(ngtcp2_conn_get_handshake_completed(w.client.conn));
  w.run_dry(16);

  size_t pos = 0;
  while (pos < size) {
    const uint8_t op = data[pos++] % 8;
    const uint8_t *p = data + pos;
    const size_t left = size - pos;
    switch (op) {
      case 0:
        if (left < 2) return 0;
        w.now += be(p, 2) * kMs;
        pos += 2;
        w.expire();
        break;
      case 1: {
        if (w.client_dead || w.client.streams.size() >= 16) break;
        int64_t id = -1;
        if (ngtcp2_conn_open_bidi_stream(w.client.conn, &id, nullptr) == 0) {
          w.client.streams.push_back({id, {}, false, false});
        }
        break;
      }
      case 2: {
        if (left < 4) return 0;
        const uint8_t which = p[0];
        const bool fin = p[1] & 1;
        size_t n = be(p + 2, 2);
        pos += 4;
        if (n > size - pos) n = size - pos;
        w.client.storage.emplace_back(data + pos, data + pos + n);
        pos += n;
        if (w.client.streams.empty()) break;
        ClientStream &s = w.client.streams[which % w.client.streams.size()];
        if (s.fin_queued || s.reset) break;
        s.pending.push_back({w.client.storage.back().data(), n, fin});
        s.fin_queued = fin;
        w.client_write();
        break;
      }
      case 3: {
        if (left < 2) return 0;
        size_t n = be(p, 2);
        pos += 2;
        if (n > size - pos) n = size - pos;
        w.client.storage.emplace_back(data + pos, data + pos + n);
        pos += n;
        if (w.client_dead) break;
        int64_t id = -1;
        if (ngtcp2_conn_open_uni_stream(w.client.conn, &id, nullptr) == 0) {
          ClientStream s{id, {}, false, false};
          s.pending.push_back({w.client.storage.back().data(), n, false});
          w.client.streams.push_back(std::move(s));
          w.client_write();
        }
        break;
      }
      case 4: {
        if (left < 1) return 0;
        const size_t n = p[0] % 16 + 1;
        pos += 1;
        w.step(n);
        break;
      }
      case 5:
        if (!w.to_server.empty()) w.to_server.pop_front();
        break;
      case 6:
        if (w.to_server.size() > 1) {
          std::vector<uint8_t> pk = std::move(w.to_server.front());
          w.to_server.pop_front();
          w.to_server.push_back(std::move(pk));
        }
        break;
      case 7: {
        if (left < 3) return 0;
        const uint8_t which = p[0];
        const uint64_t code = be(p + 1, 2);
        pos += 3;
        if (w.client_dead || w.client.streams.empty()) break;
        ClientStream &s = w.client.streams[which % w.client.streams.size()];
        if (s.reset) break;
        s.reset = true;
        s.pending.clear();
        ngtcp2_conn_shutdown_stream(w.client.conn, 0, s.id, code);
        w.client_write();
        break;
      }
    }
    CHECK(w.server->connection_count() <= 1);
  }
  w.run_dry(64);
  CHECK(w.server->connection_count() <= 1);
  return 0;
}
