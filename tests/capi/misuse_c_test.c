/* Misuse of the C API, from C99 against libparley.so (and under ASan+UBSan in the sanitizer
 * build): NULL handles, double free/destroy, handles used after they were freed, calls used
 * after hangup, destroying a context from its own callback, oversized input and invalid
 * configuration. Each must return its own distinct error code, and nothing may crash.
 * Needs the parley-relay executable (argv[1]) for the parts with a real call. */
#include <parley/parley.h>

#include "check.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "relay_child.h"

#define CHECK_ERR(expr, code) CHECK((expr) == (code))

static relay_child relay;

static void quiet_log(void *user, int level, const char *message) {
  (void)user;
  (void)level;
  (void)message;
}

static parley_context *make_context(parley_identity *id, parley_event_fn cb, void *user) {
  parley_context_config cfg;
  parley_context *ctx = NULL;
  parley_context_config_init(&cfg);
  cfg.relay_address = relay.address;
  cfg.relay_fingerprint = relay.fingerprint;
  cfg.bind_address = "127.0.0.1:0";
  cfg.disable_direct = 1;
  cfg.event_callback = cb;
  cfg.event_user_data = user;
  CHECK_ERR(parley_context_create(id, &cfg, &ctx), PARLEY_OK);
  return ctx;
}

/* Waits on `ctx` until an event of `type` (and, for relay and call states, `state`) arrives
 * or 10 s pass. Returns 1 and the event, or 0. */
static int wait_event(parley_context *ctx, int type, int state, parley_event *out) {
  const long long deadline = relay_child_now_ms() + 10000;
  long long left;
  while ((left = deadline - relay_child_now_ms()) > 0) {
    parley_event ev;
    if (parley_context_wait_event(ctx, &ev, (uint32_t)left) != 1) continue;
    if (ev.type == type &&
        (state < 0 ||
         (type == PARLEY_EVENT_RELAY_STATE ? ev.relay_state : ev.call_state) == state)) {
      *out = ev;
      return 1;
    }
  }
  return 0;
}

