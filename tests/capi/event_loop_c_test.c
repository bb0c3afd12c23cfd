/* A host's own poll() loop drives four contexts through the C API from C99, with no timer
 * polling: the only things it waits on are the contexts' notification descriptors
 * (parley_context_event_fd) and, once calls are up, a 10 ms timerfd standing in for the
 * sound card. Two calls through a real parley-relay carry a 440 Hz tone, one as int16 and
 * one as float32; both arrive at the same level. Events of a call carry the user data the
 * host attached to it. Then: the descriptor is not readable once the queue is drained, and
 * parley_context_wake ends a wait at once (before or during it).
 * argv[1]: the parley-relay executable. Linux (timerfd) + POSIX threads. */
#include <parley/parley.h>

#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/timerfd.h>

#include "check.h"

#include "relay_child.h"

#define PARTIES 4
#define RATE 48000
#define CHUNK 480 /* 10 ms */
#define TONE_SECONDS 2
#define AMPLITUDE 0.5
#define PI 3.14159265358979323846

static relay_child relay;

typedef struct party {
  parley_identity *id;
  parley_context *ctx;
  int fd;
  int registered;
  parley_call *call;
  int active;
  int ended;
  int token;           /* &token is the call's user data */
  int wrong_user_data; /* call events whose user_data was not &token */
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
} party;

static party p[PARTIES]; /* 0 calls 1 (int16), 2 calls 3 (float32) */

static void start_party(party *q, int index) {
  parley_context_config cfg;
  memset(q, 0, sizeof *q);
  q->token = index;
  CHECK(parley_identity_generate(&q->id) == PARLEY_OK);
  parley_context_config_init(&cfg);
  cfg.relay_address = relay.address;
  cfg.relay_fingerprint = relay.fingerprint;
  cfg.bind_address = "127.0.0.1:0";
  cfg.disable_direct = 1; /* the relay path is enough here; fewer moving parts */
  CHECK(parley_context_create(q->id, &cfg, &q->ctx) == PARLEY_OK);
  CHECK(parley_context_fingerprint(q->ctx, q->fp, sizeof q->fp) == PARLEY_OK);
  CHECK(parley_context_event_fd(q->ctx, &q->fd) == PARLEY_OK);
  CHECK(q->fd >= 0);
}

/* Drains one party's queue: called only when its descriptor was readable. */
static void on_readable(party *q) {
  parley_event ev;
  int n = 0;
  while (parley_context_poll_event(q->ctx, &ev) == 1) {
    ++n;
    switch (ev.type) {
      case PARLEY_EVENT_RELAY_STATE:
        if (ev.relay_state == PARLEY_RELAY_REGISTERED) q->registered = 1;
        break;
      case PARLEY_EVENT_INCOMING_CALL:
        CHECK(ev.user_data == NULL);
        CHECK(ev.call_state == PARLEY_CALL_INCOMING);
        q->call = ev.call;
        CHECK(parley_call_set_user_data(q->call, &q->token) == PARLEY_OK);
        CHECK(parley_call_user_data(q->call) == &q->token);
        CHECK(parley_call_accept(q->call) == PARLEY_OK);
        break;
      case PARLEY_EVENT_CALL_STATE:
        if (ev.user_data != &q->token) ++q->wrong_user_data;
        if (ev.call_state == PARLEY_CALL_ACTIVE) q->active = 1;
        if (ev.call_state == PARLEY_CALL_ENDED) q->ended = 1;
        break;
      default:
        if (ev.call && ev.user_data != &q->token) ++q->wrong_user_data;
        break;
    }
  }
  CHECK(n > 0); /* readable means queued */
}

/* One poll() over the parties' descriptors (and `extra`, if >= 0), waiting at most until
 * `deadline`; drains the parties that are readable. Returns whether `extra` is readable. */
