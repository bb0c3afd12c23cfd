// libFuzzer target: peer certificate DER -> fingerprint (DER arrives from the network in
// every TLS handshake). Any input must end in kOk / kErrCertMalformed / kErrCertKeyType.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/error.h"
#include "base/log.h"
#include "identity/certificate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parley::log_set_level(parley::kLogOff);
  parley::identity::Fingerprint fp;
  const int r = parley::identity::certificate_fingerprint(data, size, &fp);
  if (r != parley::kOk && r != parley::kErrCertMalformed && r != parley::kErrCertKeyType) {
    std::abort();
  }
  return 0;
}
