/* The Swift module CParley is the public C API of libparley, unchanged. The include
 * directory comes from pkg-config (parley.pc) or from `swift build -Xcc -I<dir>`. */
#ifndef PARLEY_SWIFT_SHIM_H
#define PARLEY_SWIFT_SHIM_H
#include <parley/parley.h>
#endif