static void null_handles(void) {
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
  uint8_t buf[64];
  size_t len = sizeof buf;
  int16_t pcm[960] = {0};
  float fpcm[960] = {0};
  int fd = -1;
  parley_event ev;
  parley_call_stats st;
  parley_context *ctx = (parley_context *)1;
  parley_call *call = (parley_call *)1;
  parley_context_config cfg;

  CHECK_ERR(parley_identity_fingerprint(NULL, fp, sizeof fp), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_identity_public_key(NULL, buf), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_identity_export_seed(NULL, buf), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_identity_certificate_der(NULL, buf, &len), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_identity_save_file(NULL, "/tmp/x", 0), PARLEY_ERR_INVALID_ARGUMENT);
  parley_identity_destroy(NULL);
  parley_context_config_init(&cfg);
  cfg.relay_address = "127.0.0.1:1";
  CHECK_ERR(parley_context_create(NULL, &cfg, &ctx), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(ctx == NULL); /* *out is NULLed on error */
  CHECK(strstr(parley_last_error_message(), "'id'") != NULL);
  CHECK_ERR(parley_context_destroy(NULL), PARLEY_OK);
  CHECK_ERR(parley_context_poll_event(NULL, &ev), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_wait_event(NULL, &ev, 1), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_wake(NULL), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_event_fd(NULL, &fd), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_set_user_data(NULL, &fd), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_call_user_data(NULL) == NULL);
  CHECK_ERR(parley_room_set_user_data(NULL, &fd), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_room_user_data(NULL) == NULL);
  CHECK_ERR(parley_call_push_audio_float(NULL, fpcm, 1), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_pull_audio_float(NULL, fpcm, 1), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_destroy(NULL), PARLEY_OK);
  CHECK_ERR(parley_room_destroy(NULL), PARLEY_OK);
  CHECK_ERR(parley_identity_destroy(NULL), PARLEY_OK);
  CHECK_ERR(parley_context_fingerprint(NULL, fp, sizeof fp), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_relay_fingerprint(NULL, fp, sizeof fp),
            PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_trust_relay(NULL, relay.fingerprint), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_start(NULL, relay.fingerprint, &call), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(call == NULL);
  CHECK_ERR(parley_call_accept(NULL), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_reject(NULL), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_hangup(NULL), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_push_audio(NULL, pcm, 960), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_pull_audio(NULL, pcm, 960), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_set_muted(NULL, 1), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_send_datagram(NULL, buf, 4), PARLEY_ERR_INVALID_ARGUMENT);
  st.struct_size = sizeof st;
  CHECK_ERR(parley_call_get_stats(NULL, &st), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_peer(NULL, fp, sizeof fp), PARLEY_ERR_INVALID_ARGUMENT);
  parley_call_destroy(NULL);
}

static void double_free_and_stale_handles(void) {
  parley_identity *id = NULL;
  parley_context *ctx;
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
  parley_event ev;
  parley_call *call = NULL;

  CHECK_ERR(parley_identity_generate(&id), PARLEY_OK);
  ctx = make_context(id, NULL, NULL);
  /* A handle of one type passed as another is not live as that type. */
  CHECK_ERR(parley_context_fingerprint((parley_context *)id, fp, sizeof fp),
            PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_identity_fingerprint((parley_identity *)ctx, fp, sizeof fp),
            PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_call_hangup((parley_call *)ctx), PARLEY_ERR_INVALID_HANDLE);

  CHECK_ERR(parley_context_destroy(ctx), PARLEY_OK);
  CHECK_ERR(parley_context_destroy(ctx), PARLEY_ERR_INVALID_HANDLE);
  CHECK(strstr(parley_last_error_message(), "parley_context") != NULL);
  CHECK_ERR(parley_context_poll_event(ctx, &ev), PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_context_wait_event(ctx, &ev, 1), PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_context_wake(ctx), PARLEY_ERR_INVALID_HANDLE);
  {
    int fd = 7;
    CHECK_ERR(parley_context_event_fd(ctx, &fd), PARLEY_ERR_INVALID_HANDLE);
  }
  CHECK_ERR(parley_context_fingerprint(ctx, fp, sizeof fp), PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_call_start(ctx, relay.fingerprint, &call), PARLEY_ERR_INVALID_HANDLE);
  CHECK(call == NULL);

  CHECK_ERR(parley_identity_destroy(id), PARLEY_OK);
  CHECK_ERR(parley_identity_destroy(id), PARLEY_ERR_INVALID_HANDLE); /* ignored, logged */
  CHECK_ERR(parley_identity_fingerprint(id, fp, sizeof fp), PARLEY_ERR_INVALID_HANDLE);
  {
    parley_context_config cfg;
    parley_context_config_init(&cfg);
    cfg.relay_address = relay.address;
    ctx = (parley_context *)1;
    CHECK_ERR(parley_context_create(id, &cfg, &ctx), PARLEY_ERR_INVALID_HANDLE);
    CHECK(ctx == NULL);
  }
}

static void invalid_config(void) {
  parley_identity *id = NULL;
  parley_context_config cfg;
  parley_context *ctx = NULL;
  CHECK_ERR(parley_identity_generate(&id), PARLEY_OK);

#define EXPECT_CONFIG_ERROR(code, field)                                          \
  do {                                                                            \
    CHECK_ERR(parley_context_create(id, &cfg, &ctx), code);                       \
    CHECK(ctx == NULL);                                                           \
    CHECK(strstr(parley_last_error_message(), field) != NULL);                    \
    parley_context_config_init(&cfg);                                             \
    cfg.relay_address = relay.address;                                            \
  } while (0)

  parley_context_config_init(&cfg);
  cfg.relay_address = relay.address;
  cfg.struct_size = 0;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "struct_size");
  cfg.struct_size = sizeof cfg + 64; /* from a newer header than this library */
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "struct_size");
  cfg.relay_address = NULL;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "relay_address");
  /* Names are welcome ("relay.example:7350" resolves later, on the context's loop); what
   * is neither ip:port nor host:port is refused at once. */
  cfg.relay_address = "relay example:7350";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_INVALID, "relay_address");
  cfg.relay_address = "relay.example";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_INVALID, "relay_address");
  cfg.relay_address = "2001:db8::1:7350";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_INVALID, "relay_address");
  cfg.relay_address = "127.0.0.1:7350";
  cfg.bind_address = "[::1]:0";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_FAMILY, "another family");
  cfg.bind_address6 = "127.0.0.1:0";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_FAMILY, "bind6");
  cfg.bind_address6 = "[::1]";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_INVALID, "bind_address6");
  cfg.bind_address = NULL;
  cfg.relay_address = "127.0.0.1:99999";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_INVALID, "relay_address");
  cfg.relay_fingerprint = "abc";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_FINGERPRINT_INVALID, "relay_fingerprint");
  cfg.bind_address = "127.0.0.1";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_ADDRESS_INVALID, "bind_address");
  cfg.sample_rate = 44100;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_AUDIO_FORMAT, "sample_rate");
  cfg.channels = 3;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_AUDIO_FORMAT, "channels");
  cfg.channels = -1;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_AUDIO_FORMAT, "channels");
  cfg.jitter_min_ms = 300;
  cfg.jitter_max_ms = 100;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "jitter_min_ms");
  cfg.jitter_max_ms = 60000;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "jitter_max_ms");
  cfg.quality_mode = 7;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "quality_mode");
  cfg.quality_best_profile = 7;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "quality_best_profile");
  cfg.port_min = 5000;
  cfg.port_max = 4000;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "port_min");
  cfg.port_min = 5000;
  cfg.port_max = 70000;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "port_max");
  cfg.port_min = 5000;
  cfg.port_max = 5010;
  cfg.bind_address = "127.0.0.1:5005";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "bind_address");
  cfg.quality_mode = PARLEY_QUALITY_MODE_FIXED;
  cfg.quality_profile = 5;
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "quality_profile");
  cfg.stun_servers = "127.0.0.1:3478, stun.example:";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "STUN server");
  cfg.stun_servers = "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1";
  EXPECT_CONFIG_ERROR(PARLEY_ERR_INVALID_ARGUMENT, "STUN servers");
  CHECK_ERR(parley_context_create(id, NULL, &ctx), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_create(id, &cfg, NULL), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_config_init(NULL), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_config_init_sized(&cfg, 8), PARLEY_ERR_INVALID_ARGUMENT);
  {
    /* A host built against a newer header: the library fills what it knows and says so. */
    unsigned char bigger[sizeof cfg + 64];
    memset(bigger, 0xAB, sizeof bigger);
    CHECK_ERR(
        parley_context_config_init_sized((parley_context_config *)(void *)bigger, sizeof bigger),
        PARLEY_OK);
    CHECK(((parley_context_config *)(void *)bigger)->struct_size == sizeof cfg);
    CHECK(bigger[sizeof cfg] == 0xAB); /* nothing written past the library's struct */
  }
