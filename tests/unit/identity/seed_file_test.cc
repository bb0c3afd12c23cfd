#include "identity/seed_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "test_vectors.h"

namespace parley::identity {
namespace {

// A fresh private directory per test, removed afterwards.
class SeedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/parley-seedfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(Identity::from_seed(parley::testing::kVectorSeed, 32, &id_), kOk);
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string path(const char *name) const { return dir_ + "/" + name; }

  static void write_file(const std::string &p, const std::vector<uint8_t> &bytes, mode_t mode) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), ssize_t(bytes.size()));
    ASSERT_EQ(::fchmod(fd, mode), 0);
    ::close(fd);
  }
  // Content, mode and modification time: what "untouched" means.
  struct Snapshot {
    std::vector<uint8_t> bytes;
    mode_t mode;
    struct timespec mtime;
    bool operator==(const Snapshot &o) const {
      return bytes == o.bytes && mode == o.mode && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };
  static Snapshot snapshot(const std::string &p) {
    Snapshot s{};
    struct stat st;
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    s.mode = st.st_mode;
    s.mtime = st.st_mtim;
    std::ifstream in(p, std::ios::binary);
    s.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return s;
  }
  std::vector<std::string> entries() const {
    std::string cmd = "ls -A '" + dir_ + "'";
    std::vector<std::string> out;
    FILE *f = popen(cmd.c_str(), "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      line[strcspn(line, "\n")] = 0;
      out.push_back(line);
    }
    if (f) pclose(f);
    return out;
  }

  std::string dir_;
  std::unique_ptr<Identity> id_;
};

TEST_F(SeedFileTest, RoundTripWithMode0600) {
  const std::string p = path("id.seed");
  ASSERT_EQ(save_seed_file(*id_, p.c_str(), false), kOk);
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  std::unique_ptr<Identity> loaded;
  ASSERT_EQ(load_seed_file(p.c_str(), &loaded), kOk);
  EXPECT_EQ(loaded->fingerprint(), id_->fingerprint());
  EXPECT_EQ(loaded->certificate_der(), id_->certificate_der());
  EXPECT_EQ(entries(), std::vector<std::string>{"id.seed"}) << "no temporary file left";
}

TEST_F(SeedFileTest, RefusesToOverwriteUnlessAsked) {
  const std::string p = path("id.seed");
  write_file(p, std::vector<uint8_t>(32, 7), 0600);
  const Snapshot before = snapshot(p);
  EXPECT_EQ(save_seed_file(*id_, p.c_str(), false), kErrSeedFileExists);
  EXPECT_TRUE(snapshot(p) == before);
  EXPECT_EQ(entries(), std::vector<std::string>{"id.seed"});

  ASSERT_EQ(save_seed_file(*id_, p.c_str(), true), kOk);
  std::unique_ptr<Identity> loaded;
  ASSERT_EQ(load_seed_file(p.c_str(), &loaded), kOk);
  EXPECT_EQ(loaded->fingerprint(), id_->fingerprint());
  EXPECT_EQ(entries(), std::vector<std::string>{"id.seed"});
}

