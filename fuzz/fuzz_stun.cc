// libFuzzer target: the STUN parser and everything that reads a parsed message (every UDP
// datagram that starts like STUN reaches it, from anyone). Also feeds the responder, which
// must never answer with more than the request plus one XOR-MAPPED-ADDRESS.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/error.h"
#include "base/log.h"
#include "stun/message.h"
#include "stun/responder.h"

using namespace parley;
using namespace parley::stun;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  Message m;
  const int r = Message::parse(data, size, &m);
  if (r != kOk) {
    if (r != kErrStunMalformed && r != kErrStunFingerprint) std::abort();
    return 0;
  }
  SocketAddress a;
  uint32_t u32;
  uint64_t u64;
  int code;
  std::string_view reason;
  for (uint16_t t : {kAttrXorMappedAddress, kAttrResponseOrigin, kAttrOtherAddress}) {
    m.xor_address(t, &a);
    m.address(t, &a);
  }
  m.u32(kAttrPriority, &u32);
  m.u32(kAttrChangeRequest, &u32);
  m.u64(kAttrIceControlling, &u64);
  m.error_code(&code, &reason);
  const uint8_t key[] = "VOkJxbRl1RmTxUk/WvJxBt";
  m.check_integrity(key, sizeof key - 1);

  static Responder responder([] {
    ResponderConfig c;
    SocketAddress::parse("203.0.113.10:3478", &c.primary);
    SocketAddress::parse("203.0.113.11:3479", &c.alternate);
    return c;
  }());
  SocketAddress from, local;
  SocketAddress::parse("198.51.100.1:40000", &from);
  SocketAddress::parse("203.0.113.10:3478", &local);
  uint8_t out[kMaxMessageLen];
  Responder::Reply reply;
  if (responder.handle(data, size, from, local, out, sizeof out, &reply)) {
    if (reply.len > size + 12) std::abort();  // amplification
    Message back;
    if (Message::parse(out, reply.len, &back) != kOk) std::abort();
  }
  return 0;
}