static int loop_once(int extra, long long deadline) {
  struct pollfd fds[PARTIES + 1];
  int i, n = 0, left = (int)(deadline - relay_child_now_ms());
  if (left < 0) left = 0;
  for (i = 0; i < PARTIES; ++i) {
    fds[n].fd = p[i].fd;
    fds[n].events = POLLIN;
    fds[n++].revents = 0;
  }
  if (extra >= 0) {
    fds[n].fd = extra;
    fds[n].events = POLLIN;
    fds[n++].revents = 0;
  }
  if (poll(fds, (nfds_t)n, left) <= 0) return 0;
  for (i = 0; i < PARTIES; ++i) {
    if (fds[i].revents & POLLIN) on_readable(&p[i]);
  }
  return extra >= 0 && (fds[PARTIES].revents & POLLIN);
}

static int all(int field_offset) {
  int i;
  for (i = 0; i < PARTIES; ++i) {
    if (!*(const int *)((const char *)&p[i] + field_offset)) return 0;
  }
  return 1;
}
#define ALL(field) all((int)offsetof(party, field))

static void level_and_pitch(const float *x, size_t n, double *db, double *hz) {
  double sum = 0;
  size_t i, crossings = 0;
  for (i = 0; i < n; ++i) {
    sum += (double)x[i] * x[i];
    if (i > 0 && (x[i - 1] < 0) != (x[i] < 0)) ++crossings;
  }
  *db = 10 * log10(sum / (double)n);
  *hz = (double)crossings / 2.0 / ((double)n / RATE);
}

static void *wait_until_woken(void *arg) {
  int *result = (int *)arg;
  parley_event ev;
  *result = parley_context_wait_event(p[0].ctx, &ev, UINT32_MAX);
  return NULL;
}

