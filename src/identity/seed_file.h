// Seed files: exactly 32 raw bytes, mode 0600, written atomically.
#ifndef PARLEY_IDENTITY_SEED_FILE_H
#define PARLEY_IDENTITY_SEED_FILE_H

#include <memory>

#include "identity/identity.h"

namespace parley::identity {

// Reads the seed at `path` and derives its identity. The file is opened read-only and never
// modified. Refuses (before reading a byte) anything that is not a regular file of exactly
// kSeedLen bytes, whose mode grants group/other any access, or that is owned by another user
// than the process's (root-owned files are accepted).
// Returns kOk, kErrSeedFileNotFound, kErrSeedFilePermissions, kErrSeedFileInvalid, kErrIo,
// kErrNoMemory or kErrCrypto.
int load_seed_file(const char *path, std::unique_ptr<Identity> *out);

// Writes `id`'s seed to `path`: a mode-0600 temporary file in the same directory is written,
// fsync'd and then renamed into place (without overwrite: move_no_replace), and the directory
// is fsync'd. Returns kOk, kErrSeedFileExists (only without `overwrite`; `path` untouched) or
// kErrIo. On error no temporary file is left behind.
int save_seed_file(const Identity &id, const char *path, bool overwrite);

// Moves `from` to `to` (same file system) unless `to` exists, atomically: renameat2
// RENAME_NOREPLACE where the system has it, else link() and unlink(). Returns 0, or an errno
// value (EEXIST: `to` exists and nothing changed; `from` is then still there).
int move_no_replace(const char *from, const char *to);

}  // namespace parley::identity

#endif