#undef EXPECT_CONFIG_ERROR
  parley_identity_destroy(id);
}

/* Destroying a context from inside its own callback is refused; from outside it works. */
typedef struct {
  parley_context *ctx; /* set before any event can matter */
  volatile int destroy_result;
  volatile int done;
} destroy_probe;

static void destroy_from_callback(void *user, const parley_event *ev) {
  destroy_probe *p = (destroy_probe *)user;
  if (ev->type == PARLEY_EVENT_RELAY_STATE && ev->relay_state == PARLEY_RELAY_REGISTERED &&
      !__atomic_load_n(&p->done, __ATOMIC_ACQUIRE)) {
    parley_context *ctx;
    while (!(ctx = __atomic_load_n(&p->ctx, __ATOMIC_ACQUIRE))) {
    }
    p->destroy_result = parley_context_destroy(ctx);
    __atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
  }
}

static void wrong_thread_destroy(void) {
  parley_identity *id = NULL;
  destroy_probe probe = {NULL, 1, 0};
  parley_context *ctx;
  parley_event ev;
  long long deadline;
  CHECK_ERR(parley_identity_generate(&id), PARLEY_OK);
  ctx = make_context(id, destroy_from_callback, &probe);
  __atomic_store_n(&probe.ctx, ctx, __ATOMIC_RELEASE);
  deadline = relay_child_now_ms() + 10000;
  while (!__atomic_load_n(&probe.done, __ATOMIC_ACQUIRE) && relay_child_now_ms() < deadline) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  CHECK(probe.done);
  CHECK_ERR(probe.destroy_result, PARLEY_ERR_WRONG_THREAD);
  /* Polling a callback context is a misuse too, and so is asking it for an event fd. */
  CHECK_ERR(parley_context_poll_event(ctx, &ev), PARLEY_ERR_INVALID_ARGUMENT);
  {
    int fd = 7;
    CHECK_ERR(parley_context_event_fd(ctx, &fd), PARLEY_ERR_INVALID_ARGUMENT);
    CHECK(fd == -1);
  }
  CHECK_ERR(parley_context_destroy(ctx), PARLEY_OK);
  parley_identity_destroy(id);
}

