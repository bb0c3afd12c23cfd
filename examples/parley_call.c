/*
 * parley-call: a command-line voice call through a parley relay, using only the public C API.
 * A WAV file plays as the microphone, what the peer says is recorded to a WAV file, and a
 * status line is printed every second (path, RTT, loss, jitter-buffer delay, bitrate,
 * profile).
 *
 *   parley-call --relay HOST:PORT [--relay-fp HEX] --seed FILE (--call FINGERPRINT | --answer)
 *               [--in IN.wav] [--out OUT.wav] [--duration SECONDS] [--tail SECONDS]
 *               [--bind IP:PORT] [--no-direct] [--loopback] [--fingerprint-file FILE]
 *               [--chunk-ms MS] [--status-ms MS] [--mute-after SECONDS] [--profile N]
 *               [--stun HOST:PORT[,HOST:PORT...]] [--port-mapping]
 *
 * The seed file is created (mode 0600) when absent. The WAV must be 16-bit PCM, mono or
 * stereo, at 8, 12, 16, 24 or 48 kHz; the recording has the same format (48 kHz mono without
 * --in). The caller hangs up --tail seconds (default 1.5) after its input ends, or after
 * --duration; the callee records until the caller hangs up (or --duration).
 *
 * The audio thread stands in for a sound card: every --chunk-ms (default 10) on an absolute
 * clock it pushes one chunk of the input and pulls one chunk of output, exactly as a real
 * audio callback would.
 */
#define _POSIX_C_SOURCE 200809L
#include <parley/parley.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------ */
/* WAV files (16-bit PCM)                                                                     */

typedef struct wav {
  int rate, channels;
  int16_t *samples; /* interleaved */
  size_t frames;
} wav;

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int wav_read(const char *path, wav *w) {
  FILE *f = fopen(path, "rb");
  unsigned char h[12], ch[8], fmt[16];
  int have_fmt = 0;
  if (!f) {
    fprintf(stderr, "parley-call: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0) {
    fprintf(stderr, "parley-call: %s is not a RIFF/WAVE file\n", path);
    fclose(f);
    return -1;
  }
  while (fread(ch, 1, 8, f) == 8) {
    uint32_t len = le32(ch + 4);
    if (memcmp(ch, "fmt ", 4) == 0 && len >= 16) {
      if (fread(fmt, 1, 16, f) != 16) break;
      if (le16(fmt) != 1 || le16(fmt + 14) != 16) {
        fprintf(stderr, "parley-call: %s is not 16-bit PCM\n", path);
        fclose(f);
        return -1;
      }
      w->channels = le16(fmt + 2);
      w->rate = (int)le32(fmt + 4);
      have_fmt = 1;
      if (fseek(f, (long)(len - 16 + (len & 1)), SEEK_CUR) != 0) break;
    } else if (memcmp(ch, "data", 4) == 0 && have_fmt) {
      size_t i, n = len / 2;
      unsigned char *raw = malloc(len ? len : 1);
      w->samples = malloc((n ? n : 1) * sizeof(int16_t));
      if (!raw || !w->samples || fread(raw, 1, len, f) != len) {
        fprintf(stderr, "parley-call: %s: truncated data\n", path);
        free(raw);
        fclose(f);
        return -1;
      }
      for (i = 0; i < n; ++i) w->samples[i] = (int16_t)le16(raw + 2 * i);
      free(raw);
      w->frames = n / (size_t)w->channels;
      fclose(f);
      return 0;
    } else if (fseek(f, (long)(len + (len & 1)), SEEK_CUR) != 0) {
      break;
    }
  }
  fprintf(stderr, "parley-call: %s: no fmt/data chunk\n", path);
  fclose(f);
  return -1;
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}
static void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

static int wav_write(const char *path, const wav *w) {
  unsigned char h[44];
  size_t i, n = w->frames * (size_t)w->channels;
  uint32_t bytes = (uint32_t)(n * 2);
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "parley-call: cannot create %s: %s\n", path, strerror(errno));
    return -1;
  }
  memcpy(h, "RIFF", 4);
  put32(h + 4, 36 + bytes);
  memcpy(h + 8, "WAVEfmt ", 8);
  put32(h + 16, 16);
  put16(h + 20, 1);
  put16(h + 22, (uint16_t)w->channels);
  put32(h + 24, (uint32_t)w->rate);
  put32(h + 28, (uint32_t)(w->rate * w->channels * 2));
  put16(h + 32, (uint16_t)(w->channels * 2));
  put16(h + 34, 16);
  memcpy(h + 36, "data", 4);
  put32(h + 40, bytes);
  fwrite(h, 1, 44, f);
  for (i = 0; i < n; ++i) {
    unsigned char s[2];
    put16(s, (uint16_t)w->samples[i]);
    fwrite(s, 1, 2, f);
  }
  if (fclose(f) != 0) {
    fprintf(stderr, "parley-call: writing %s failed\n", path);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The audio thread: a simulated sound card                                                   */

typedef struct audio {
  parley_call *call;
  int rate, channels, chunk;   /* chunk: frames per tick */
  const wav *in;               /* NULL: silence */
  size_t in_pos;               /* frames pushed */
  int16_t *out;                /* recording */
  size_t out_frames, out_cap;  /* frames */
  atomic_int stop;
  atomic_int input_done;
  double mute_after;           /* seconds, < 0: never */
} audio;

static void timespec_add_ns(struct timespec *t, long ns) {
  t->tv_nsec += ns;
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec += 1;
  }
}

