// HTTP/3 on the relay's QUIC endpoint: a real HTTP/3 client (Debian's gtlsclient, the ngtcp2
// example client) against an endpoint that also serves parley/1, parley/1 clients on that
// same endpoint, and a parley/1 client without a certificate (a minimal raw ngtcp2 + GnuTLS
// client, since parley's own endpoint always presents one).
#include "relay/http3.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <sodium.h>

#include "quic_peer.h"
#include "raw_quic_client.h"
#include "relay_process.h"

extern char **environ;

namespace parley::relay {
namespace {

using parley::testing::on_loop;
using parley::testing::Peer;
using parley::testing::pin;
using parley::testing::Recorder;
using namespace std::chrono_literals;

constexpr char kGtlsclient[] = "/usr/bin/gtlsclient";

std::string big_body() {
  std::string s(100 * 1024, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = char('a' + (i * 7 + i / 251) % 26);
  return s;
}

std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Writes `id`'s certificate and private key as PEM files (what gtlsclient --cert/--key take).
bool write_pem(const identity::Identity &id, const std::string &cert_path,
               const std::string &key_path) {
  gnutls_datum_t der = {const_cast<uint8_t *>(id.certificate_der().data()),
                        unsigned(id.certificate_der().size())};
  gnutls_datum_t cert_pem{}, key_pem{};
  gnutls_x509_privkey_t key = nullptr;
  gnutls_datum_t x = {const_cast<uint8_t *>(id.public_key()), 32};
  gnutls_datum_t k = {const_cast<uint8_t *>(id.seed()), 32};
  const bool ok =
      gnutls_pem_base64_encode2("CERTIFICATE", &der, &cert_pem) == 0 &&
      gnutls_x509_privkey_init(&key) == 0 &&
      gnutls_x509_privkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_ED25519, &x, nullptr, &k) == 0 &&
      gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN,
                                        &key_pem) == 0;
  if (ok) {
    std::ofstream(cert_path, std::ios::binary)
        .write(reinterpret_cast<const char *>(cert_pem.data), cert_pem.size);
    std::ofstream(key_path, std::ios::binary)
        .write(reinterpret_cast<const char *>(key_pem.data), key_pem.size);
  }
  if (key) gnutls_x509_privkey_deinit(key);
  gnutls_free(cert_pem.data);
  gnutls_free(key_pem.data);
  return ok;
}

struct RunResult {
  int exit_status = -1;  // -1: did not exit normally
  std::string output;    // stdout and stderr together
};

// Runs a client to completion (killed after 60 s so a hung client cannot hang the test).
RunResult run(const std::vector<std::string> &args) {
  RunResult r;
  r.exit_status = testing::run_command(args, 60s, &r.output);
  return r;
}

class Http3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(loop_.start(), kOk);
    ASSERT_EQ(identity::Identity::generate(&relay_), kOk);
    ASSERT_EQ(identity::Identity::generate(&alice_), kOk);
    ASSERT_EQ(identity::Identity::generate(&mallory_), kOk);
    char tmpl[] = "/tmp/parley-h3-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    on_loop(loop_, [&] { peers_.clear(); });
    loop_.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Peer *make(const identity::Identity &id, quic::EndpointConfig cfg = {}) {
    return on_loop(loop_, [&] {
      peers_.push_back(std::make_unique<Peer>(loop_, id, cfg));
      return peers_.back().get();
    });
  }

  // The relay side: parley/1 (peers accepted by `verify`) and HTTP/3 on one endpoint.
  Peer *make_relay(Recorder &rec, quic::PeerVerifier verify = anyone(),
                   quic::EndpointConfig cfg = {}) {
    enable_http3(&cfg, [this](const std::string &method, const std::string &path) {
      ++requests_;
      methods_seen_ += method + " ";
      if (path == "/health") return HttpResponse{200, "text/plain", "ok\n"};
      if (path == "/big") return HttpResponse{200, "application/octet-stream", big_body()};
      return HttpResponse{404, "text/plain", "not found\n"};
    });
    Peer *p = make(*relay_, cfg);
    on_loop(loop_, [&] {
      p->endpoint->set_accept([verify, &rec](const SocketAddress &) {
        return quic::Endpoint::Incoming{verify, rec.handler()};
      });
    });
    return p;
  }

