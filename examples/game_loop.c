/* game_loop: parley driven from a game engine's frame loop, in poll mode.
 *
 * A game has no thread to spare for library callbacks: each frame it drains the events
 * parley queued (parley_context_poll_event never blocks), feeds the frame's worth of
 * microphone audio, takes the frame's worth of speaker audio, and sends its own game state
 * as end-to-end encrypted datagrams next to the voice. Two players run in this process for
 * the demo (a real game has one context per player, on each player's device).
 *
 *   game_loop RELAY_IP:PORT RELAY_FINGERPRINT [SECONDS]
 *
 * At 60 frames per second a frame is 800 samples at 48 kHz: parley takes any chunk size.
 * Exit status 0 when each player received the other's state and voice. */
#define _POSIX_C_SOURCE 200809L /* clock_nanosleep */
#include <parley/parley.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RATE 48000
#define FPS 60
#define FRAME_SAMPLES (RATE / FPS)
#define TWO_PI 6.283185307179586

typedef struct player {
  const char *name;
  parley_identity *id;
  parley_context *ctx;
  parley_call *call;
  int registered, active, ended;
  double tone_hz;         /* what this player's "microphone" plays */
  long mic_t;             /* samples produced so far */
  double heard_energy;    /* speaker energy once the call is active */
  long heard_samples;
  unsigned states_sent, states_received;
  float peer_x;           /* the other player's position, from its datagrams */
} player;

/* The engine's per-frame event pump: everything parley queued since the last frame. */
static void pump_events(player *p) {
  parley_event ev;
  while (parley_context_poll_event(p->ctx, &ev) == 1) {
    switch (ev.type) {
      case PARLEY_EVENT_RELAY_STATE:
        p->registered = ev.relay_state == PARLEY_RELAY_REGISTERED;
        break;
      case PARLEY_EVENT_INCOMING_CALL:
        printf("%s: %.16s... wants to talk: accepting\n", p->name, ev.peer);
        p->call = ev.call;
        parley_call_accept(p->call);
        break;
      case PARLEY_EVENT_CALL_STATE:
        if (ev.call_state == PARLEY_CALL_ACTIVE) p->active = 1;
        if (ev.call_state == PARLEY_CALL_ENDED) p->ended = 1;
        break;
      case PARLEY_EVENT_PATH_CHANGED:
        printf("%s: voice now %s\n", p->name, ev.path == PARLEY_PATH_DIRECT ? "direct" : "relayed");
        break;
      case PARLEY_EVENT_QUALITY_CHANGED:
        printf("%s: voice profile %d -> %d (%s)\n", p->name, ev.profile_from, ev.profile, ev.text);
        break;
      case PARLEY_EVENT_DATAGRAM:
        if (ev.len == sizeof p->peer_x) {
          memcpy(&p->peer_x, ev.data, sizeof p->peer_x);
          ++p->states_received;
        }
        break;
      default:
        break;
    }
  }
}

/* The frame's audio and game state. */
static void frame_io(player *p, int frame) {
  int16_t mic[FRAME_SAMPLES], speaker[FRAME_SAMPLES];
  int i;
  if (!p->call || !p->active || p->ended) return;
  for (i = 0; i < FRAME_SAMPLES; ++i, ++p->mic_t) {
    mic[i] = (int16_t)(6000 * sin(TWO_PI * p->tone_hz * (double)p->mic_t / RATE));
  }
  parley_call_push_audio(p->call, mic, FRAME_SAMPLES);
  parley_call_pull_audio(p->call, speaker, FRAME_SAMPLES);
  for (i = 0; i < FRAME_SAMPLES; ++i) p->heard_energy += (double)speaker[i] * speaker[i];
  p->heard_samples += FRAME_SAMPLES;
  if (frame % 6 == 0) { /* game state at 10 Hz */
    float x = (float)frame * 0.5f;
    if (parley_call_send_datagram(p->call, &x, sizeof x) == PARLEY_OK) ++p->states_sent;
  }
}

static int start(player *p, const char *relay, const char *relay_fp) {
  parley_context_config cfg;
  int err = parley_identity_generate(&p->id);
  if (err) return err;
  parley_context_config_init(&cfg);
  cfg.relay_address = relay;
  cfg.relay_fingerprint = relay_fp;
  cfg.include_loopback = 1;
  /* event_callback stays NULL: poll mode */
  return parley_context_create(p->id, &cfg, &p->ctx);
}

int main(int argc, char **argv) {
  player a, b;
  struct timespec next;
  int frame, err, seconds = argc > 3 ? atoi(argv[3]) : 3, ok;
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
  if (argc < 3) {
    fprintf(stderr, "usage: %s RELAY_IP:PORT RELAY_FINGERPRINT [SECONDS]\n", argv[0]);
    return 2;
  }
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.name = "player1";
  a.tone_hz = 330;
  b.name = "player2";
  b.tone_hz = 550;
  if ((err = start(&a, argv[1], argv[2])) != 0 || (err = start(&b, argv[1], argv[2])) != 0) {
    fprintf(stderr, "context: %s (%s)\n", parley_strerror(err), parley_last_error_message());
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (frame = 0; frame < FPS * (seconds + 10) && !(a.ended && b.ended); ++frame) {
    pump_events(&a);
    pump_events(&b);
    if (a.registered && b.registered && !a.call) { /* player1 opens voice chat */
      parley_context_fingerprint(b.ctx, fp, sizeof fp);
      if ((err = parley_call_start(a.ctx, fp, &a.call)) != 0) {
        fprintf(stderr, "call: %s (%s)\n", parley_strerror(err), parley_last_error_message());
        return 1;
      }
    }
    frame_io(&a, frame);
    frame_io(&b, frame);
    if (a.heard_samples >= (long)RATE * seconds && !a.ended) parley_call_hangup(a.call);
    /* ... the game's own update and render would run here ... */
    next.tv_nsec += 1000000000L / FPS;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  printf("player1: sent %u states, received %u, heard RMS %.0f\n", a.states_sent,
         a.states_received, a.heard_samples ? sqrt(a.heard_energy / a.heard_samples) : 0.0);
  printf("player2: sent %u states, received %u, heard RMS %.0f\n", b.states_sent,
         b.states_received, b.heard_samples ? sqrt(b.heard_energy / b.heard_samples) : 0.0);
  ok = a.ended && b.ended && a.states_received > 0 && b.states_received > 0 &&
       a.heard_samples && b.heard_samples && sqrt(a.heard_energy / a.heard_samples) > 1000 &&
       sqrt(b.heard_energy / b.heard_samples) > 1000;
  parley_call_destroy(a.call);
  parley_call_destroy(b.call);
  parley_context_destroy(a.ctx);
  parley_context_destroy(b.ctx);
  parley_identity_destroy(a.id);
  parley_identity_destroy(b.id);
  return ok ? 0 : 1;
}