int main(int argc, char **argv) {
  static float out16[RATE * TONE_SECONDS], outf[RATE * TONE_SECONDS];
  int16_t in16[CHUNK], pulled16[CHUNK];
  float inf[CHUNK];
  long long deadline;
  int i, timer;
  size_t pos;
  struct itimerspec period;
  double db16, dbf, hz16, hzf;

  if (argc < 2 || relay_child_start(&relay, argv[1]) != 0) {
    fprintf(stderr, "could not start the relay\n");
    return 1;
  }
  for (i = 0; i < PARTIES; ++i) start_party(&p[i], i);

  deadline = relay_child_now_ms() + 15000;
  while (!ALL(registered) && relay_child_now_ms() < deadline) loop_once(-1, deadline);
  CHECK(ALL(registered));
  for (i = 0; i < PARTIES; i += 2) {
    CHECK(parley_call_start(p[i].ctx, p[i + 1].fp, &p[i].call) == PARLEY_OK);
    CHECK(parley_call_set_user_data(p[i].call, &p[i].token) == PARLEY_OK);
  }
  deadline = relay_child_now_ms() + 15000;
  while (!ALL(active) && relay_child_now_ms() < deadline) loop_once(-1, deadline);
  CHECK(ALL(active));
  if (!ALL(active)) return check_report();

  /* The sound card: a 10 ms period on the same poll() as the events. */
  timer = timerfd_create(CLOCK_MONOTONIC, 0);
  CHECK(timer >= 0);
  memset(&period, 0, sizeof period);
  period.it_interval.tv_nsec = period.it_value.tv_nsec = 10 * 1000 * 1000;
  CHECK(timerfd_settime(timer, 0, &period, NULL) == 0);
  deadline = relay_child_now_ms() + 20000;
  for (pos = 0; pos < (size_t)RATE * TONE_SECONDS && relay_child_now_ms() < deadline;) {
    uint64_t expirations;
    size_t k;
    if (!loop_once(timer, deadline)) continue;
    if (read(timer, &expirations, sizeof expirations) != sizeof expirations) continue;
    for (k = 0; k < CHUNK; ++k) {
      const double v = AMPLITUDE * sin(2 * PI * 440 * (double)(pos + k) / RATE);
      inf[k] = (float)v;
      in16[k] = (int16_t)lrint(v * 32768);
    }
    CHECK(parley_call_push_audio(p[0].call, in16, CHUNK) == CHUNK);
    CHECK(parley_call_push_audio_float(p[2].call, inf, CHUNK) == CHUNK);
    CHECK(parley_call_pull_audio(p[1].call, pulled16, CHUNK) == PARLEY_OK);
    CHECK(parley_call_pull_audio_float(p[3].call, outf + pos, CHUNK) == PARLEY_OK);
    for (k = 0; k < CHUNK; ++k) out16[pos + k] = (float)pulled16[k] / 32768.0f;
    pos += CHUNK;
  }
  close(timer);
  CHECK(pos == (size_t)RATE * TONE_SECONDS);
  /* The last second: the jitter buffer has settled. */
  level_and_pitch(out16 + RATE * (TONE_SECONDS - 1), RATE, &db16, &hz16);
  level_and_pitch(outf + RATE * (TONE_SECONDS - 1), RATE, &dbf, &hzf);
  printf("int16 %.3f dBFS %.1f Hz, float32 %.3f dBFS %.1f Hz (sent %.3f dBFS)\n", db16, hz16, dbf,
         hzf, 20 * log10(AMPLITUDE / sqrt(2.0)));
  CHECK(fabs(db16 - dbf) <= 0.1);
  CHECK(fabs(db16 - 20 * log10(AMPLITUDE / sqrt(2.0))) <= 1.0);
  CHECK(fabs(hz16 - 440) <= 5 && fabs(hzf - 440) <= 5);

  for (i = 0; i < PARTIES; i += 2) CHECK(parley_call_hangup(p[i].call) == PARLEY_OK);
  deadline = relay_child_now_ms() + 15000;
  while (!ALL(ended) && relay_child_now_ms() < deadline) loop_once(-1, deadline);
  CHECK(ALL(ended));
  for (i = 0; i < PARTIES; ++i) CHECK(p[i].wrong_user_data == 0);

  {
    /* Drained: not readable. */
    struct pollfd one;
    parley_event ev;
    while (parley_context_poll_event(p[0].ctx, &ev) == 1) {
    }
    one.fd = p[0].fd;
    one.events = POLLIN;
    CHECK(poll(&one, 1, 0) == 0);
  }
  {
    /* A wake before the wait: the wait returns 0 at once. */
    parley_event ev;
    long long t0 = relay_child_now_ms();
    CHECK(parley_context_wake(p[0].ctx) == PARLEY_OK);
    CHECK(parley_context_wait_event(p[0].ctx, &ev, 10000) == 0);
    CHECK(relay_child_now_ms() - t0 < 5000);
  }
  {
    /* A wake during a wait without a limit: the waiting thread returns 0. */
    pthread_t waiter;
    int result = -100;
    long long t0 = relay_child_now_ms();
    CHECK(pthread_create(&waiter, NULL, wait_until_woken, &result) == 0);
    /* One wake suffices whether it lands before the waiter waits or during its wait; a
     * broken wake hangs here until ctest's timeout fails the test. */
    CHECK(parley_context_wake(p[0].ctx) == PARLEY_OK);
    CHECK(pthread_join(waiter, NULL) == 0);
    CHECK(result == 0);
    CHECK(relay_child_now_ms() - t0 < 5000);
  }

  for (i = 0; i < PARTIES; ++i) {
    CHECK(parley_call_destroy(p[i].call) == PARLEY_OK);
    CHECK(parley_call_destroy(p[i].call) == PARLEY_ERR_INVALID_HANDLE);
    CHECK(parley_context_destroy(p[i].ctx) == PARLEY_OK);
    CHECK(parley_identity_destroy(p[i].id) == PARLEY_OK);
  }
  relay_child_stop(&relay);
  return check_report();
}