  static quic::PeerVerifier anyone() {
    return [](const identity::Fingerprint &) { return true; };
  }

  // gtlsclient against `relay`, fetching `paths` in one connection, saving bodies in dir_.
  // gtlsclient prints the response headers it gets as "[name: value]" lines (not with -q).
  RunResult fetch(Peer *relay, const std::vector<std::string> &paths,
                  const std::string &method = "GET", bool download = true,
                  const std::vector<std::string> &extra = {}) {
    const std::string port =
        std::to_string(on_loop(loop_, [&] { return relay->address().port(); }));
    std::vector<std::string> args = {kGtlsclient,
                                     "--exit-on-all-streams-close",
                                     "--no-quic-dump",
                                     "--no-http-dump",
                                     "--timeout=15s",
                                     "--handshake-timeout=15s",
                                     "--http-method=" + method,
                                     "127.0.0.1",
                                     port};
    if (download) args.insert(args.begin() + 1, "--download=" + dir_);
    args.insert(args.begin() + 1, extra.begin(), extra.end());
    for (const auto &p : paths) args.push_back("https://127.0.0.1:" + port + p);
    return run(args);
  }

  // Recorders outlive the endpoints (TearDown destroys those first): a packet arriving after
  // a test's last check still finds its handler's recorder alive.
  Recorder &recorder() {
    recorders_.push_back(std::make_unique<Recorder>());
    return *recorders_.back();
  }

  Loop loop_;
  std::vector<std::unique_ptr<Recorder>> recorders_;
  std::unique_ptr<identity::Identity> relay_, alice_, mallory_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::string dir_;
  std::atomic<int> requests_{0};
  std::string methods_seen_;  // loop thread only
};

bool has_gtlsclient() { return access(kGtlsclient, X_OK) == 0; }

TEST_F(Http3Test, GtlsclientGetsHealthAndNotFound) {
  if (!has_gtlsclient()) GTEST_SKIP() << kGtlsclient << " not installed";
  Recorder &rec = recorder();
  std::string alpn;
  bool h3 = false, has_peer = true;
  rec.also = [&](quic::Connection &c, const quic::Event &e) {  // on the loop, before notify
    if (e.type != quic::EventType::kConnected) return;
    alpn = c.alpn();
    h3 = c.is_h3();
    has_peer = c.has_peer();
  };
  Peer *relay = make_relay(rec);
  ASSERT_TRUE(relay->ok);
  const RunResult r = fetch(relay, {"/health", "/missing"});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_EQ(read_file(dir_ + "/health"), "ok\n") << r.output;
  EXPECT_EQ(read_file(dir_ + "/missing"), "not found\n");
  EXPECT_NE(r.output.find("[:status: 200]"), std::string::npos);
  EXPECT_NE(r.output.find("[:status: 404]"), std::string::npos);
  EXPECT_NE(r.output.find("[content-type: text/plain]"), std::string::npos);
  EXPECT_EQ(requests_.load(), 2);
  // The relay's handler saw the connection come and go (gtlsclient closes with H3_NO_ERROR).
  ASSERT_TRUE(rec.wait([&] { return rec.connected == 1 && rec.closes.size() == 1; }));
  EXPECT_TRUE(rec.messages.empty());
  EXPECT_EQ(rec.datagrams, 0u);
  EXPECT_EQ(rec.closes[0].error, kOk);
  EXPECT_TRUE(rec.closes[0].by_peer);
  EXPECT_EQ(rec.closes[0].app_code, 0x100u);
  on_loop(loop_, [&] {
    EXPECT_EQ(alpn, "h3");
    EXPECT_TRUE(h3);
    EXPECT_FALSE(has_peer) << "gtlsclient presents no certificate";
  });
}

