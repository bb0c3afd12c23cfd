// libFuzzer target: fingerprint text parsing (fingerprints arrive in signaling and from
// users). A successful parse must round-trip through the canonical form.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "identity/fingerprint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parley::log_set_level(parley::kLogOff);
  const std::string text(reinterpret_cast<const char *>(data), size);  // stops at a NUL
  parley::identity::Fingerprint fp, again;
  const int r = parley::identity::Fingerprint::parse(text.c_str(), &fp);
  if (r == parley::kOk) {
    if (parley::identity::Fingerprint::parse(fp.hex().c_str(), &again) != parley::kOk ||
        again != fp) {
      std::abort();
    }
  } else if (r != parley::kErrFingerprintInvalid) {
    std::abort();
  }
  return 0;
}
