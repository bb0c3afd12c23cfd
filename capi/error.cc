#include "base/error.h"

#include "parley/parley.h"

// The public numbers and the internal ones are one table (base/error_table.h): a code the
// header lacks, or numbers differently, does not compile. (The header's codes that the table
// lacks: tests/integration/api_tables.py.)
static_assert(static_cast<int>(PARLEY_OK) == static_cast<int>(parley::kOk), "PARLEY_OK");
#define PARLEY_SAME(pub, camel, number, description)                   \
  static_assert(static_cast<int>(PARLEY_ERR_##pub) == (number) &&      \
                    static_cast<int>(parley::kErr##camel) == (number), \
                "PARLEY_ERR_" #pub);
PARLEY_ERROR_TABLE(PARLEY_SAME)
#undef PARLEY_SAME

const char *parley_strerror(int err) { return parley::error_description(err); }

const char *parley_error_name(int err) {
  const char *name = parley::error_name(err);
  return name ? name : "unknown";
}

const char *parley_last_error_message(void) { return parley::last_error_message(); }