static void after_hangup(void) {
  parley_identity *ida = NULL, *idb = NULL;
  parley_context *a, *b;
  parley_call *call = NULL, *incoming;
  parley_event ev;
  char fpb[PARLEY_FINGERPRINT_BUF_LEN], fp[PARLEY_FINGERPRINT_BUF_LEN];
  static int16_t big[48000 * 10];
  int16_t pcm[960];
  static float fpcm[960];
  uint8_t payload[PARLEY_DATAGRAM_MAX + 1];
  parley_call_stats st;
  int r;

  memset(payload, 7, sizeof payload);
  CHECK_ERR(parley_identity_generate(&ida), PARLEY_OK);
  CHECK_ERR(parley_identity_generate(&idb), PARLEY_OK);
  a = make_context(ida, NULL, NULL);
  b = make_context(idb, NULL, NULL);
  CHECK(wait_event(a, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
  CHECK(wait_event(b, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
  CHECK_ERR(parley_context_relay_fingerprint(a, fp, sizeof fp), PARLEY_OK);
  CHECK(strcmp(fp, relay.fingerprint) == 0);
  CHECK_ERR(parley_context_relay_fingerprint(a, fp, 10), PARLEY_ERR_BUFFER_TOO_SMALL);
  CHECK_ERR(parley_context_trust_relay(a, NULL), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_trust_relay(a, "not hex"), PARLEY_ERR_FINGERPRINT_INVALID);
  {
    /* No relay_fingerprint: the relay's identity arrives in an UNTRUSTED state event, and
     * the context registers only once the host trusts it. */
    parley_context_config cfg;
    parley_context *u = NULL;
    parley_identity *idu = NULL;
    CHECK_ERR(parley_identity_generate(&idu), PARLEY_OK);
    parley_context_config_init(&cfg);
    cfg.relay_address = relay.address;
    cfg.bind_address = "127.0.0.1:0";
    cfg.disable_direct = 1;
    CHECK_ERR(parley_context_create(idu, &cfg, &u), PARLEY_OK);
    CHECK(wait_event(u, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_UNTRUSTED, &ev));
    CHECK(strcmp(ev.peer, relay.fingerprint) == 0);
    CHECK(ev.origin == PARLEY_ORIGIN_LOCAL);
    CHECK_ERR(parley_context_relay_fingerprint(u, fp, sizeof fp), PARLEY_ERR_NOT_REGISTERED);
    CHECK_ERR(parley_context_trust_relay(u, ev.peer), PARLEY_OK);
    CHECK(wait_event(u, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
    CHECK_ERR(parley_context_relay_fingerprint(u, fp, sizeof fp), PARLEY_OK);
    CHECK(strcmp(fp, relay.fingerprint) == 0);
    CHECK_ERR(parley_context_destroy(u), PARLEY_OK);
    parley_identity_destroy(idu);
  }
  CHECK_ERR(parley_context_poll_event_sized(a, &ev, 8), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_context_fingerprint(b, fpb, sizeof fpb), PARLEY_OK);

  CHECK_ERR(parley_call_start(a, "not-a-fingerprint", &call), PARLEY_ERR_FINGERPRINT_INVALID);
  CHECK_ERR(parley_call_start(a, fpb, &call), PARLEY_OK);
  CHECK(wait_event(b, PARLEY_EVENT_INCOMING_CALL, -1, &ev));
  incoming = ev.call;
  CHECK(incoming != NULL);
  /* Only the callee accepts; before it is active a datagram is refused. */
  CHECK_ERR(parley_call_accept(call), PARLEY_ERR_WRONG_CALL_STATE);
  CHECK_ERR(parley_call_send_datagram(call, payload, 4), PARLEY_ERR_CALL_NOT_ACTIVE);
  CHECK_ERR(parley_call_accept(incoming), PARLEY_OK);
  CHECK(wait_event(a, PARLEY_EVENT_CALL_STATE, PARLEY_CALL_ACTIVE, &ev));
  CHECK(wait_event(b, PARLEY_EVENT_CALL_STATE, PARLEY_CALL_ACTIVE, &ev));

  /* Oversized input: a datagram over the limit is refused; ten seconds of audio in one
   * push are taken only as far as the send buffer goes. */
  CHECK_ERR(parley_call_send_datagram(call, payload, sizeof payload),
            PARLEY_ERR_MESSAGE_TOO_LARGE);
  r = parley_call_push_audio(call, big, sizeof big / sizeof big[0]);
  CHECK(r >= 0 && r < (int)(sizeof big / sizeof big[0]));
  CHECK_ERR(parley_call_push_audio(call, NULL, 960), PARLEY_ERR_INVALID_ARGUMENT);
  CHECK_ERR(parley_call_push_audio(call, NULL, 0), 0);
  CHECK_ERR(parley_call_accept(incoming), PARLEY_ERR_WRONG_CALL_STATE); /* twice */

  /* The direct path is disabled here: no attempt, and the stats say why there is none. */
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  CHECK_ERR(parley_call_get_stats(call, &st), PARLEY_OK);
  CHECK(st.direct_attempts == 0);
  CHECK_ERR(st.direct_error, PARLEY_ERR_ICE_FAILED);
  CHECK(st.direct_lost == 0);

  CHECK_ERR(parley_call_hangup(call), PARLEY_OK);
  CHECK(wait_event(a, PARLEY_EVENT_CALL_STATE, PARLEY_CALL_ENDED, &ev));
  CHECK(wait_event(b, PARLEY_EVENT_CALL_STATE, PARLEY_CALL_ENDED, &ev));
  CHECK_ERR(ev.error, PARLEY_OK);
  /* Every request on an ended call: PARLEY_ERR_CALL_ENDED, on both sides. */
  CHECK_ERR(parley_call_hangup(call), PARLEY_ERR_CALL_ENDED);
  CHECK_ERR(parley_call_accept(incoming), PARLEY_ERR_CALL_ENDED);
  CHECK_ERR(parley_call_reject(incoming), PARLEY_ERR_CALL_ENDED);
  CHECK_ERR(parley_call_send_datagram(call, payload, 4), PARLEY_ERR_CALL_ENDED);
  CHECK_ERR(parley_call_push_audio(call, pcm, 960), PARLEY_ERR_CALL_ENDED);
  CHECK_ERR(parley_call_push_audio_float(call, fpcm, 960), PARLEY_ERR_CALL_ENDED);
  pcm[0] = 123;
  CHECK_ERR(parley_call_pull_audio(incoming, pcm, 960), PARLEY_ERR_CALL_ENDED);
  CHECK(pcm[0] == 0); /* silence */
  fpcm[0] = 0.5f;
  CHECK_ERR(parley_call_pull_audio_float(incoming, fpcm, 960), PARLEY_ERR_CALL_ENDED);
  CHECK(fpcm[0] == 0.0f);
  st.struct_size = sizeof st;
  CHECK_ERR(parley_call_get_stats(call, &st), PARLEY_ERR_CALL_ENDED);
  CHECK_ERR(parley_call_peer(call, fp, sizeof fp), PARLEY_OK); /* still answers */
  CHECK(strcmp(fp, fpb) == 0);

  /* User data stays readable on an ended call. */
  CHECK_ERR(parley_call_set_user_data(call, fpcm), PARLEY_OK);
  CHECK(parley_call_user_data(call) == fpcm);

  /* Destroyed handles are not live; destroying twice is ignored. */
  CHECK_ERR(parley_call_destroy(call), PARLEY_OK);
  CHECK_ERR(parley_call_destroy(call), PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_call_set_user_data(call, pcm), PARLEY_ERR_INVALID_HANDLE);
  CHECK(parley_call_user_data(call) == NULL);
  CHECK_ERR(parley_call_hangup(call), PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_call_peer(call, fp, sizeof fp), PARLEY_ERR_INVALID_HANDLE);
  CHECK_ERR(parley_call_get_stats(call, &st), PARLEY_ERR_INVALID_HANDLE);

  /* A call handle outlives its context: requests then say the context is closed. */
  CHECK_ERR(parley_context_destroy(b), PARLEY_OK);
  CHECK_ERR(parley_call_hangup(incoming), PARLEY_ERR_CALL_ENDED);
  CHECK_ERR(parley_call_peer(incoming, fp, sizeof fp), PARLEY_OK);
  parley_call_destroy(incoming);

  /* Calls after hangup through a live context, then its destruction with a live call. */
  CHECK_ERR(parley_call_start(a, fpb, &call), PARLEY_OK); /* b is gone: the call fails */
  CHECK(wait_event(a, PARLEY_EVENT_CALL_STATE, PARLEY_CALL_ENDED, &ev));
  CHECK_ERR(ev.error, PARLEY_ERR_PEER_UNAVAILABLE);
  CHECK_ERR(parley_context_destroy(a), PARLEY_OK);
  CHECK_ERR(parley_call_hangup(call), PARLEY_ERR_CALL_ENDED);
  parley_call_destroy(call);
  parley_identity_destroy(ida);
  parley_identity_destroy(idb);
}

/* A call still ringing when its context is destroyed: the handle reports the closed context. */
static void destroyed_context(void) {
  parley_identity *ida = NULL, *idb = NULL;
  parley_context *a, *b;
  parley_call *call = NULL;
  parley_event ev;
  char fpb[PARLEY_FINGERPRINT_BUF_LEN];
  int16_t pcm[960];
  CHECK_ERR(parley_identity_generate(&ida), PARLEY_OK);
  CHECK_ERR(parley_identity_generate(&idb), PARLEY_OK);
  a = make_context(ida, NULL, NULL);
  b = make_context(idb, NULL, NULL);
  CHECK(wait_event(a, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
  CHECK(wait_event(b, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
  CHECK_ERR(parley_context_fingerprint(b, fpb, sizeof fpb), PARLEY_OK);
  CHECK_ERR(parley_call_start(a, fpb, &call), PARLEY_OK);
  CHECK(wait_event(b, PARLEY_EVENT_INCOMING_CALL, -1, &ev));
  CHECK_ERR(parley_context_destroy(a), PARLEY_OK);
  CHECK_ERR(parley_call_hangup(call), PARLEY_ERR_CLOSED);
  CHECK_ERR(parley_call_pull_audio(call, pcm, 960), PARLEY_ERR_CALL_ENDED);
  parley_call_destroy(call);
  /* b's incoming call handle is released with its context still queued events naming it. */
  CHECK_ERR(parley_context_destroy(b), PARLEY_OK);
  parley_call_destroy(ev.call);
  {
    /* An incoming call whose event is never polled: destroy frees it (LeakSanitizer checks). */
    parley_identity *idc = NULL;
    parley_context *c, *d;
    char fpc[PARLEY_FINGERPRINT_BUF_LEN];
    CHECK_ERR(parley_identity_generate(&idc), PARLEY_OK);
    c = make_context(idc, NULL, NULL);
    d = make_context(ida, NULL, NULL);
    CHECK(wait_event(c, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
    CHECK(wait_event(d, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
    CHECK_ERR(parley_context_fingerprint(c, fpc, sizeof fpc), PARLEY_OK);
    CHECK_ERR(parley_call_start(d, fpc, &call), PARLEY_OK);
    CHECK(wait_event(d, PARLEY_EVENT_CALL_STATE, PARLEY_CALL_RINGING, &ev)); /* c has it */
    CHECK_ERR(parley_context_destroy(c), PARLEY_OK);
    CHECK_ERR(parley_context_destroy(d), PARLEY_OK);
    parley_call_destroy(call);
    parley_identity_destroy(idc);
  }
  parley_identity_destroy(ida);
  parley_identity_destroy(idb);
}

/* Calls made from inside the callback run at once but never re-enter it: the events they
 * raise arrive after it returns; destroy stays refused for the whole callback. */
typedef struct {
  parley_context *ctx;
  parley_call *incoming;
  int depth, max_depth, destroy_result, accept_result, active_seen_inside;
  int in_incoming;
  int registered, active; /* atomically set */
} reentry_probe;

static void reentry_callback(void *user, const parley_event *ev) {
  reentry_probe *p = (reentry_probe *)user;
  /* Atomics: later events (paths, quality) keep coming while main() reads. */
  const int depth = __atomic_add_fetch(&p->depth, 1, __ATOMIC_RELAXED);
  if (depth > __atomic_load_n(&p->max_depth, __ATOMIC_RELAXED)) {
    __atomic_store_n(&p->max_depth, depth, __ATOMIC_RELAXED);
  }
  if (ev->type == PARLEY_EVENT_INCOMING_CALL) {
    while (!__atomic_load_n(&p->ctx, __ATOMIC_ACQUIRE)) {
    }
    p->in_incoming = 1;
    p->incoming = ev->call;
    p->accept_result = parley_call_accept(ev->call);
    p->destroy_result = parley_context_destroy(p->ctx); /* after a nested call: refused */
    p->in_incoming = 0;
  }
  if (ev->type == PARLEY_EVENT_RELAY_STATE && ev->relay_state == PARLEY_RELAY_REGISTERED) {
    __atomic_store_n(&p->registered, 1, __ATOMIC_RELEASE);
  }
  if (ev->type == PARLEY_EVENT_CALL_STATE && ev->call_state == PARLEY_CALL_ACTIVE) {
    if (p->in_incoming) p->active_seen_inside = 1;
    __atomic_store_n(&p->active, 1, __ATOMIC_RELEASE);
  }
  __atomic_sub_fetch(&p->depth, 1, __ATOMIC_RELAXED);
}

static void callback_reentry(void) {
  parley_identity *ida = NULL, *idb = NULL;
  parley_context *a, *b;
  parley_call *call = NULL;
  parley_event ev;
  char fpb[PARLEY_FINGERPRINT_BUF_LEN];
  reentry_probe probe;
  long long deadline;
  memset(&probe, 0, sizeof probe);
  probe.destroy_result = 1;
  CHECK_ERR(parley_identity_generate(&ida), PARLEY_OK);
  CHECK_ERR(parley_identity_generate(&idb), PARLEY_OK);
  a = make_context(ida, NULL, NULL);
  b = make_context(idb, reentry_callback, &probe);
  __atomic_store_n(&probe.ctx, b, __ATOMIC_RELEASE);
  CHECK(wait_event(a, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
  CHECK_ERR(parley_context_fingerprint(b, fpb, sizeof fpb), PARLEY_OK);
  deadline = relay_child_now_ms() + 10000;
  while (!__atomic_load_n(&probe.registered, __ATOMIC_ACQUIRE) &&
         relay_child_now_ms() < deadline) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  CHECK_ERR(parley_call_start(a, fpb, &call), PARLEY_OK);
  CHECK(wait_event(a, PARLEY_EVENT_CALL_STATE, PARLEY_CALL_ACTIVE, &ev));
  while (!__atomic_load_n(&probe.active, __ATOMIC_ACQUIRE) && relay_child_now_ms() < deadline) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  CHECK(probe.active);
  CHECK_ERR(probe.accept_result, PARLEY_OK);
  CHECK_ERR(probe.destroy_result, PARLEY_ERR_WRONG_THREAD);
  CHECK(__atomic_load_n(&probe.max_depth, __ATOMIC_RELAXED) == 1);
  CHECK(!probe.active_seen_inside);
  CHECK_ERR(parley_context_destroy(b), PARLEY_OK);
  CHECK_ERR(parley_context_destroy(a), PARLEY_OK);
  parley_call_destroy(call);
  parley_call_destroy(probe.incoming);
  parley_identity_destroy(ida);
  parley_identity_destroy(idb);
}

/* A port range binds the first free port in it; a range with none free fails cleanly. */
static void port_range(void) {
  parley_identity *id = NULL;
  parley_context_config cfg;
  parley_context *ctx = NULL;
  parley_event ev;
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  int taken = -1, attempt, port = 0;
  CHECK_ERR(parley_identity_generate(&id), PARLEY_OK);
  /* Occupy a port P whose neighbour P+1 is free. */
  for (attempt = 0; attempt < 20 && port == 0; ++attempt) {
    int probe;
    if (taken >= 0) close(taken);
    taken = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(taken, (struct sockaddr *)&a, sizeof a) != 0) continue;
    getsockname(taken, (struct sockaddr *)&a, &alen);
    if (ntohs(a.sin_port) == 65535) continue;
    probe = socket(AF_INET, SOCK_DGRAM, 0);
    a.sin_port = htons((uint16_t)(ntohs(a.sin_port) + 1));
    if (bind(probe, (struct sockaddr *)&a, sizeof a) == 0) port = ntohs(a.sin_port) - 1;
    close(probe);
  }
  CHECK(port != 0);
  parley_context_config_init(&cfg);
  cfg.relay_address = relay.address;
  cfg.relay_fingerprint = relay.fingerprint;
  cfg.bind_address = "127.0.0.1:0";
  cfg.port_min = port;
  cfg.port_max = port;
  CHECK_ERR(parley_context_create(id, &cfg, &ctx), PARLEY_ERR_SOCKET);
  CHECK(ctx == NULL);
  cfg.port_max = port + 1;
  CHECK_ERR(parley_context_create(id, &cfg, &ctx), PARLEY_OK);
  CHECK(wait_event(ctx, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_REGISTERED, &ev));
  CHECK_ERR(parley_context_destroy(ctx), PARLEY_OK);
  close(taken);
  parley_identity_destroy(id);
}

/* Relay names that cannot be used: parley_context_create returns at once (a name resolves on
 * the context's thread), and the relay state event says why, each with its own code. */
static void unusable_relay_names(void) {
  parley_identity *id = NULL;
  parley_context_config cfg;
  parley_context *ctx = NULL;
  parley_event ev;
  char address[80];
  const char *port = strrchr(relay.address, ':') + 1;
  long long t;

  CHECK_ERR(parley_identity_generate(&id), PARLEY_OK);
  parley_context_config_init(&cfg);
  cfg.relay_fingerprint = relay.fingerprint;
  cfg.disable_direct = 1;
  /* RFC 6761: .invalid never resolves. */
  snprintf(address, sizeof address, "nosuch.invalid:%s", port);
  cfg.relay_address = address;
  t = relay_child_now_ms();
  CHECK_ERR(parley_context_create(id, &cfg, &ctx), PARLEY_OK);
  CHECK(relay_child_now_ms() - t < 1000);
  CHECK(wait_event(ctx, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_BACKOFF, &ev));
  CHECK_ERR(ev.error, PARLEY_ERR_NAME_NOT_FOUND);
  CHECK_ERR(parley_context_destroy(ctx), PARLEY_OK);

  /* An IPv6 socket and a name with IPv4 addresses only. "localhost" has an IPv6 address
   * where the host has IPv6 beyond loopback (AI_ADDRCONFIG), and the check means nothing
   * there: it says so instead. */
  {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET6;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_ADDRCONFIG;
    if (getaddrinfo("localhost", NULL, &hints, &res) == 0) {
      freeaddrinfo(res);
      printf("unusable_relay_names: localhost has an IPv6 address here; "
             "PARLEY_ERR_NO_USABLE_ADDRESS not checked\n");
    } else {
      snprintf(address, sizeof address, "localhost:%s", port);
      cfg.bind_address = "[::1]:0";
      CHECK_ERR(parley_context_create(id, &cfg, &ctx), PARLEY_OK);
      CHECK(wait_event(ctx, PARLEY_EVENT_RELAY_STATE, PARLEY_RELAY_BACKOFF, &ev));
      CHECK_ERR(ev.error, PARLEY_ERR_NO_USABLE_ADDRESS);
      CHECK_ERR(parley_context_destroy(ctx), PARLEY_OK);
    }
  }
  parley_identity_destroy(id);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PARLEY_RELAY_BINARY\n", argv[0]);
    return 2;
  }
  parley_log_set_callback(quiet_log, NULL);
  if (relay_child_start(&relay, argv[1]) != 0) {
    fprintf(stderr, "could not start %s\n", argv[1]);
    return 1;
  }
  null_handles();
  double_free_and_stale_handles();
  invalid_config();
  wrong_thread_destroy();
  after_hangup();
  destroyed_context();
  callback_reentry();
  port_range();
  unusable_relay_names();
  relay_child_stop(&relay);
  return check_report();
}
