// libFuzzer target: QUIC after the handshake. Two quic::Endpoints (a client and a server with
// identities from fixed seeds) complete a real handshake in memory; then the input makes
// either side send messages on streams, DATAGRAMs, end streams and close, while it also runs
// the network between them: delivery, loss, duplication, reordering (so stream data arrives
// out of order and ngtcp2 reassembles it before MessageReassembler cuts it into messages),
// corrupted packets and raw datagrams of its own. Everything the receiving side's code sees
// past decryption was sent by its authenticated peer, as in a real call; the raw and
// corrupted datagrams exercise the endpoint's routing and AEAD rejection.
//
// HTTP/3 is fuzz_http3.cc's (parley's own client speaks parley/1 only).
//
// Input: one config byte, then records until the input ends (a short last record is
// dropped). Integers big-endian. `side` is bit 7 of the op byte (0: client, 1: server).
//   config u8   bit 0: the server takes messages of at most 512 bytes (a larger one from the
//               client closes the connection with kErrMessageTooLarge); bits 1-7: unused
//   record: op u8, op & 0x7f taken mod 12:
//     0 clock      ms u16                the clock advances; expired timers run
//     1 open       --                    `side` opens a stream (up to 8 per side)
//     2 message    stream u8 | len u16 | bytes   on the stream % n of `side`'s streams (or
//                                        of the peer's that reached it); len cut to 4096 and
//                                        to what is left of the input
//     3 datagram   len u16 | bytes       len cut to 1200 and to what is left
//     4 end        stream u8             end_stream
//     5 deliver    n u8                  the next n % 8 + 1 packets toward `side` arrive
//     6 drop       --                    the next packet toward `side` is lost
//     7 dup        --                    the next packet toward `side` arrives twice
//     8 reorder    k u8                  the next packet toward `side` goes k % 8 places back
//     9 corrupt    at u16 | xor u8       the next packet toward `side`, one byte changed
//     10 raw       len u8 | bytes        a datagram from the peer's address (or, with len's
//                                        top bit, from a stranger)
//     11 close     code u8               `side` closes its connection (application code)
// The clock starts at 1 s and only moves forward. At the end the network is run dry.
//
// Checked: nothing crashes or leaks (sanitizers); every message a side receives is the next
// one its peer sent on that stream, whole and in order (streams never mix, nothing is
// invented), every DATAGRAM is one its peer sent; a connection emits kConnected once and
// kClosed at most once and nothing after it; a side refuses to send a message larger than its
// own limit; a message larger than the receiver's never arrives, and only such a message
// closes a connection with kErrMessageTooLarge.
//
// Each input runs its own handshake (a few ms with the sanitizers; most of the cost).
// corpus/quic_session/ seeds:
//   seed-messages-datagrams  two client streams, messages both ways, DATAGRAMs both ways
//                            (one empty), a stream ended, an empty message
//   seed-reorder-loss        a 3 KiB message over several packets, reordered, lost and
//                            duplicated, recovered by retransmission
//   seed-oversize            config 1: a 600-byte message to the 512-byte server
//   seed-corrupt-raw-close   a corrupted packet, raw datagrams (short header, a stranger's
//                            long header, an empty one), then the server closes
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "identity/identity.h"
#include "quic/endpoint.h"
#include "fuzz_support.h"

namespace {

using parley::fuzz::be;

using namespace parley;
using namespace parley::quic;

constexpr Timestamp kMs = kNanosPerMilli;
constexpr size_t kSmallLimit = 512;
constexpr size_t kMaxQueue = 512;

struct Packet {
  std::vector<uint8_t> data;
};

struct Side {
  std::unique_ptr<Endpoint> ep;
  SocketAddress addr;
  Connection *conn = nullptr;  // until its kClosed
  bool connected = false, closed = false;
  int close_error = 0;
  std::deque<Packet> inbox;  // packets on their way to this side
  std::vector<int64_t> streams;  // streams this side may send on
  // Messages the peer sent, per stream, not yet received here.
  std::map<int64_t, std::deque<std::vector<uint8_t>>> expected;
  std::set<std::vector<uint8_t>> datagrams_expected;  // the peer's DATAGRAMs
  size_t recv_limit = 64 * 1024;
  bool oversize_sent_to_me = false;  // the peer sent one above recv_limit
};

const identity::Identity &identity_of(int i) {
  static std::unique_ptr<identity::Identity> ids[2];
  if (!ids[i]) {
    uint8_t seed[32];
    std::memset(seed, 0x41 + i, sizeof seed);
    if (identity::Identity::from_seed(seed, sizeof seed, &ids[i]) != kOk) std::abort();
  }
  return *ids[i];
}

struct World {
  Side s[2];
  Timestamp now = kNanosPerSecond;

