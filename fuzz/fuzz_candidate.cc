// libFuzzer target: ICE candidate strings and transport addresses, both of which arrive from
// the peer through signaling. A successful parse must round-trip through to_string().
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/address.h"
#include "base/error.h"
#include "base/log.h"
#include "ice/candidate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parley::log_set_level(parley::kLogOff);
  const std::string text(reinterpret_cast<const char *>(data), size);
  parley::ice::Candidate c, again;
  if (parley::ice::Candidate::parse(text, &c) == parley::kOk) {
    if (parley::ice::Candidate::parse(c.to_string(), &again) != parley::kOk || !(again == c)) {
      std::abort();
    }
  }
  parley::SocketAddress a, b;
  if (parley::SocketAddress::parse(text, &a) == parley::kOk) {
    if (parley::SocketAddress::parse(a.to_string(), &b) != parley::kOk || a != b) std::abort();
  }
  return 0;
}