// Finding 4: anonymous HTTP/3 connections counted against max_connections, so status
// clients could lock parley clients out. Now they have their own small cap and a short idle
// timeout, and do not count against max_connections.
TEST_F(Http3Test, H3ConnectionsHaveTheirOwnCapAndIdleTimeout) {
  if (!has_gtlsclient()) GTEST_SKIP() << kGtlsclient << " not installed";
  Recorder &rec = recorder();
  std::atomic<int> h3_connected{0};
  std::atomic<bool> h3_closed{false};
  std::chrono::steady_clock::time_point h3_up{}, h3_down{};
  rec.also = [&](quic::Connection &c, const quic::Event &e) {
    if (!c.is_h3()) return;
    if (e.type == quic::EventType::kConnected && ++h3_connected == 1) {
      h3_up = std::chrono::steady_clock::now();
    }
    if (e.type == quic::EventType::kClosed && !h3_closed.load()) {
      h3_down = std::chrono::steady_clock::now();  // before the flag the test thread reads
      h3_closed = true;
    }
  };
  quic::EndpointConfig cfg;
  cfg.max_connections = 1;
  cfg.h3_max_connections = 1;
  cfg.h3_idle_timeout_ms = 4000;
  Peer *relay = make_relay(rec, anyone(), cfg);
  ASSERT_TRUE(relay->ok);
  const std::string port =
      std::to_string(on_loop(loop_, [&] { return relay->address().port(); }));
  // A status client that stays connected after its request (no --exit-on-all-streams-close)
  // until an idle timeout: its own is 15 s, the relay's 4 s.
  RunResult lingering;
  std::thread holder([&] {
    lingering = run({kGtlsclient, "--no-quic-dump", "--no-http-dump", "--timeout=15s",
                     "127.0.0.1", port, "https://127.0.0.1:" + port + "/health"});
  });
  ASSERT_TRUE(rec.wait([&] { return h3_connected.load() == 1; }));
  // A second one is over the h3 cap: its handshake fails (gtlsclient still exits 0).
  const RunResult second = fetch(relay, {"/health"}, "GET", false,
                                 {"--handshake-timeout=3s", "--timeout=3s"});
  EXPECT_EQ(second.output.find("[:status: 200]"), std::string::npos) << second.output;
  EXPECT_EQ(h3_connected.load(), 1);
  EXPECT_EQ(on_loop(loop_, [&] { return relay->endpoint->stats().refused_h3; }), 1u);
  // The h3 connection does not take the one parley/1 slot (once the refused one is gone:
  // it was counted while its handshake ran).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (on_loop(loop_, [&] { return relay->endpoint->connection_count(); }) > 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);  // polling a condition, with a deadline
  }
  Peer *a = make(*alice_);
  Recorder &client = recorder();
  on_loop(loop_, [&] { a->connect(relay->address(), pin(relay_->fingerprint()), client.handler()); });
  EXPECT_TRUE(client.wait([&] { return client.connected == 1 || !client.closes.empty(); }));
  EXPECT_EQ(client.connected, 1) << (client.closes.empty() ? "" : client.closes[0].reason);
  // The relay lets the quiet status client go at its short idle timeout.
  EXPECT_TRUE(rec.wait([&] { return h3_closed.load(); }, 10s));
  holder.join();
  on_loop(loop_, [&] { rec.also = nullptr; });  // it refers to this test's locals
  const auto held = std::chrono::duration_cast<std::chrono::milliseconds>(h3_down - h3_up);
  EXPECT_LT(held.count(), 8000) << "h3 connection held " << held.count() << " ms";
}

TEST_F(Http3Test, LargeBodyArrivesIntact) {
  if (!has_gtlsclient()) GTEST_SKIP() << kGtlsclient << " not installed";
  Recorder &rec = recorder();
  Peer *relay = make_relay(rec);
  const RunResult r = fetch(relay, {"/big"});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  const std::string got = read_file(dir_ + "/big");
  EXPECT_EQ(got.size(), 100u * 1024);
  EXPECT_TRUE(got == big_body()) << "body differs";
  EXPECT_NE(r.output.find("[content-length: 102400]"), std::string::npos);
}

TEST_F(Http3Test, HeadHasLengthButNoBodyAndOtherMethodsAre405) {
  if (!has_gtlsclient()) GTEST_SKIP() << kGtlsclient << " not installed";
  Recorder &rec = recorder();
  Peer *relay = make_relay(rec);
  RunResult r = fetch(relay, {"/big"}, "HEAD");
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_EQ(read_file(dir_ + "/big"), "");
  EXPECT_NE(r.output.find("[:status: 200]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[content-length: 102400]"), std::string::npos);
  r = fetch(relay, {"/health"}, "DELETE");
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_NE(r.output.find("[:status: 405]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[allow: GET, HEAD]"), std::string::npos);
  EXPECT_EQ(read_file(dir_ + "/health"), "method not allowed\n");
  EXPECT_EQ(requests_.load(), 1) << "the handler only sees GET and HEAD";
  EXPECT_EQ(on_loop(loop_, [&] { return methods_seen_; }), "HEAD ");
}

