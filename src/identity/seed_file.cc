#include "identity/seed_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/error.h"
#include "base/log.h"

namespace parley::identity {

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int io_fail(const char *what, const char *path, int err) {
  return fail(kErrIo, "%s '%s': %s", what, path, std::strerror(err));
}

ssize_t read_full(int fd, uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::read(fd, buf + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    got += size_t(n);
  }
  return ssize_t(got);
}

std::string directory_of(const std::string &path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

int move_no_replace(const char *from, const char *to) {
#if PARLEY_HAVE_RENAMEAT2
  if (::renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
  // EINVAL: this file system lacks the flag (older NFS, some FUSE); ENOSYS: the kernel lacks
  // the call. link() below still refuses to replace.
  if (errno != EINVAL && errno != ENOSYS) return errno;
#endif
  // Not rename(), which would silently replace a file created after the caller checked: link()
  // creates the new name only if nothing has it, failing with EEXIST in one atomic step, like
  // O_EXCL. The temporary name is dropped afterwards.
  if (::link(from, to) != 0) return errno;
  if (::unlink(from) != 0) {
    // The seed is in place; the temporary name stays a second link to it (mode 0600).
    PARLEY_LOG(kLogWarn, "identity", "seed file '%s' written, but '%s' remains: %s", to, from,
               std::strerror(errno));
  }
  return 0;
}

int load_seed_file(const char *path, std::unique_ptr<Identity> *out) {
  Fd f;
  // O_NONBLOCK: a FIFO planted at the path must not hang us; it is rejected below.
  f.fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (f.fd < 0) {
    const int e = errno;
    if (e == ENOENT) return fail(kErrSeedFileNotFound, "seed file '%s' does not exist", path);
    return io_fail("cannot open seed file", path, e);
  }
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return io_fail("cannot stat seed file", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return fail(kErrSeedFileInvalid, "seed file '%s' is not a regular file", path);
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    // Somebody else could have planted a seed they know (ssh refuses such keys too).
    return fail(kErrSeedFilePermissions,
                "seed file '%s' is owned by uid %u, not by this process (uid %u) or root; it "
                "was not read", path, unsigned(st.st_uid), unsigned(::geteuid()));
  }
  if ((st.st_mode & 077) != 0) {
    return fail(kErrSeedFilePermissions,
                "seed file '%s' has mode %04o: group/others may access it, so the identity "
                "may be compromised; it was not read (check, then chmod 600 it)",
                path, unsigned(st.st_mode & 07777));
  }
  if (st.st_size != off_t(kSeedLen)) {
    return fail(kErrSeedFileInvalid, "seed file '%s' is %lld bytes, expected %zu", path,
                static_cast<long long>(st.st_size), kSeedLen);
  }
  SecretBuffer seed;
  int r = seed.allocate(kSeedLen + 1);
  if (r != kOk) return r;
  // Read one byte more than expected: the file may have changed size since fstat.
  const ssize_t n = read_full(f.fd, seed.data(), kSeedLen + 1);
  if (n < 0) return io_fail("cannot read seed file", path, errno);
  if (size_t(n) != kSeedLen) {
    return fail(kErrSeedFileInvalid, "seed file '%s' changed size while being read", path);
  }
  return Identity::from_seed(seed.data(), kSeedLen, out);
}

int save_seed_file(const Identity &id, const char *path, bool overwrite) {
  const std::string target(path);
  if (target.empty() || target.back() == '/') {
    return fail(kErrInvalidArgument, "seed file path '%s' names no file", path);
  }
  struct stat st;
  if (!overwrite && ::lstat(path, &st) == 0) {
    return fail(kErrSeedFileExists,
                "seed file '%s' already exists; it was left untouched", path);
  }

  std::string tmp = target + ".tmp-XXXXXX";
  Fd f;
  f.fd = ::mkostemp(&tmp[0], O_CLOEXEC);  // creates with mode 0600
  if (f.fd < 0) return io_fail("cannot create a temporary file next to", path, errno);

  auto abandon = [&](int code) {
    ::unlink(tmp.c_str());
    return code;
  };
  if (::fchmod(f.fd, 0600) != 0) return abandon(io_fail("cannot chmod", tmp.c_str(), errno));
  size_t written = 0;
  while (written < kSeedLen) {
    ssize_t n = ::write(f.fd, id.seed() + written, kSeedLen - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return abandon(io_fail("cannot write", tmp.c_str(), errno));
    written += size_t(n);
  }
  if (::fsync(f.fd) != 0) return abandon(io_fail("cannot fsync", tmp.c_str(), errno));
  if (::close(f.fd) != 0) {
    f.fd = -1;
    return abandon(io_fail("cannot close", tmp.c_str(), errno));
  }
  f.fd = -1;

  if (overwrite) {
    if (::rename(tmp.c_str(), path) != 0) {
      return abandon(io_fail("cannot move the seed file into place at", path, errno));
    }
  } else {
    // The seed may have been created since the check above: never clobber it.
    const int e = move_no_replace(tmp.c_str(), path);
    if (e != 0) {
      if (e == EEXIST) {
        return abandon(fail(kErrSeedFileExists,
                            "seed file '%s' already exists; it was left untouched", path));
      }
      return abandon(io_fail("cannot move the seed file into place at", path, e));
    }
  }

  // Make the new directory entry durable too. The file is complete and in place whatever
  // happens here, so a file system that cannot sync directories only earns a warning.
  const std::string dir = directory_of(target);
  Fd d;
  d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.fd < 0 || ::fsync(d.fd) != 0) {
    PARLEY_LOG(kLogWarn, "identity", "seed file '%s' written, but fsync of '%s' failed: %s",
               path, dir.c_str(), std::strerror(errno));
  }
  return kOk;
}

}  // namespace parley::identity