// The atomic step itself, whichever path this build compiled (renameat2, or link() with
// PARLEY_FORCE_FALLBACKS): a target that appears after save_seed_file's check, even a
// dangling symlink, is never replaced.
TEST_F(SeedFileTest, MoveNoReplaceNeverReplaces) {
  const std::string from = path("new.tmp"), to = path("id.seed"), link = path("dangling");
  write_file(from, std::vector<uint8_t>(32, 1), 0600);
  write_file(to, std::vector<uint8_t>(32, 2), 0600);
  ASSERT_EQ(::symlink(path("nowhere").c_str(), link.c_str()), 0);
  const Snapshot from_before = snapshot(from), to_before = snapshot(to);

  EXPECT_EQ(move_no_replace(from.c_str(), to.c_str()), EEXIST);
  EXPECT_EQ(move_no_replace(from.c_str(), link.c_str()), EEXIST);
  EXPECT_TRUE(snapshot(from) == from_before);
  EXPECT_TRUE(snapshot(to) == to_before);
  char target[256] = {};
  ASSERT_GT(::readlink(link.c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string(target), path("nowhere"));

  const std::string fresh = path("fresh.seed");
  ASSERT_EQ(move_no_replace(from.c_str(), fresh.c_str()), 0);
  EXPECT_EQ(snapshot(fresh).bytes, from_before.bytes);
  EXPECT_EQ(entries(), (std::vector<std::string>{"dangling", "fresh.seed", "id.seed"}));
}

TEST_F(SeedFileTest, MissingFile) {
  std::unique_ptr<Identity> loaded;
  EXPECT_EQ(load_seed_file(path("nope").c_str(), &loaded), kErrSeedFileNotFound);
  EXPECT_EQ(loaded, nullptr);
}

TEST_F(SeedFileTest, GroupOrWorldAccessibleIsRefusedAndUntouched) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0602, 0620}) {
    const std::string p = path("open.seed");
    write_file(p, std::vector<uint8_t>(parley::testing::kVectorSeed,
                                       parley::testing::kVectorSeed + 32), mode);
    const Snapshot before = snapshot(p);
    std::unique_ptr<Identity> loaded;
    EXPECT_EQ(load_seed_file(p.c_str(), &loaded), kErrSeedFilePermissions) << std::oct << mode;
    EXPECT_EQ(loaded, nullptr);
    EXPECT_NE(std::string(last_error_message()).find("chmod 600"), std::string::npos);
    EXPECT_TRUE(snapshot(p) == before) << "mode " << std::oct << mode;
    ::unlink(p.c_str());
  }
}

TEST_F(SeedFileTest, WrongSizesAreInvalidAndUntouched) {
  for (size_t size : {0, 1, 31, 33, 64, 4096}) {
    const std::string p = path("bad.seed");
    write_file(p, std::vector<uint8_t>(size, 0xab), 0600);
    const Snapshot before = snapshot(p);
    std::unique_ptr<Identity> loaded;
    EXPECT_EQ(load_seed_file(p.c_str(), &loaded), kErrSeedFileInvalid) << size;
    EXPECT_TRUE(snapshot(p) == before);
    ::unlink(p.c_str());
  }
}

TEST_F(SeedFileTest, DirectoryAndFifoAreInvalid) {
  std::unique_ptr<Identity> loaded;
  const std::string d = path("adir");
  ASSERT_EQ(::mkdir(d.c_str(), 0700), 0);
  EXPECT_EQ(load_seed_file(d.c_str(), &loaded), kErrSeedFileInvalid);
  const std::string f = path("afifo");
  ASSERT_EQ(::mkfifo(f.c_str(), 0600), 0);
  EXPECT_EQ(load_seed_file(f.c_str(), &loaded), kErrSeedFileInvalid);  // and does not hang
}

// A file the process may not open is an I/O error, not "not found" or "invalid". Root opens
// anything, so as root the check runs in a child that dropped to nobody.
TEST_F(SeedFileTest, UnreadableFileIsIoError) {
  const std::string p = path("locked.seed");
  write_file(p, std::vector<uint8_t>(32, 1), 0000);
  auto attempt = [&] {
    std::unique_ptr<Identity> loaded;
    return load_seed_file(p.c_str(), &loaded);
  };
  if (::geteuid() != 0) {
    EXPECT_EQ(attempt(), kErrIo);
    return;
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    ::_exit(attempt() == kErrIo ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "100: could not drop privileges; 1: not kErrIo";
}

TEST_F(SeedFileTest, FileOwnedBySomebodyElseIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a file owned by another user";
  const std::string p = path("planted.seed");
  write_file(p, std::vector<uint8_t>(32, 3), 0600);
  ASSERT_EQ(::chown(p.c_str(), 65534, 65534), 0);
  // Root-owned is fine for anyone; a file of uid 65534 is not root's.
  std::unique_ptr<Identity> loaded;
  EXPECT_EQ(load_seed_file(p.c_str(), &loaded), kErrSeedFilePermissions);
  EXPECT_NE(std::string(last_error_message()).find("owned by uid 65534"), std::string::npos);
}

TEST_F(SeedFileTest, SaveIntoMissingDirectoryIsIoErrorAndLeavesNothing) {
  const std::string p = path("missing/id.seed");
  EXPECT_EQ(save_seed_file(*id_, p.c_str(), false), kErrIo);
  EXPECT_TRUE(entries().empty());
  EXPECT_EQ(save_seed_file(*id_, (dir_ + "/").c_str(), false), kErrInvalidArgument);
}

}  // namespace
}  // namespace parley::identity
