/* hello_call: the smallest complete parley program, using only <parley/parley.h>.
 *
 * Two parties live in this one process (a real app has one each): both register with the
 * relay, "alice" calls "bob", bob accepts from his event callback, alice's microphone plays
 * a 440 Hz tone for two seconds and bob's speaker receives it; then alice hangs up.
 *
 *   hello_call RELAY_IP:PORT RELAY_FINGERPRINT
 *
 * Events arrive on each context's own thread (callback mode): the callback only records
 * what happened and accepts the call; main() waits on a condition variable. Exit status 0
 * when bob heard the tone. */
#define _POSIX_C_SOURCE 200809L /* clock_nanosleep */
#include <parley/parley.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RATE 48000
#define CHUNK (RATE / 50) /* 20 ms */
#define TWO_PI 6.283185307179586

typedef struct party {
  const char *name;
  parley_identity *id;
  parley_context *ctx;
  parley_call *call; /* alice: from parley_call_start; bob: from the INCOMING_CALL event */
  int registered, active, ended;
} party;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

/* On the context's thread. Calling parley from here is allowed (it never re-enters). */
static void on_event(void *user, const parley_event *ev) {
  party *p = (party *)user;
  pthread_mutex_lock(&mu);
  switch (ev->type) {
    case PARLEY_EVENT_RELAY_STATE:
      if (ev->relay_state == PARLEY_RELAY_REGISTERED) p->registered = 1;
      break;
    case PARLEY_EVENT_INCOMING_CALL:
      printf("%s: incoming call from %.16s...\n", p->name, ev->peer);
      p->call = ev->call; /* ours to release */
      parley_call_accept(ev->call);
      break;
    case PARLEY_EVENT_CALL_STATE:
      if (ev->call_state == PARLEY_CALL_ACTIVE) p->active = 1;
      if (ev->call_state == PARLEY_CALL_ENDED) {
        p->ended = 1;
        printf("%s: call ended (%s)\n", p->name, ev->error ? parley_strerror(ev->error) : "hangup");
      }
      break;
    case PARLEY_EVENT_PATH_CHANGED:
      printf("%s: media now %s (%s)\n", p->name, ev->path == PARLEY_PATH_DIRECT ? "direct" : "relayed",
             ev->text);
      break;
    default:
      break;
  }
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&mu);
}

/* Waits up to 10 s until *flag is set. */
static int wait_for(int *flag) {
  struct timespec deadline;
  int ok;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&mu);
  while (!*flag && pthread_cond_timedwait(&changed, &mu, &deadline) == 0) {
  }
  ok = *flag;
  pthread_mutex_unlock(&mu);
  return ok;
}

static int start(party *p, const char *relay, const char *relay_fp) {
  parley_context_config cfg;
  int err = parley_identity_generate(&p->id);
  if (err) return err;
  parley_context_config_init(&cfg);
  cfg.relay_address = relay;
  cfg.relay_fingerprint = relay_fp;
  cfg.include_loopback = 1; /* both parties on this machine */
  cfg.event_callback = on_event;
  cfg.event_user_data = p;
  return parley_context_create(p->id, &cfg, &p->ctx);
}

int main(int argc, char **argv) {
  party alice = {"alice", NULL, NULL, NULL, 0, 0, 0}, bob = {"bob", NULL, NULL, NULL, 0, 0, 0};
  char bob_fp[PARLEY_FINGERPRINT_BUF_LEN];
  static int16_t mic[CHUNK], speaker[CHUNK];
  double energy = 0;
  long n = 0, t = 0;
  int i, tick, err;
  struct timespec next;

  if (argc != 3) {
    fprintf(stderr, "usage: %s RELAY_IP:PORT RELAY_FINGERPRINT\n", argv[0]);
    return 2;
  }
  if ((err = start(&alice, argv[1], argv[2])) != 0 || (err = start(&bob, argv[1], argv[2])) != 0) {
    fprintf(stderr, "context: %s (%s)\n", parley_strerror(err), parley_last_error_message());
    return 1;
  }
  if (!wait_for(&alice.registered) || !wait_for(&bob.registered)) {
    fprintf(stderr, "the relay did not register us\n");
    return 1;
  }
  parley_context_fingerprint(bob.ctx, bob_fp, sizeof bob_fp);
  if ((err = parley_call_start(alice.ctx, bob_fp, &alice.call)) != 0) {
    fprintf(stderr, "call: %s (%s)\n", parley_strerror(err), parley_last_error_message());
    return 1;
  }
  if (!wait_for(&alice.active) || !wait_for(&bob.active)) {
    fprintf(stderr, "the call did not become active\n");
    return 1;
  }
  printf("alice: call active; sending a 440 Hz tone for 2 s\n");

  /* The "sound cards": 20 ms of microphone in, 20 ms of speaker out, on the wall clock. */
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (tick = 0; tick < 100; ++tick) {
    for (i = 0; i < CHUNK; ++i, ++t) mic[i] = (int16_t)(8000 * sin(TWO_PI * 440 * t / RATE));
    parley_call_push_audio(alice.call, mic, CHUNK);
    parley_call_pull_audio(bob.call, speaker, CHUNK);
    if (tick >= 50) { /* the second half: the jitter buffer has filled */
      for (i = 0; i < CHUNK; ++i, ++n) energy += (double)speaker[i] * speaker[i];
    }
    next.tv_nsec += 20000000;
    if (next.tv_nsec >= 1000000000) {
      next.tv_nsec -= 1000000000;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  printf("bob: heard RMS %.0f (the tone's is %.0f)\n", sqrt(energy / (double)n), 8000 / sqrt(2));

  parley_call_hangup(alice.call);
  wait_for(&bob.ended);
  parley_call_destroy(alice.call);
  parley_call_destroy(bob.call);
  parley_context_destroy(alice.ctx);
  parley_context_destroy(bob.ctx);
  parley_identity_destroy(alice.id);
  parley_identity_destroy(bob.id);
  return sqrt(energy / (double)n) > 2000 ? 0 : 1;
}
