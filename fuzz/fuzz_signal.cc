// libFuzzer target: the signaling decoder (every message from the relay or a peer passes it).
// A decoded message must re-encode and decode to the same message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "signal/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parley::log_set_level(parley::kLogOff);
  parley::signal::Message m, again;
  const int r = parley::signal::decode(data, size, &m);
  if (r != parley::kOk) {
    if (r != parley::kErrSignalMalformed && r != parley::kErrSignalUnknownType &&
        r != parley::kErrSignalVersion) {
      std::abort();
    }
    return 0;
  }
  std::vector<uint8_t> wire;
  if (parley::signal::encode(m, &wire) != parley::kOk) std::abort();
  if (parley::signal::decode(wire.data(), wire.size(), &again) != parley::kOk || !(again == m)) {
    std::abort();
  }
  return 0;
}