static void *audio_main(void *arg) {
  audio *a = arg;
  const size_t ch = (size_t)a->channels;
  const long tick_ns = (long)a->chunk * 1000000000L / a->rate;
  int16_t *silence = calloc((size_t)a->chunk * ch, sizeof(int16_t));
  struct timespec next;
  int muted = 0;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!atomic_load(&a->stop) && silence) {
    /* Microphone: the next chunk of the input (its tail padded with silence). */
    if (a->in && a->in_pos < a->in->frames) {
      size_t n = a->in->frames - a->in_pos;
      if (n > (size_t)a->chunk) n = (size_t)a->chunk;
      parley_call_push_audio(a->call, a->in->samples + a->in_pos * ch, n);
      if (n < (size_t)a->chunk) parley_call_push_audio(a->call, silence, (size_t)a->chunk - n);
      a->in_pos += n;
    } else {
      parley_call_push_audio(a->call, silence, (size_t)a->chunk);
      atomic_store(&a->input_done, 1);
    }
    if (!muted && a->mute_after >= 0 &&
        (double)a->out_frames / a->rate >= a->mute_after) {
      parley_call_set_muted(a->call, 1);
      muted = 1;
    }
    /* Speaker: always a full chunk. */
    if (a->out_frames + (size_t)a->chunk > a->out_cap) {
      size_t cap = a->out_cap ? a->out_cap * 2 : (size_t)a->rate * 8;
      int16_t *grown = realloc(a->out, cap * ch * sizeof(int16_t));
      if (!grown) break;
      a->out = grown;
      a->out_cap = cap;
    }
    parley_call_pull_audio(a->call, a->out + a->out_frames * ch, (size_t)a->chunk);
    a->out_frames += (size_t)a->chunk;
    timespec_add_ns(&next, tick_ns);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
  }
  free(silence);
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */

static const char *state_name(int s) {
  switch (s) {
    case PARLEY_CALL_INVITING: return "inviting";
    case PARLEY_CALL_RINGING: return "ringing";
    case PARLEY_CALL_INCOMING: return "incoming";
    case PARLEY_CALL_ACTIVE: return "active";
    case PARLEY_CALL_ENDED: return "ended";
  }
  return "?";
}
static const char *path_name(int p) { return p == PARLEY_PATH_DIRECT ? "direct" : "relay"; }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
  struct timespec t;
  t.tv_sec = ms / 1000;
  t.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&t, NULL);
}

static int usage(void) {
  fprintf(stderr,
          "usage: parley-call --relay HOST:PORT [--relay-fp HEX] --seed FILE\n"
          "                   (--call FINGERPRINT | --answer) [--in IN.wav] [--out OUT.wav]\n"
          "                   [--duration S] [--tail S] [--bind IP:PORT] [--no-direct]\n"
          "                   [--loopback] [--fingerprint-file FILE] [--chunk-ms MS]\n"
          "                   [--status-ms MS] [--mute-after S] [--profile N]\n"
          "                   [--stun HOST:PORT[,HOST:PORT...]] [--port-mapping]\n"
          "  --profile N  always send with voice profile N (0 best .. 4); default: adaptive\n"
          "  --stun LIST  STUN servers asked for our public mappings next to the relay\n"
          "  --port-mapping  ask the gateway for a port (PCP, NAT-PMP, UPnP)\n");
  return 2;
}

