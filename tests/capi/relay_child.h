/* Starts the real parley-relay executable for the C tests: on 127.0.0.1, any port, a fresh
 * seed in a scratch directory; waits (with a deadline) for the two lines it prints once
 * serving ("fingerprint <hex>", "listening quic+stun <ip:port> ..."). C99 + POSIX. */
#ifndef PARLEY_TESTS_CAPI_RELAY_CHILD_H
#define PARLEY_TESTS_CAPI_RELAY_CHILD_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct relay_child {
  pid_t pid;
  int out_fd;
  char fingerprint[65];
  char address[64];
  char dir[64];
} relay_child;

static long long relay_child_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Spawns the relay on `listen` with the seed in r->dir and waits for it to serve. */
static int relay_child_spawn(relay_child *r, const char *binary, const char *listen) {
  char seed[128], line[512], where[64];
  int out[2];
  size_t used = 0;
  posix_spawn_file_actions_t fa;
  const long long deadline = relay_child_now_ms() + 10000;
  r->pid = -1;
  r->fingerprint[0] = r->address[0] = '\0';
  snprintf(seed, sizeof seed, "%s/relay.seed", r->dir);
  snprintf(where, sizeof where, "%s", listen);
  {
    char *argv[] = {(char *)binary, "--listen", where, "--stun-alt", "none",
                    "--http3", "off", "--log-level", "warn", "--seed", seed, NULL};
    if (pipe(out) != 0) return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    /* Not the test's stderr: should the test die, nothing holds ctest's pipe open. */
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    if (posix_spawn(&r->pid, binary, &fa, NULL, argv, environ) != 0) r->pid = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  close(out[1]);
  r->out_fd = out[0];
  if (r->pid < 0) return -1;
  while (!r->address[0]) {
    struct pollfd p;
    long long left = deadline - relay_child_now_ms();
    ssize_t n;
    char *nl;
    if (left <= 0) break;
    p.fd = r->out_fd;
    p.events = POLLIN;
    if (poll(&p, 1, (int)left) <= 0) continue;
    n = read(r->out_fd, line + used, sizeof line - 1 - used);
    if (n <= 0) break;
    used += (size_t)n;
    line[used] = '\0';
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = '\0';
      if (strncmp(line, "fingerprint ", 12) == 0) {
        sscanf(line + 12, "%64s", r->fingerprint);
      } else if (strncmp(line, "listening quic+stun ", 20) == 0) {
        sscanf(line + 20, "%63s", r->address);
      }
      used -= (size_t)(nl + 1 - line);
      memmove(line, nl + 1, used + 1);
    }
  }
  if (!r->address[0] || strlen(r->fingerprint) != 64) {
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
    return -1;
  }
  return 0;
}

/* Returns 0 once the relay serves, -1 on failure (the child is killed). */
static int relay_child_start(relay_child *r, const char *binary) {
  memset(r, 0, sizeof *r);
  strcpy(r->dir, "/tmp/parley-relay-XXXXXX");
  if (!mkdtemp(r->dir)) return -1;
  return relay_child_spawn(r, binary, "127.0.0.1:0");
}

/* Kills the relay and starts it again on the same address with the same identity (a relay
 * restart, as clients see it). Returns 0 once it serves again. */
static inline int relay_child_restart(relay_child *r, const char *binary) {
  char address[64];
  snprintf(address, sizeof address, "%s", r->address);
  kill(r->pid, SIGKILL);
  waitpid(r->pid, NULL, 0);
  close(r->out_fd);
  return relay_child_spawn(r, binary, address);
}

static void relay_child_stop(relay_child *r) {
  char seed[128];
  if (r->pid > 0) {
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
  }
  if (r->out_fd > 0) close(r->out_fd);
  snprintf(seed, sizeof seed, "%s/relay.seed", r->dir);
  unlink(seed);
  rmdir(r->dir);
}

#endif