// An HTTP/3 client that does present a certificate is known by its fingerprint, but not pinned:
// the relay only admits Alice over parley/1, and Mallory still gets the HTTP/3 answer.
TEST_F(Http3Test, ClientCertificateIsReducedToAFingerprintNotPinned) {
  if (!has_gtlsclient()) GTEST_SKIP() << kGtlsclient << " not installed";
  Recorder &rec = recorder();
  identity::Fingerprint seen;
  bool has_peer = false;
  rec.also = [&](quic::Connection &c, const quic::Event &e) {
    if (e.type != quic::EventType::kConnected) return;
    has_peer = c.has_peer();
    seen = c.peer();
  };
  Peer *relay = make_relay(rec, pin(alice_->fingerprint()));
  const std::string cert = dir_ + "/mallory.crt", key = dir_ + "/mallory.key";
  ASSERT_TRUE(write_pem(*mallory_, cert, key));
  const RunResult r = fetch(relay, {"/health"}, "GET", true, {"--cert=" + cert, "--key=" + key});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_EQ(read_file(dir_ + "/health"), "ok\n") << r.output;
  ASSERT_TRUE(rec.wait([&] { return rec.connected == 1 && rec.closes.size() == 1; }));
  on_loop(loop_, [&] {
    EXPECT_TRUE(has_peer);
    EXPECT_EQ(seen, mallory_->fingerprint());
  });
}

// Request header fields beyond the limit (here a 17 KiB :path) are answered with 431, without
// bothering the handler.
TEST_F(Http3Test, OversizedRequestHeadersGet431) {
  if (!has_gtlsclient()) GTEST_SKIP() << kGtlsclient << " not installed";
  Recorder &rec = recorder();
  Peer *relay = make_relay(rec);
  const RunResult r = fetch(relay, {"/" + std::string(17 * 1024, 'x')}, "GET", false);
  EXPECT_EQ(r.exit_status, 0) << r.output.substr(0, 4096);
  EXPECT_NE(r.output.find("[:status: 431]"), std::string::npos) << r.output.substr(0, 4096);
  EXPECT_EQ(requests_.load(), 0);
}

// Without h3 enabled the endpoint does not offer it: an HTTP/3 client is refused during the
// handshake (TLS no_application_protocol) and never reaches the handler.
TEST_F(Http3Test, H3IsOnlyOfferedWhenEnabled) {
  if (!has_gtlsclient()) GTEST_SKIP() << kGtlsclient << " not installed";
  Recorder &rec = recorder();
  Peer *plain = make(*relay_);
  on_loop(loop_, [&] {
    plain->endpoint->set_accept([&rec](const SocketAddress &) {
      return quic::Endpoint::Incoming{anyone(), rec.handler()};
    });
  });
  const RunResult r = fetch(plain, {"/health"});
  EXPECT_EQ(read_file(dir_ + "/health"), "");
  EXPECT_EQ(r.output.find("[:status:"), std::string::npos) << r.output;
  ASSERT_TRUE(rec.wait([&] { return !rec.closes.empty(); }));
  EXPECT_EQ(rec.connected, 0);
  EXPECT_EQ(rec.closes[0].error, kErrTransport);
  EXPECT_FALSE(rec.closes[0].by_peer);
  EXPECT_NE(rec.closes[0].reason.find("ALPN"), std::string::npos) << rec.closes[0].reason;
}

