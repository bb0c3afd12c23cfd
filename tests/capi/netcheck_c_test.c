/* parley_netcheck_run from C99: argument validation, and one real run on loopback against the
 * parley-stun-server whose address is given as argv[1] (started by the ctest fixture). */
#include <parley/parley.h>

#include <stdio.h>
#include <string.h>

static int failures = 0, checks = 0;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    ++checks;                                                                        \
    if (!(cond)) {                                                                   \
      ++failures;                                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond,   \
              parley_last_error_message());                                          \
    }                                                                                \
  } while (0)

int main(int argc, char **argv) {
  const char *servers[1];
  const char *bad[1] = {"no-port-here"};
  parley_netcheck_options o;
  char out[16384];
  size_t len;

  CHECK(parley_netcheck_options_init(NULL) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_netcheck_options_init_sized(&o, 4) == PARLEY_ERR_INVALID_ARGUMENT);
  memset(&o, 0xAB, sizeof o);
  CHECK(parley_netcheck_options_init(&o) == PARLEY_OK);
  CHECK(o.struct_size == sizeof o && o.stun_servers == NULL && o.deadline_ms == 0);
  memset(&o, 0, sizeof o);
  len = sizeof out;
  CHECK(parley_netcheck_run(NULL, out, &len) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_netcheck_run(&o, out, NULL) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_ERR_INVALID_ARGUMENT); /* struct_size 0 */
  o.struct_size = sizeof o;
  CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_ERR_INVALID_ARGUMENT); /* no servers */
  o.stun_servers = bad;
  o.stun_server_count = 1;
  o.format = 7;
  CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_ERR_INVALID_ARGUMENT);
  o.format = PARLEY_NETCHECK_JSON;
  CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_ERR_ADDRESS_INVALID);
  CHECK(strstr(parley_last_error_message(), "no-port-here") != NULL);
  bad[0] = "nosuch.invalid:3478"; /* RFC 6761: never resolves */
  CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_ERR_NAME_NOT_FOUND);
  CHECK(strstr(parley_last_error_message(), "nosuch.invalid") != NULL);

  if (argc > 1) {
    servers[0] = argv[1];
    o.stun_servers = servers;
    o.bind_address = "127.0.0.1:0";
    o.include_loopback = 1;
    len = 8; /* too small: reports the size needed */
    CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 8 && len < sizeof out);
    len = sizeof out;
    CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_OK);
    CHECK(len == strlen(out) + 1);
    CHECK(strstr(out, "\"udp\": true") != NULL);
    CHECK(strstr(out, "\"classification\": \"open-internet\"") != NULL);
    o.format = PARLEY_NETCHECK_TEXT;
    len = sizeof out;
    CHECK(parley_netcheck_run(&o, out, &len) == PARLEY_OK);
    CHECK(strstr(out, "classification:  open-internet") != NULL);
  }
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