  void flush() {
    for (int round = 0; round < 4; ++round) {
      for (Side &x : s) x.ep->flush(now);
    }
  }
  void expire() {
    for (Side &x : s) {
      const Timestamp t = x.ep->next_expiry();
      if (t != 0 && t <= now) x.ep->handle_expiry(now);
    }
    flush();
  }
  void deliver(int to, const Packet &p) {
    s[to].ep->handle_datagram(p.data.data(), p.data.size(), s[1 - to].addr, now);
  }
  // Runs the network until both inboxes are empty (bounded), advancing time a little so
  // timers (ACK delay, PTO) make progress.
  void run_dry(int max_steps) {
    for (int i = 0; i < max_steps; ++i) {
      bool any = false;
      for (int to = 0; to < 2; ++to) {
        while (!s[to].inbox.empty()) {
          Packet p = std::move(s[to].inbox.front());
          s[to].inbox.pop_front();
          deliver(to, p);
          any = true;
        }
      }
      flush();
      if (!any) {
        Timestamp next = 0;
        for (Side &x : s) {
          const Timestamp t = x.ep->next_expiry();
          if (t != 0 && (next == 0 || t < next)) next = t;
        }
        if (next == 0 || next > now + 200 * kMs) return;
        if (next > now) now = next;
        expire();
      }
    }
  }
};

void on_event(World &w, int me, Connection &c, const Event &e) {
  Side &s = w.s[me];
  CHECK(!s.closed);
  switch (e.type) {
    case EventType::kConnected:
      CHECK(!s.connected);
      s.connected = true;
      s.conn = &c;
      break;
    case EventType::kMessage: {
      CHECK(s.connected);
      CHECK(e.len <= s.recv_limit);
      auto it = s.expected.find(e.stream_id);
      CHECK(it != s.expected.end() && !it->second.empty());
      CHECK(it->second.front().size() == e.len &&
            (e.len == 0 || std::memcmp(it->second.front().data(), e.data, e.len) == 0));
      it->second.pop_front();
      // A stream the peer opened: we may answer on it.
      bool known = false;
      for (int64_t id : s.streams) known |= id == e.stream_id;
      if (!known && s.streams.size() < 16) s.streams.push_back(e.stream_id);
      break;
    }
    case EventType::kDatagram:
      CHECK(s.connected);
      CHECK(s.datagrams_expected.count(std::vector<uint8_t>(e.data, e.data + e.len)) == 1);
      break;
    case EventType::kClosed:
      s.closed = true;
      s.close_error = e.close->error;
      s.conn = nullptr;
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  if (size < 1) return 0;
  const uint8_t cfg = data[0];
  World w;
  SocketAddress::parse("10.0.0.1:1000", &w.s[0].addr);
  SocketAddress::parse("10.0.0.2:2000", &w.s[1].addr);
  for (int i = 0; i < 2; ++i) {
    EndpointConfig ec;
    if (i == 1 && (cfg & 1)) ec.connection.max_message_size = kSmallLimit;
    w.s[i].recv_limit = ec.connection.max_message_size;
    const int peer = 1 - i;
    if (Endpoint::create(identity_of(i), ec,
                         [&w, peer](const SocketAddress &, const uint8_t *d, size_t n) {
                           if (w.s[peer].inbox.size() < kMaxQueue) {
                             w.s[peer].inbox.push_back({std::vector<uint8_t>(d, d + n)});
                           }
                         },
                         &w.s[i].ep) != kOk) {
      std::abort();
    }
    w.s[i].ep->set_local_address(w.s[i].addr);
  }
  const identity::Fingerprint fp0 = identity_of(0).fingerprint();
  const identity::Fingerprint fp1 = identity_of(1).fingerprint();
  w.s[1].ep->set_accept([&w, fp0](const SocketAddress &) {
    Endpoint::Incoming in;
    in.verify = [fp0](const identity::Fingerprint &f) { return f == fp0; };
    in.handler = [&w](Connection &c, const Event &e) { on_event(w, 1, c, e); };
    return in;
  });
  Connection *client = nullptr;
  if (w.s[0].ep->connect(w.s[1].addr, [fp1](const identity::Fingerprint &f) { return f == fp1; },
                         [&w](Connection &c, const Event &e) { on_event(w, 0, c, e); }, w.now,
                         &client) != kOk) {
    std::abort();
  }
  w.flush();
  w.run_dry(64);
  CHECK(w.s[0].connected && w.s[1].connected);

  size_t pos = 1;
  while (pos < size) {
    const uint8_t raw = data[pos++];
    const int me = raw >> 7, peer = 1 - me;
    Side &s = w.s[me];
    const uint8_t *p = data + pos;
    const size_t left = size - pos;
    switch ((raw & 0x7f) % 12) {
      case 0:
        if (left < 2) return 0;
        w.now += be(p, 2) * kMs;
        pos += 2;
        w.expire();
        break;
      case 1: {
        if (!s.conn || s.streams.size() >= 8) break;
        int64_t id = -1;
        const int r = s.conn->open_stream(&id);
        CHECK(r == kOk || r == kErrQueueFull || r == kErrClosed);
        if (r == kOk) s.streams.push_back(id);
        break;
      }
      case 2: {
        if (left < 3) return 0;
        const uint8_t which = p[0];
        size_t n = be(p + 1, 2);
        pos += 3;
        if (n > 4096) n = 4096;
        if (n > size - pos) n = size - pos;
        std::vector<uint8_t> msg(data + pos, data + pos + n);
        pos += n;
        if (!s.conn || s.streams.empty()) break;
        const int64_t id = s.streams[which % s.streams.size()];
        const int r = s.conn->send_message(id, msg.data(), msg.size());
        if (msg.size() > s.recv_limit) {
          CHECK(r == kErrMessageTooLarge);  // our limit holds for what we send too
          break;
        }
        CHECK(r == kOk || r == kErrInvalidArgument || r == kErrClosed || r == kErrQueueFull);
        if (r != kOk) break;
        if (msg.size() > w.s[peer].recv_limit) {
          w.s[peer].oversize_sent_to_me = true;  // must never arrive; closes the connection
        } else {
          w.s[peer].expected[id].push_back(std::move(msg));
        }
        break;
      }
      case 3: {
        if (left < 2) return 0;
        size_t n = be(p, 2);
        pos += 2;
        if (n > kMaxDatagramPayload) n = kMaxDatagramPayload;
        if (n > size - pos) n = size - pos;
        std::vector<uint8_t> d(data + pos, data + pos + n);
        pos += n;
        if (!s.conn) break;
        const int r = s.conn->send_datagram(d.data(), d.size());
        CHECK(r == kOk || r == kErrMessageTooLarge || r == kErrQueueFull || r == kErrClosed);
        if (r == kOk) w.s[peer].datagrams_expected.insert(std::move(d));
        break;
      }
      case 4: {
        if (left < 1) return 0;
        const uint8_t which = p[0];
        pos += 1;
        if (!s.conn || s.streams.empty()) break;
        const int r = s.conn->end_stream(s.streams[which % s.streams.size()]);
        CHECK(r == kOk || r == kErrInvalidArgument || r == kErrClosed);
        break;
      }
      case 5: {
        if (left < 1) return 0;
        const size_t n = p[0] % 8 + 1;
        pos += 1;
        for (size_t i = 0; i < n && !s.inbox.empty(); ++i) {
          Packet pk = std::move(s.inbox.front());
          s.inbox.pop_front();
          w.deliver(me, pk);
        }
        break;
      }
      case 6:
        if (!s.inbox.empty()) s.inbox.pop_front();
        break;
      case 7:
        if (!s.inbox.empty()) {
          Packet pk = s.inbox.front();
          w.deliver(me, pk);
          w.deliver(me, pk);
          s.inbox.pop_front();
        }
        break;
      case 8: {
        if (left < 1) return 0;
        const size_t k = p[0] % 8;
        pos += 1;
        if (s.inbox.size() < 2) break;
        Packet pk = std::move(s.inbox.front());
        s.inbox.pop_front();
        s.inbox.insert(s.inbox.begin() + long(std::min(k, s.inbox.size())), std::move(pk));
        break;
      }
      case 9: {
        if (left < 3) return 0;
        const size_t at = be(p, 2);
        const uint8_t x = p[2];
        pos += 3;
        if (s.inbox.empty()) break;
        Packet pk = std::move(s.inbox.front());
        s.inbox.pop_front();
        if (!pk.data.empty()) pk.data[at % pk.data.size()] ^= x;
        w.deliver(me, pk);
        break;
      }
      case 10: {
        if (left < 1) return 0;
        const bool stranger = p[0] & 0x80;
        size_t n = p[0] & 0x7f;
        pos += 1;
        if (n > size - pos) n = size - pos;
        std::vector<uint8_t> d(data + pos, data + pos + n);
        pos += n;
        SocketAddress from = w.s[peer].addr;
        if (stranger) SocketAddress::parse("192.0.2.99:4444", &from);
        s.ep->handle_datagram(d.data(), d.size(), from, w.now);
        break;
      }
      case 11: {
        if (left < 1) return 0;
        const uint8_t code = p[0];
        pos += 1;
        if (s.conn) s.conn->close(code, "fuzz");
        break;
      }
    }
    w.flush();
  }
  w.run_dry(256);
  // Only a message above the receiver's limit closes a connection with kErrMessageTooLarge.
  const bool oversize = w.s[0].oversize_sent_to_me || w.s[1].oversize_sent_to_me;
  for (const Side &s : w.s) CHECK(oversize || !s.closed || s.close_error != kErrMessageTooLarge);
  return 0;
}