// parley/1 on the h3-enabled endpoint is unchanged: pinned mutual TLS, messages, datagrams.
TEST_F(Http3Test, ParleyClientStillConnectsAndIsStillPinned) {
  Recorder &server = recorder();
  server.also = [](quic::Connection &c, const quic::Event &e) {
    if (e.type == quic::EventType::kMessage) c.send_message(e.stream_id, e.data, e.len);
  };
  Peer *relay = make_relay(server, pin(alice_->fingerprint()));
  Peer *a = make(*alice_);
  Recorder &client = recorder();
  quic::Connection *c = nullptr;
  on_loop(loop_, [&] {
    c = a->connect(relay->address(), pin(relay_->fingerprint()), client.handler());
  });
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(client.wait([&] { return client.connected == 1; }));
  const std::vector<uint8_t> hello = {'h', 'i'};
  on_loop(loop_, [&] {
    EXPECT_STREQ(c->alpn(), "parley/1");
    EXPECT_FALSE(c->is_h3());
    int64_t sid;
    ASSERT_EQ(c->open_stream(&sid), kOk);
    ASSERT_EQ(c->send_message(sid, hello.data(), hello.size()), kOk);
    a->driver->kick();
  });
  ASSERT_TRUE(client.wait([&] { return client.messages.size() == 1; }));
  EXPECT_EQ(client.messages[0], hello);
  ASSERT_TRUE(server.wait([&] { return server.connected == 1; }));

  // The verifier still decides for parley/1: Mallory is refused with the identity error.
  Peer *m = make(*mallory_);
  Recorder &refused = recorder();
  on_loop(loop_, [&] {
    m->connect(relay->address(), pin(relay_->fingerprint()), refused.handler());
  });
  // (TLS 1.3: the client's handshake may complete before the server judges its certificate.)
  ASSERT_TRUE(refused.wait([&] { return !refused.closes.empty(); }));
  EXPECT_EQ(refused.closes[0].error, kErrPeerIdentity);
  EXPECT_TRUE(refused.closes[0].by_peer);
}

// --- a parley/1 client without a certificate -------------------------------------------------

// Just enough of an ngtcp2 + GnuTLS client to offer ALPN parley/1 with no certificate and
// report how the server ended the handshake. Blocking, on its own UDP socket.
class CertlessClient {
 public:
  struct Outcome {
    bool closed_by_server = false;
    uint8_t ccerr_type = 0;
    uint64_t error_code = 0;
  };

  ~CertlessClient() {
    if (conn_) ngtcp2_conn_del(conn_);
    if (session_) gnutls_deinit(session_);
    if (cred_) gnutls_certificate_free_credentials(cred_);
    if (fd_ >= 0) ::close(fd_);
  }