static void print_status(parley_call *call, double t, uint64_t *last_bytes, double *last_t) {
  parley_call_stats s;
  double kbps;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  if (parley_call_get_stats(call, &s) != PARLEY_OK) return;
  kbps = t > *last_t ? (double)(s.audio_bytes_sent - *last_bytes) * 8 / (t - *last_t) / 1000
                     : 0;
  *last_bytes = s.audio_bytes_sent;
  *last_t = t;
  printf("status t=%.1fs path=%s rtt=%ums loss=%.1f%% peer_loss=%.1f%% jb=%u/%ums "
         "bitrate=%.1fkbps profile=%d fec_hint=%d%% decoded=%llu concealed=%llu fec=%llu "
         "red=%llu late=%llu gap=%ums%s\n",
         t, path_name(s.path), s.rtt_ms, s.loss_permille / 10.0, s.peer_loss_permille / 10.0,
         s.jitter_delay_ms, s.jitter_target_ms, kbps, s.profile, s.fec_loss_hint,
         (unsigned long long)s.frames_decoded, (unsigned long long)s.concealed,
         (unsigned long long)s.fec_recovered, (unsigned long long)s.red_recovered,
         (unsigned long long)s.late, s.longest_gap_ms, s.muted ? " muted" : "");
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *relay = NULL, *relay_fp = NULL, *seed = NULL, *peer = NULL, *in_path = NULL;
  const char *out_path = NULL, *bind = NULL, *fp_file = NULL, *stun = NULL;
  int answer = 0, no_direct = 0, loopback = 0, chunk_ms = 10, status_ms = 1000, i, err;
  int port_mapping = 0;
  int profile = -1;
  double duration = -1, tail = 1.5, mute_after = -1;
  parley_identity *me = NULL;
  parley_context *ctx = NULL;
  parley_context_config cfg;
  parley_call *call = NULL;
  wav in, rec;
  audio a;
  pthread_t th;
  int audio_running = 0, state = 0, exit_code = 1;
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
  double deadline, active_at = 0, next_status = 0, last_t = 0;
  uint64_t last_bytes = 0;

  memset(&in, 0, sizeof in);
  memset(&rec, 0, sizeof rec);
  memset(&a, 0, sizeof a);
  for (i = 1; i < argc; ++i) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(o, "--answer") == 0) { answer = 1; continue; }
    if (strcmp(o, "--no-direct") == 0) { no_direct = 1; continue; }
    if (strcmp(o, "--loopback") == 0) { loopback = 1; continue; }
    if (strcmp(o, "--port-mapping") == 0) { port_mapping = 1; continue; }
    if (!v) return usage();
    ++i;
    if (strcmp(o, "--relay") == 0) relay = v;
    else if (strcmp(o, "--relay-fp") == 0) relay_fp = v;
    else if (strcmp(o, "--seed") == 0) seed = v;
    else if (strcmp(o, "--call") == 0) peer = v;
    else if (strcmp(o, "--in") == 0) in_path = v;
    else if (strcmp(o, "--out") == 0) out_path = v;
    else if (strcmp(o, "--bind") == 0) bind = v;
    else if (strcmp(o, "--stun") == 0) stun = v;
    else if (strcmp(o, "--fingerprint-file") == 0) fp_file = v;
    else if (strcmp(o, "--duration") == 0) duration = atof(v);
    else if (strcmp(o, "--tail") == 0) tail = atof(v);
    else if (strcmp(o, "--mute-after") == 0) mute_after = atof(v);
    else if (strcmp(o, "--chunk-ms") == 0) chunk_ms = atoi(v);
    else if (strcmp(o, "--status-ms") == 0) status_ms = atoi(v);
    else if (strcmp(o, "--profile") == 0) profile = atoi(v);
    else return usage();
  }
  if (!relay || !seed || (!peer) == !answer || chunk_ms < 1 || chunk_ms > 100 || profile > 4) {
    return usage();
  }

  if (in_path && wav_read(in_path, &in) != 0) return 1;
  err = parley_identity_load_file(seed, &me);
  if (err == PARLEY_ERR_SEED_FILE_NOT_FOUND) {
    err = parley_identity_generate(&me);
    if (err == PARLEY_OK) err = parley_identity_save_file(me, seed, 0);
  }
  if (err != PARLEY_OK) goto fail;
  parley_identity_fingerprint(me, fp, sizeof fp);
  printf("fingerprint %s\n", fp);
  fflush(stdout);
  if (fp_file) {
    FILE *f = fopen(fp_file, "w");
    if (!f || fprintf(f, "%s\n", fp) < 0 || fclose(f) != 0) {
      fprintf(stderr, "parley-call: cannot write %s\n", fp_file);
      goto out;
    }
  }

  parley_context_config_init(&cfg);
  cfg.relay_address = relay;
  cfg.relay_fingerprint = relay_fp;
  cfg.bind_address = bind;
  cfg.sample_rate = in_path ? in.rate : 48000;
  cfg.channels = in_path ? in.channels : 1;
  cfg.disable_direct = no_direct;
  cfg.stun_servers = stun;
  cfg.port_mapping = port_mapping;
  cfg.include_loopback = loopback;
  if (profile >= 0) {
    cfg.quality_mode = PARLEY_QUALITY_MODE_FIXED;
    cfg.quality_profile = profile;
  }
  err = parley_context_create(me, &cfg, &ctx); /* poll mode: events are read below */
  if (err != PARLEY_OK) goto fail;

  deadline = now_s() + 10; /* to register, and to be called */
  for (;;) {
    parley_event ev;
    double t = now_s();
    while (parley_context_poll_event(ctx, &ev) == 1) {
      switch (ev.type) {
        case PARLEY_EVENT_RELAY_STATE:
          if (ev.relay_state == PARLEY_RELAY_REGISTERED) {
            printf("relay registered\n");
            if (peer && !call) {
              err = parley_call_start(ctx, peer, &call);
              if (err != PARLEY_OK) goto fail;
            }
            if (answer) deadline = t + (duration > 0 ? duration : 60);
          } else if (ev.error != PARLEY_OK) {
            /* Why the relay connection was lost (a refused pin, an unreachable relay). */
            printf("relay lost %d: %s\n", ev.error, parley_strerror(ev.error));
          }
          break;
        case PARLEY_EVENT_INCOMING_CALL:
          if (answer && !call) {
            call = ev.call;
            printf("incoming call from %s\n", ev.peer);
            err = parley_call_accept(call);
            if (err != PARLEY_OK) goto fail;
          } else {
            parley_call_reject(ev.call);
            parley_call_destroy(ev.call);
          }
          break;
        case PARLEY_EVENT_CALL_STATE:
          if (ev.call != call) break;
          state = ev.call_state;
          printf("call %s%s%s\n", state_name(state), *ev.text ? ": " : "", ev.text);
          if (state == PARLEY_CALL_ACTIVE && !audio_running) {
            a.call = call;
            a.rate = cfg.sample_rate;
            a.channels = cfg.channels;
            a.chunk = a.rate / 1000 * chunk_ms;
            a.in = in_path ? &in : NULL;
            a.mute_after = mute_after;
            atomic_init(&a.stop, 0);
            atomic_init(&a.input_done, 0);
            if (pthread_create(&th, NULL, audio_main, &a) != 0) goto out;
            audio_running = 1;
            active_at = t;
            next_status = t + status_ms / 1000.0;
            deadline = duration > 0 ? t + duration : t + 3600;
          }
          break;
        case PARLEY_EVENT_PATH_CHANGED:
          printf("path %s -> %s (%s)\n", path_name(ev.path_from), path_name(ev.path), ev.text);
          break;
        case PARLEY_EVENT_ERROR:
          printf("relay error %d: %s\n", ev.error, ev.text);
          break;
        case PARLEY_EVENT_QUALITY_CHANGED:
          printf("quality %d -> %d (%s) at ts %u\n", ev.profile_from, ev.profile, ev.text,
                 (unsigned)ev.timestamp);
          break;
      }
      fflush(stdout);
    }
    if (state == PARLEY_CALL_ENDED) break;
    if (audio_running) {
      if (t >= next_status) {
        print_status(call, t - active_at, &last_bytes, &last_t);
        next_status += status_ms / 1000.0;
      }
      /* The caller hangs up once its input has played (plus a tail for the peer's reply). */
      if (!answer && in_path && duration <= 0 && atomic_load(&a.input_done) &&
          t >= active_at + (double)in.frames / in.rate + tail) {
        break;
      }
    }
    if (t >= deadline) {
      if (!audio_running) {
        fprintf(stderr, "parley-call: %s\n", call ? "the call did not start" : "no call");
        goto out;
      }
      break;
    }
    sleep_ms(5);
  }
  exit_code = 0;
  if (audio_running) {
    print_status(call, now_s() - active_at, &last_bytes, &last_t);
    if (state != PARLEY_CALL_ENDED) parley_call_hangup(call);
    atomic_store(&a.stop, 1);
    pthread_join(th, NULL);
    audio_running = 0;
    printf("recorded %.2f s\n", (double)a.out_frames / a.rate);
    if (out_path) {
      rec.rate = a.rate;
      rec.channels = a.channels;
      rec.samples = a.out;
      rec.frames = a.out_frames;
      if (wav_write(out_path, &rec) != 0) exit_code = 1;
    }
  }
  goto out;

fail:
  fprintf(stderr, "parley-call: %s: %s\n", parley_strerror(err), parley_last_error_message());
  exit_code = 1;
out:
  if (audio_running) {
    atomic_store(&a.stop, 1);
    pthread_join(th, NULL);
  }
  parley_call_destroy(call);
  parley_context_destroy(ctx);
  parley_identity_destroy(me);
  free(in.samples);
  free(a.out);
  return exit_code;
}
