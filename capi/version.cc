#include "parley/parley.h"

uint32_t parley_version(void) { return PARLEY_VERSION_NUM; }

const char *parley_version_string(void) { return PARLEY_VERSION_STRING; }