  bool start(const SocketAddress &server) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd_ < 0 || ::connect(fd_, server.sockaddr_ptr(), server.sockaddr_len()) != 0) return false;
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    getsockname(fd_, reinterpret_cast<sockaddr *>(&local), &local_len);
    if (gnutls_certificate_allocate_credentials(&cred_) != 0) return false;  // no certificate
    if (gnutls_init(&session_, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA) != 0) return false;
    if (gnutls_priority_set_direct(
            session_,
            "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
            "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519",
            nullptr) != 0) {
      return false;
    }
    if (ngtcp2_crypto_gnutls_configure_client_session(session_) != 0) return false;
    ref_.get_conn = [](ngtcp2_crypto_conn_ref *r) {
      return static_cast<CertlessClient *>(r->user_data)->conn_;
    };
    ref_.user_data = this;
    gnutls_session_set_ptr(session_, &ref_);
    gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, cred_);
    gnutls_datum_t alpn = {reinterpret_cast<unsigned char *>(const_cast<char *>("parley/1")), 8};
    gnutls_alpn_set_protocols(session_, &alpn, 1, 0);

    ngtcp2_callbacks cb = testing::raw_client_callbacks();
    ngtcp2_cid dcid, scid;
    dcid.datalen = scid.datalen = 16;
    randombytes_buf(dcid.data, 16);
    randombytes_buf(scid.data, 16);
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = monotonic_now();
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_streams_bidi = 4;
    params.initial_max_data = 1 << 20;
    params.initial_max_stream_data_bidi_local = 1 << 18;
    params.max_idle_timeout = 10 * NGTCP2_SECONDS;
    remote_ = server;
    local_ = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr *>(&local));
    const ngtcp2_path path = this->path();
    if (ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                               &params, nullptr, this) != 0) {
      return false;
    }
    ngtcp2_conn_set_tls_native_handle(conn_, session_);
    return true;
  }

  // Drives the handshake until the server closes the connection or `deadline` passes.
  Outcome run(std::chrono::steady_clock::time_point deadline) {
    Outcome out;
    uint8_t buf[2048];
    while (std::chrono::steady_clock::now() < deadline) {
      for (;;) {  // send what ngtcp2 has
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_pkt_info pi;
        const ngtcp2_ssize n =
            ngtcp2_conn_write_pkt(conn_, &ps.path, &pi, buf, sizeof buf, monotonic_now());
        if (n <= 0) break;
        ::send(fd_, buf, size_t(n), 0);
      }
      const Timestamp expiry = ngtcp2_conn_get_expiry(conn_), now = monotonic_now();
      int wait_ms = expiry > now ? int(std::min<Timestamp>((expiry - now) / 1000000 + 1, 100)) : 0;
      pollfd p = {fd_, POLLIN, 0};
      if (::poll(&p, 1, wait_ms) > 0) {
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) continue;
        const ngtcp2_path path = this->path();
        ngtcp2_pkt_info pi{};
        const int rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, buf, size_t(n), monotonic_now());
        if (rv == NGTCP2_ERR_DRAINING) {
          const ngtcp2_ccerr *cc = ngtcp2_conn_get_ccerr(conn_);
          out.closed_by_server = true;
          out.ccerr_type = uint8_t(cc->type);
          out.error_code = cc->error_code;
          return out;
        }
        if (rv != 0) return out;
      } else if (ngtcp2_conn_handle_expiry(conn_, monotonic_now()) != 0) {
        return out;
      }
    }
    return out;
  }

 private:
  ngtcp2_path path() {
    ngtcp2_path p;
    p.local.addr = const_cast<ngtcp2_sockaddr *>(
        reinterpret_cast<const ngtcp2_sockaddr *>(local_.sockaddr_ptr()));
    p.local.addrlen = local_.sockaddr_len();
    p.remote.addr = const_cast<ngtcp2_sockaddr *>(
        reinterpret_cast<const ngtcp2_sockaddr *>(remote_.sockaddr_ptr()));
    p.remote.addrlen = remote_.sockaddr_len();
    p.user_data = nullptr;
    return p;
  }

  int fd_ = -1;
  SocketAddress local_, remote_;
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_session_t session_ = nullptr;
  ngtcp2_crypto_conn_ref ref_{};
  ngtcp2_conn *conn_ = nullptr;
};

// Refused the same way with and without h3 (requested vs required certificate): the server
// reports the identity error, the client gets TLS alert certificate_required (116), which a
// parley client reports as kErrPeerIdentity.
TEST_F(Http3Test, ParleyClientWithoutCertificateIsRefused) {
  for (const bool with_h3 : {true, false}) {
    SCOPED_TRACE(with_h3 ? "h3 enabled" : "parley/1 only");
    Recorder &server = recorder();
    Peer *relay = nullptr;
    if (with_h3) {
      relay = make_relay(server);
    } else {
      relay = make(*relay_);
      on_loop(loop_, [&] {
        relay->endpoint->set_accept([&server](const SocketAddress &) {
          return quic::Endpoint::Incoming{anyone(), server.handler()};
        });
      });
    }
    CertlessClient client;
    ASSERT_TRUE(client.start(on_loop(loop_, [&] { return relay->address(); })));
    const CertlessClient::Outcome out = client.run(std::chrono::steady_clock::now() + 10s);
    ASSERT_TRUE(out.closed_by_server);
    EXPECT_EQ(out.ccerr_type, NGTCP2_CCERR_TYPE_TRANSPORT);
    EXPECT_EQ(out.error_code, NGTCP2_CRYPTO_ERROR | GNUTLS_A_CERTIFICATE_REQUIRED);
    EXPECT_TRUE(quic::is_identity_alert(uint8_t(out.error_code & 0xff)));
    ASSERT_TRUE(server.wait([&] { return !server.closes.empty(); }));
    EXPECT_EQ(server.connected, 0);
    EXPECT_EQ(server.closes[0].error, kErrPeerIdentity) << server.closes[0].reason;
    EXPECT_FALSE(server.closes[0].by_peer);
  }
}

}  // namespace
}  // namespace parley::relay
