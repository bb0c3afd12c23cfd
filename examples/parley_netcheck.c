/*
 * parley-netcheck: what does this network do to UDP? Gathers candidates and classifies the
 * NAT, using only the public C API.
 *
 *   parley-netcheck [--json] [--bind IP:PORT] [--deadline MS] [--include-loopback]
 *                   [--relay HOST:PORT] --stun HOST:PORT [--stun HOST:PORT ...]
 *
 * The first --stun server is used for RFC 5780 behaviour discovery (it needs an alternate
 * address: parley-relay --alt, or coturn with two listening IPs); all are used for gathering.
 */
#include <parley/parley.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERVERS 16

static int usage(void) {
  fprintf(stderr,
          "usage: parley-netcheck [--json] [--bind IP:PORT] [--deadline MS]\n"
          "                       [--include-loopback] [--relay HOST:PORT]\n"
          "                       --stun HOST:PORT [--stun ...]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *servers[MAX_SERVERS];
  parley_netcheck_options opt;
  char report[PARLEY_NETCHECK_REPORT_MAX];
  size_t len = sizeof report;
  int i, err;

  memset(&opt, 0, sizeof opt);
  opt.struct_size = sizeof opt;
  opt.stun_servers = servers;
  opt.format = PARLEY_NETCHECK_TEXT;
  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--json") == 0) {
      opt.format = PARLEY_NETCHECK_JSON;
    } else if (strcmp(argv[i], "--include-loopback") == 0) {
      opt.include_loopback = 1;
    } else if (strcmp(argv[i], "--stun") == 0 && i + 1 < argc) {
      if (opt.stun_server_count == MAX_SERVERS) return usage();
      servers[opt.stun_server_count++] = argv[++i];
    } else if (strcmp(argv[i], "--relay") == 0 && i + 1 < argc) {
      opt.relay_address = argv[++i];
    } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
      opt.bind_address = argv[++i];
    } else if (strcmp(argv[i], "--deadline") == 0 && i + 1 < argc) {
      opt.deadline_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
    } else {
      return usage();
    }
  }
  if (opt.stun_server_count == 0) return usage();

  err = parley_netcheck_run(&opt, report, &len);
  if (err != PARLEY_OK) {
    fprintf(stderr, "parley-netcheck: %s (%d): %s\n", parley_strerror(err), err,
            parley_last_error_message());
    return 1;
  }
  fputs(report, stdout);
  return 0;
}
