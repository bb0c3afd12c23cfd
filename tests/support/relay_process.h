// Runs the real parley-relay executable as a child process for process-level tests: starts
// it, waits (with a deadline) for the two lines it prints once serving, and stops it with
// SIGTERM or SIGKILL.
#ifndef PARLEY_TESTS_SUPPORT_RELAY_PROCESS_H
#define PARLEY_TESTS_SUPPORT_RELAY_PROCESS_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "base/address.h"
#include "identity/fingerprint.h"

extern char **environ;

namespace parley::testing {

class RelayProcess {
 public:
  RelayProcess() = default;
  ~RelayProcess() { kill_now(); }

  // Starts `binary` with `args`; true once it printed its fingerprint and addresses.
  bool start(const std::string &binary, const std::vector<std::string> &args,
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<std::string> all = {binary};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (auto &a : all) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    const int r = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (r != 0) {
      close(out[0]);
      pid_ = -1;
      return false;
    }
    out_fd_ = out[0];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string fp_line, listen_line;
    while (listen_line.empty()) {
      std::string line;
      if (!read_line(deadline, &line)) return false;
      if (line.rfind("fingerprint ", 0) == 0) fp_line = line.substr(12);
      if (line.rfind("listening ", 0) == 0) listen_line = line;
    }
    if (identity::Fingerprint::parse(fp_line.c_str(), &fingerprint) != 0) return false;
    std::istringstream in(listen_line);
    std::string w1, w2, quic, w3, alt;
    in >> w1 >> w2 >> quic >> w3 >> alt;
    if (SocketAddress::parse(quic, &address) != 0) return false;
    if (alt != "none") SocketAddress::parse(alt, &stun_alt);
    std::string w4, other;
    if (in >> w4 >> other && w4 == "also") SocketAddress::parse(other, &address_other);
    return true;
  }

  // Sends `sig` and waits for the exit. Returns the exit status (128+signal if killed), or
  // -1 if it did not exit in time (it is then SIGKILLed).
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (pid_ <= 0) return -1;
    // A pidfd becomes readable when the process exits: wait on that, with the deadline.
    const int pidfd = int(syscall(SYS_pidfd_open, pid_, 0));
    ::kill(pid_, sig);
    bool exited = false;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      exited = poll(&p, 1, int(timeout.count())) == 1;
      close(pidfd);
    }
    if (!exited) {
      kill_now();
      return -1;
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (out_fd_ >= 0) close(out_fd_);
    out_fd_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  void kill_now() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (out_fd_ >= 0) close(out_fd_);
    out_fd_ = -1;
  }

  bool running() const { return pid_ > 0; }

  pid_t pid() const { return pid_; }  // -1 when not running

  identity::Fingerprint fingerprint;
  SocketAddress address, stun_alt;
  SocketAddress address_other;  // the other family's port (--listen twice), or unset

 private:
  bool read_line(std::chrono::steady_clock::time_point deadline, std::string *line) {
    for (;;) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        *line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, int(left.count())) <= 0) return false;
      char tmp[512];
      const ssize_t n = read(out_fd_, tmp, sizeof tmp);
      if (n <= 0) return false;
      buf_.append(tmp, size_t(n));
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
};

// Runs a command to completion (killed after `timeout`), returning its exit status (-1 if it
// could not start or timed out) and its stdout+stderr in `*output`.
inline int run_command(const std::vector<std::string> &args, std::chrono::milliseconds timeout,
                       std::string *output) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  std::vector<char *> argv;
  for (auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  const int r = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (r != 0) {
    close(out[0]);
    return -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, int(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;  // EOF: the command closed its output (it is exiting)
    output->append(buf, size_t(n));
  }
  close(out[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace parley::testing

#endif
