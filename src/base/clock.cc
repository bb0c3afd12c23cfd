#include "base/clock.h"

#include <uv.h>

namespace parley {

Timestamp monotonic_now() { return uv_hrtime(); }

}  // namespace parley
