#include "stun/responder.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"

namespace parley::stun {

namespace {

// The address a CHANGE-REQUEST asks to answer from, given the address it arrived on.
SocketAddress changed_source(const SocketAddress &local, const ResponderConfig &c,
                             uint32_t flags) {
  SocketAddress src = local;
  if (flags & kChangeIp) {
    const SocketAddress &other = local.same_ip(c.primary) ? c.alternate : c.primary;
    SocketAddress::from_ip_bytes(other.ip_bytes(), other.ip_len(), src.port(), &src);
  }
  if (flags & kChangePort) {
    src.set_port(local.port() == c.primary.port() ? c.alternate.port() : c.primary.port());
  }
  return src;
}

}  // namespace

bool Responder::handle(const uint8_t *data, size_t len, const SocketAddress &from,
                       const SocketAddress &local, uint8_t *out, size_t cap, Reply *reply) {
  Message req;
  if (Message::parse(data, len, &req) != kOk) {
    ++stats_.dropped_malformed;
    return false;
  }
  if (req.message_class() != kRequest || req.method() != kBinding) {
    ++stats_.dropped_not_request;
    return false;
  }
  ++stats_.requests;
  const size_t mapped_attr = MessageBuilder::attribute_size(from.ip_len() + 4);
  const size_t budget = len + mapped_attr;

  if (req.unknown_required_count() != 0) {
    PARLEY_LOG(kLogDebug, "stun", "420 to %s: unknown attribute 0x%04x%s",
               from.to_string().c_str(), req.unknown_required()[0],
               req.unknown_required_count() > 1 ? " (and more)" : "");
    return error_reply(req, 420, "Unknown Attribute", req.unknown_required(),
                       req.unknown_required_count(), budget, from, local, out, cap, reply);
  }

  SocketAddress source = local;
  if (req.has(kAttrChangeRequest)) {
    uint32_t flags = 0;
    if (req.u32(kAttrChangeRequest, &flags) != kOk) {
      return error_reply(req, 400, "Bad Request", nullptr, 0, budget, from, local, out, cap,
                         reply);
    }
    flags &= kChangeIp | kChangePort;
    if (flags != 0) {
      if (!config_.alternate.is_set() || config_.alternate.family() != local.family()) {
        // RFC 5780 7.2: a server that cannot change address answers 420.
        const uint16_t change_request = kAttrChangeRequest;
        return error_reply(req, 420, "Unknown Attribute", &change_request, 1, budget, from,
                           local, out, cap, reply);
      }
      source = changed_source(local, config_, flags);
    }
  }

  MessageBuilder b(out, std::min(cap, budget));
  b.start(req.method(), kSuccessResponse, req.transaction_id());
  b.add_xor_address(kAttrXorMappedAddress, from);
  // Optional attributes in order of usefulness, each only if it fits the budget.
  auto fits = [&](size_t value_len) {
    return b.size() + MessageBuilder::attribute_size(value_len) <= budget;
  };
  if (config_.alternate.is_set() && config_.alternate.family() == local.family() &&
      fits(4 + local.ip_len())) {
    // RFC 5780 7.4: the address a change of IP *and* port would answer from, which depends
    // on which of the four local addresses the request arrived on.
    b.add_address(kAttrOtherAddress, changed_source(local, config_, kChangeIp | kChangePort));
  }
  if (fits(4 + source.ip_len())) b.add_address(kAttrResponseOrigin, source);
  // SOFTWARE only if FINGERPRINT still fits after it: FINGERPRINT matters more for demux.
  if (!config_.software.empty() &&
      b.size() + MessageBuilder::attribute_size(config_.software.size()) +
              MessageBuilder::attribute_size(4) <= budget) {
    b.add_string(kAttrSoftware, config_.software);
  }
  if (fits(4)) b.add_fingerprint();
  size_t n;
  if (b.finish(&n) != kOk) {
    ++stats_.dropped_budget;
    return false;
  }
  ++stats_.responses;
  *reply = {n, source, from};
  return true;
}

bool Responder::error_reply(const Message &req, int code, const char *reason,
                            const uint16_t *unknown, size_t unknown_count, size_t budget,
                            const SocketAddress &from, const SocketAddress &local,
                            uint8_t *out, size_t cap, Reply *reply) {
  const size_t unknown_len =
      unknown_count ? MessageBuilder::attribute_size(2 * unknown_count) : 0;
  // The reason phrase is the first thing to shrink when the budget is tight.
  std::string_view phrase(reason);
  while (!phrase.empty() &&
         kHeaderLen + MessageBuilder::attribute_size(4 + phrase.size()) + unknown_len > budget) {
    phrase.remove_suffix(1);
  }
  MessageBuilder b(out, std::min(cap, budget));
  b.start(req.method(), kErrorResponse, req.transaction_id());
  b.add_error_code(code, phrase);
  if (unknown_count) b.add_unknown_attributes(unknown, unknown_count);
  size_t n;
  if (b.finish(&n) != kOk) {
    ++stats_.dropped_budget;
    return false;
  }
  ++stats_.error_responses;
  *reply = {n, local, from};
  return true;
}

}  // namespace parley::stun
