// Seed files: exactly 32 raw bytes, mode 0600, written atomically.
#ifndef PARLEY_IDENTITY_SEED_FILE_H
#define PARLEY_IDENTITY_SEED_FILE_H

#include <memory>

#include "identity/identity.h"

namespace parley::identity {

// Reads the seed at `path` and derives its identity. The file is opened read-only and never
// modified. Refuses (before reading a byte) anything that is not a regular file of exactly
// kSeedLen bytes, or whose mode grants group/other any access.
// Returns kOk, kErrSeedFileNotFound, kErrSeedFilePermissions, kErrSeedFileInvalid, kErrIo,
// kErrNoMemory or kErrCrypto.
int load_seed_file(const char *path, std::unique_ptr<Identity> *out);

// Writes `id`'s seed to `path`: a mode-0600 temporary file in the same directory is written,
// fsync'd and then linked (no overwrite) or renamed (overwrite) into place, and the directory
// is fsync'd. Returns kOk, kErrSeedFileExists (only without `overwrite`; `path` untouched) or
// kErrIo. On error no temporary file is left behind.
int save_seed_file(const Identity &id, const char *path, bool overwrite);

}  // namespace parley::identity

#endif
