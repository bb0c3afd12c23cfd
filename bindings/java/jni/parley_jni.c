/*
 * parley_jni.c — the JNI glue of the Java binding (org.parley), written against the public C
 * API (include/parley/parley.h) only.
 *
 * Handles cross into Java as jlong (the C pointers). Failures of non-audio functions are
 * thrown as org.parley.ParleyException from here, with parley_last_error_message read on the
 * failing thread right away; the audio functions return the C result (no allocation, no JNI
 * call but the array pinning on the hot path).
 *
 * Events: every context delivers to on_event (the C API's callback mode) on the context's own
 * thread. That thread is attached to the JVM as a daemon once (AttachCurrentThreadAsDaemon);
 * its JNIEnv is cached in a thread-local and the thread detaches itself when it exits (a
 * pthread key destructor). Each event becomes one call of Context.onNativeEvent on the
 * Context's global reference; an exception the listener throws is printed and cleared, so it
 * never unwinds into parley.
 *
 * User data: each org.parley.Call and Room is attached to its handle as the handle's user data
 * (parley_call_set_user_data / parley_room_set_user_data), as a JNI global reference that
 * callSetUserData/roomSetUserData create; events hand it to onNativeEvent as `target` (the
 * event's parley_event.user_data), so no event is matched by a handle's address. The global
 * reference is deleted when it is replaced and after the handle's parley_*_destroy returned
 * (from then on no event names the handle). parley never re-enters the callback (events raised by a parley
 * call the listener makes are delivered after it returns) and refuses parley_context_destroy
 * from inside it (PARLEY_ERR_WRONG_THREAD), so the glue keeps no per-thread dispatch state.
 */
#include <jni.h>
#include <parley/parley.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "org_parley_Native.h"

/* ------------------------------------------------------------------------------------------ */
/* Cached VM state (JNI_OnLoad)                                                               */

static JavaVM *g_vm;
static jclass g_exception_class; /* org.parley.ParleyException */
static jmethodID g_exception_init; /* (ILjava/lang/String;Ljava/lang/String;)V */
static jclass g_string_class;
static jmethodID g_string_from_bytes; /* String(byte[], String charsetName) */
static jmethodID g_string_get_bytes;  /* byte[] String.getBytes(String charsetName) */
static jstring g_utf8;                /* "UTF-8" */
static jmethodID g_on_event;          /* Context.onNativeEvent */
static jclass g_member_class;         /* org.parley.RoomMember */
static jmethodID g_member_init;       /* RoomMember(String fingerprint, int streamId) */
static pthread_key_t g_detach_key;

/* The glue state of one org.parley.Context. */
typedef struct jparley_context {
  parley_context *ctx; /* atomic: set once parley_context_create returned */
  jobject self;        /* global reference to the Context */
  char thread_name[32];
} jparley_context;

static __thread JNIEnv *t_attached_env; /* set on threads this file attached */

static parley_context *context_of(const jparley_context *jc) {
  return __atomic_load_n(&jc->ctx, __ATOMIC_ACQUIRE);
}

#define HANDLE(T, h) ((T *)(intptr_t)(h))
#define TO_JLONG(p) ((jlong)(intptr_t)(p))

/* ------------------------------------------------------------------------------------------ */
/* Strings                                                                                    */

/* A Java String from NUL-terminated UTF-8 (NewStringUTF takes modified UTF-8, which differs
 * for NUL and characters outside the BMP, so anything but ASCII goes through the String
 * constructor). NULL with an exception pending on failure. */
static jstring new_string(JNIEnv *env, const char *s) {
  size_t n, i;
  jbyteArray bytes;
  jstring out;
  if (!s) s = "";
  n = strlen(s);
  for (i = 0; i < n; ++i) {
    if ((unsigned char)s[i] >= 0x80) break;
  }
  if (i == n) return (*env)->NewStringUTF(env, s);
  if (n > 0x7fffffff) n = 0x7fffffff;
  bytes = (*env)->NewByteArray(env, (jsize)n);
  if (!bytes) return NULL;
  (*env)->SetByteArrayRegion(env, bytes, 0, (jsize)n, (const jbyte *)s);
  out = (jstring)(*env)->NewObject(env, g_string_class, g_string_from_bytes, bytes, g_utf8);
  (*env)->DeleteLocalRef(env, bytes);
  return out;
}

static void throw_new(JNIEnv *env, const char *class_name, const char *message) {
  jclass c = (*env)->FindClass(env, class_name);
  if (c) (*env)->ThrowNew(env, c, message);
}

/* Throws ParleyException(code, parley_strerror(code), detail). */
static void throw_parley_detail(JNIEnv *env, int code, const char *detail) {
  jstring description, message;
  jobject e;
  if ((*env)->ExceptionCheck(env)) return;
  description = new_string(env, parley_strerror(code));
  if (!description) return;
  message = new_string(env, detail);
  if (!message) return;
  e = (*env)->NewObject(env, g_exception_class, g_exception_init, (jint)code, description,
                        message);
  if (e) (*env)->Throw(env, (jthrowable)e);
}

/* Throws for a failed parley call on this thread, with its last error message. Call it right
 * after the failure: the message belongs to the most recent parley error of the thread. */
static void throw_parley(JNIEnv *env, int code) {
  /* Copied first: the string is only valid until the next parley call on this thread. */
  const char *m = parley_last_error_message();
  size_t n = strlen(m);
  char *detail = (char *)malloc(n + 1);
  if (!detail) {
    throw_parley_detail(env, code, "");
    return;
  }
  memcpy(detail, m, n + 1);
  throw_parley_detail(env, code, detail);
  free(detail);
}

/* A malloc'd NUL-terminated UTF-8 copy of `s` in *out (NULL for a null String). Returns 0, or
 * -1 with an exception pending. A String containing NUL is refused: C would see it cut. */
static int utf8_of(JNIEnv *env, jstring s, char **out) {
  jbyteArray bytes;
  jsize n;
  char *c;
  *out = NULL;
  if (!s) return 0;
  bytes = (jbyteArray)(*env)->CallObjectMethod(env, s, g_string_get_bytes, g_utf8);
  if (!bytes || (*env)->ExceptionCheck(env)) return -1;
  n = (*env)->GetArrayLength(env, bytes);
  c = (char *)malloc((size_t)n + 1);
  if (!c) {
    (*env)->DeleteLocalRef(env, bytes);
    throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: string copy");
    return -1;
  }
  (*env)->GetByteArrayRegion(env, bytes, 0, n, (jbyte *)c);
  (*env)->DeleteLocalRef(env, bytes);
  c[n] = '\0';
  if (memchr(c, '\0', (size_t)n)) {
    free(c);
    throw_parley_detail(env, PARLEY_ERR_INVALID_ARGUMENT, "string contains a NUL character");
    return -1;
  }
  *out = c;
  return 0;
}

static jbyteArray new_bytes(JNIEnv *env, const uint8_t *data, size_t len) {
  jbyteArray a;
  if (len > 0x7fffffff) len = 0x7fffffff;
  a = (*env)->NewByteArray(env, (jsize)len);
  if (a && len) (*env)->SetByteArrayRegion(env, a, 0, (jsize)len, (const jbyte *)data);
  return a;
}

/* ------------------------------------------------------------------------------------------ */
/* Threads                                                                                    */

static void detach_at_exit(void *value) {
  (void)value;
  /* The thread is leaving: no Java frame is on it, so it may detach. */
  if (g_vm) (*g_vm)->DetachCurrentThread(g_vm);
}

/* The JNIEnv of the calling thread, attaching it as a daemon thread named `name` the first
 * time. NULL if the VM refuses. */
static JNIEnv *thread_env(const char *name) {
  JNIEnv *env = t_attached_env;
  JavaVMAttachArgs args;
  if (env) return env;
  if ((*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_6) == JNI_OK) return env; /* Java */
  args.version = JNI_VERSION_1_6;
  args.name = (char *)name;
  args.group = NULL;
  if ((*g_vm)->AttachCurrentThreadAsDaemon(g_vm, (void **)&env, &args) != JNI_OK) return NULL;
  t_attached_env = env;
  pthread_setspecific(g_detach_key, (void *)1); /* non-NULL: the destructor runs at exit */
  return env;
}

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                     */

static void on_event(void *user_data, const parley_event *ev) {
  jparley_context *jc = (jparley_context *)user_data;
  JNIEnv *env = thread_env(jc->thread_name);
  jstring peer = NULL, text;
  jbyteArray data = NULL;
  if (!env) return;
  /* Native threads never return to Java, so their local references are freed here. */
  if ((*env)->PushLocalFrame(env, 8) != 0) {
    (*env)->ExceptionDescribe(env);
    (*env)->ExceptionClear(env);
    return;
  }
  if (ev->peer[0]) peer = new_string(env, ev->peer);
  text = new_string(env, ev->text);
  if (ev->type == PARLEY_EVENT_DATAGRAM || ev->type == PARLEY_EVENT_ROOM_FRAME) {
    data = new_bytes(env, ev->data, ev->len);
  }
  if (!(*env)->ExceptionCheck(env)) {
    /* uint32_t fields cross as jint (the same 32 bits); Java reads them as unsigned. */
    (*env)->CallVoidMethod(env, jc->self, g_on_event, (jint)ev->type, TO_JLONG(ev->call),
                           (jint)ev->relay_state, (jint)ev->call_state, (jint)ev->error,
                           (jint)ev->path, (jint)ev->path_from, peer, text, data,
                           (jint)ev->profile, (jint)ev->profile_from, (jint)ev->quality_reason,
                           (jint)ev->timestamp, TO_JLONG(ev->room), (jint)ev->stream_id,
                           (jint)ev->sequence, (jint)ev->member_count, (jint)ev->origin,
                           (jobject)ev->user_data /* a global reference, or NULL */);
  }
  if ((*env)->ExceptionCheck(env)) {
    /* The listener threw (or a conversion ran out of memory): report it like an uncaught
     * exception and carry on; nothing may unwind into parley. */
    (*env)->ExceptionDescribe(env);
    (*env)->ExceptionClear(env);
  }
  (*env)->PopLocalFrame(env, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Load                                                                                       */

static jclass global_class(JNIEnv *env, const char *name) {
  jclass local = (*env)->FindClass(env, name);
  jclass global;
  if (!local) return NULL;
  global = (jclass)(*env)->NewGlobalRef(env, local);
  (*env)->DeleteLocalRef(env, local);
  return global;
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
  JNIEnv *env;
  jclass context_class;
  jstring utf8;
  (void)reserved;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  g_vm = vm;
  if (pthread_key_create(&g_detach_key, detach_at_exit) != 0) return JNI_ERR;
  /* Looked up here, on a thread whose class loader sees org.parley: FindClass from the
   * context threads would search the system class loader only (as on Android). */
  g_exception_class = global_class(env, "org/parley/ParleyException");
  if (!g_exception_class) return JNI_ERR;
  g_exception_init = (*env)->GetMethodID(env, g_exception_class, "<init>",
                                         "(ILjava/lang/String;Ljava/lang/String;)V");
  g_string_class = global_class(env, "java/lang/String");
  if (!g_exception_init || !g_string_class) return JNI_ERR;
  g_string_from_bytes =
      (*env)->GetMethodID(env, g_string_class, "<init>", "([BLjava/lang/String;)V");
  g_string_get_bytes =
      (*env)->GetMethodID(env, g_string_class, "getBytes", "(Ljava/lang/String;)[B");
  if (!g_string_from_bytes || !g_string_get_bytes) return JNI_ERR;
  context_class = (*env)->FindClass(env, "org/parley/Context");
  if (!context_class) return JNI_ERR;
  g_on_event = (*env)->GetMethodID(
      env, context_class, "onNativeEvent",
      "(IJIIIIILjava/lang/String;Ljava/lang/String;[BIIIIJIIIILjava/lang/Object;)V");
  (*env)->DeleteLocalRef(env, context_class);
  if (!g_on_event) return JNI_ERR;
  g_member_class = global_class(env, "org/parley/RoomMember");
  if (!g_member_class) return JNI_ERR;
  g_member_init = (*env)->GetMethodID(env, g_member_class, "<init>", "(Ljava/lang/String;I)V");
  if (!g_member_init) return JNI_ERR;
  utf8 = (*env)->NewStringUTF(env, "UTF-8");
  if (!utf8) return JNI_ERR;
  g_utf8 = (jstring)(*env)->NewGlobalRef(env, utf8);
  (*env)->DeleteLocalRef(env, utf8);
  if (!g_utf8) return JNI_ERR;
  return JNI_VERSION_1_6;
}

/* ------------------------------------------------------------------------------------------ */
/* Library                                                                                    */

JNIEXPORT jint JNICALL Java_org_parley_Native_version(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)parley_version();
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_versionString(JNIEnv *env, jclass cls) {
  (void)cls;
  return new_string(env, parley_version_string());
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_strerror(JNIEnv *env, jclass cls, jint code) {
  (void)cls;
  return new_string(env, parley_strerror(code));
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_errorName(JNIEnv *env, jclass cls, jint code) {
  (void)cls;
  return new_string(env, parley_error_name(code));
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_eventTypeName(JNIEnv *env, jclass cls,
                                                               jint type) {
  (void)cls;
  return new_string(env, parley_event_type_name(type));
}

JNIEXPORT void JNICALL Java_org_parley_Native_setLogLevel(JNIEnv *env, jclass cls,
                                                           jint level) {
  int r;
  (void)cls;
  r = parley_log_set_level(level);
  if (r != PARLEY_OK) throw_parley(env, r);
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_normalizeFingerprint(JNIEnv *env, jclass cls,
                                                                      jstring text) {
  char *t, out[PARLEY_FINGERPRINT_BUF_LEN];
  int r;
  (void)cls;
  if (utf8_of(env, text, &t) != 0) return NULL;
  r = parley_fingerprint_normalize(t, out, sizeof out);
  free(t);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  return new_string(env, out);
}

/* ------------------------------------------------------------------------------------------ */
/* Identity                                                                                   */

JNIEXPORT jlong JNICALL Java_org_parley_Native_identityGenerate(JNIEnv *env, jclass cls) {
  parley_identity *id = NULL;
  int r;
  (void)cls;
  r = parley_identity_generate(&id);
  if (r != PARLEY_OK) throw_parley(env, r);
  return TO_JLONG(id);
}

JNIEXPORT jlong JNICALL Java_org_parley_Native_identityFromSeed(JNIEnv *env, jclass cls,
                                                                jbyteArray seed) {
  parley_identity *id = NULL;
  uint8_t buf[PARLEY_SEED_LEN];
  jsize n;
  int r;
  (void)cls;
  n = (*env)->GetArrayLength(env, seed);
  if (n != PARLEY_SEED_LEN) {
    /* parley checks the length too: let it say so in its own words. */
    uint8_t *copy = (uint8_t *)malloc(n > 0 ? (size_t)n : 1);
    if (!copy) {
      throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: seed");
      return 0;
    }
    (*env)->GetByteArrayRegion(env, seed, 0, n, (jbyte *)copy);
    r = parley_identity_from_seed(copy, (size_t)n, &id);
    memset(copy, 0, (size_t)n);
    free(copy);
    if (r == PARLEY_OK) {
      parley_identity_destroy(id);
      throw_parley_detail(env, PARLEY_ERR_INVALID_ARGUMENT, "seed is not 32 bytes");
    } else {
      throw_parley(env, r);
    }
    return 0;
  }
  (*env)->GetByteArrayRegion(env, seed, 0, n, (jbyte *)buf);
  r = parley_identity_from_seed(buf, sizeof buf, &id);
  memset(buf, 0, sizeof buf); /* best effort: the Java array is the caller's to wipe */
  if (r != PARLEY_OK) throw_parley(env, r);
  return TO_JLONG(id);
}

JNIEXPORT jlong JNICALL Java_org_parley_Native_identityLoadFile(JNIEnv *env, jclass cls,
                                                                jstring path) {
  parley_identity *id = NULL;
  char *p;
  int r;
  (void)cls;
  if (utf8_of(env, path, &p) != 0) return 0;
  r = parley_identity_load_file(p, &id);
  free(p);
  if (r != PARLEY_OK) throw_parley(env, r);
  return TO_JLONG(id);
}

JNIEXPORT void JNICALL Java_org_parley_Native_identitySaveFile(JNIEnv *env, jclass cls,
                                                               jlong id, jstring path,
                                                               jboolean overwrite) {
  char *p;
  int r;
  (void)cls;
  if (utf8_of(env, path, &p) != 0) return;
  r = parley_identity_save_file(HANDLE(const parley_identity, id), p,
                                overwrite ? PARLEY_SAVE_OVERWRITE : 0u);
  free(p);
  if (r != PARLEY_OK) throw_parley(env, r);
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_identityFingerprint(JNIEnv *env, jclass cls,
                                                                     jlong id) {
  char out[PARLEY_FINGERPRINT_BUF_LEN];
  int r;
  (void)cls;
  r = parley_identity_fingerprint(HANDLE(const parley_identity, id), out, sizeof out);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  return new_string(env, out);
}

JNIEXPORT jbyteArray JNICALL Java_org_parley_Native_identityPublicKey(JNIEnv *env, jclass cls,
                                                                      jlong id) {
  uint8_t key[PARLEY_PUBLIC_KEY_LEN];
  int r;
  (void)cls;
  r = parley_identity_public_key(HANDLE(const parley_identity, id), key);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  return new_bytes(env, key, sizeof key);
}

JNIEXPORT jbyteArray JNICALL Java_org_parley_Native_identityExportSeed(JNIEnv *env, jclass cls,
                                                                       jlong id) {
  uint8_t seed[PARLEY_SEED_LEN];
  jbyteArray a;
  int r;
  (void)cls;
  r = parley_identity_export_seed(HANDLE(const parley_identity, id), seed);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  a = new_bytes(env, seed, sizeof seed);
  memset(seed, 0, sizeof seed);
  return a;
}

JNIEXPORT jbyteArray JNICALL Java_org_parley_Native_identityCertificate(JNIEnv *env,
                                                                        jclass cls, jlong id) {
  const parley_identity *pid = HANDLE(const parley_identity, id);
  size_t len = 0;
  uint8_t *buf;
  jbyteArray a;
  int r;
  (void)cls;
  r = parley_identity_certificate_der(pid, NULL, &len);
  if (r != PARLEY_OK && r != PARLEY_ERR_BUFFER_TOO_SMALL) {
    throw_parley(env, r);
    return NULL;
  }
  buf = (uint8_t *)malloc(len ? len : 1);
  if (!buf) {
    throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: certificate");
    return NULL;
  }
  r = parley_identity_certificate_der(pid, buf, &len);
  if (r != PARLEY_OK) {
    free(buf);
    throw_parley(env, r);
    return NULL;
  }
  a = new_bytes(env, buf, len);
  free(buf);
  return a;
}

JNIEXPORT void JNICALL Java_org_parley_Native_identityDestroy(JNIEnv *env, jclass cls,
                                                              jlong id) {
  (void)env;
  (void)cls;
  parley_identity_destroy(HANDLE(parley_identity, id));
}

/* ------------------------------------------------------------------------------------------ */
/* Context                                                                                    */

JNIEXPORT jlong JNICALL Java_org_parley_Native_contextAlloc(JNIEnv *env, jclass cls,
                                                            jobject self) {
  jparley_context *jc;
  (void)cls;
  jc = (jparley_context *)calloc(1, sizeof *jc);
  if (!jc) {
    throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: context");
    return 0;
  }
  jc->self = (*env)->NewGlobalRef(env, self);
  if (!jc->self) {
    free(jc);
    throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: global reference");
    return 0;
  }
  snprintf(jc->thread_name, sizeof jc->thread_name, "parley-context");
  return TO_JLONG(jc);
}

JNIEXPORT void JNICALL Java_org_parley_Native_contextFree(JNIEnv *env, jclass cls,
                                                          jlong jctx) {
  jparley_context *jc = HANDLE(jparley_context, jctx);
  (void)cls;
  if (!jc || context_of(jc)) return; /* a live context is freed by contextDestroy only */
  (*env)->DeleteGlobalRef(env, jc->self);
  free(jc);
}

JNIEXPORT void JNICALL Java_org_parley_Native_contextCreate(
    JNIEnv *env, jclass cls, jlong jctx, jlong identity, jstring relay_address,
    jstring relay_fingerprint, jstring bind_address, jint sample_rate, jint channels,
    jint jitter_min_ms, jint jitter_max_ms, jboolean disable_direct, jboolean include_loopback,
    jint quality_mode, jint quality_profile, jstring bind_address6, jint port_min, jint port_max,
    jint quality_best_profile, jboolean dtx, jint no_path_timeout_ms,
    jboolean disable_network_watch, jstring stun_servers, jboolean port_mapping) {
  jparley_context *jc = HANDLE(jparley_context, jctx);
  const parley_identity *id = HANDLE(const parley_identity, identity);
  parley_context_config cfg;
  parley_context *ctx = NULL;
  char *relay = NULL, *relay_fp = NULL, *bind = NULL, *bind6 = NULL, *stun = NULL;
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
  int r;
  (void)cls;
  if (jitter_min_ms < 0 || jitter_max_ms < 0) {
    throw_parley_detail(env, PARLEY_ERR_INVALID_ARGUMENT, "negative jitter bounds");
    return;
  }
  if (no_path_timeout_ms < 0) {
    throw_parley_detail(env, PARLEY_ERR_INVALID_ARGUMENT, "negative noPathTimeoutMs");
    return;
  }
  if (utf8_of(env, relay_address, &relay) != 0 ||
      utf8_of(env, relay_fingerprint, &relay_fp) != 0 || utf8_of(env, bind_address, &bind) != 0 ||
      utf8_of(env, bind_address6, &bind6) != 0 || utf8_of(env, stun_servers, &stun) != 0)
    goto done;
  /* The event thread is named after the identity, for thread dumps and profilers. */
  if (id && parley_identity_fingerprint(id, fp, sizeof fp) == PARLEY_OK) {
    snprintf(jc->thread_name, sizeof jc->thread_name, "parley-%.8s", fp);
  }
  /* The macro passes this header's sizeof (parley_context_config_init_sized): a newer library
   * writes no more than this struct holds. */
  r = parley_context_config_init(&cfg);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    goto done;
  }
  cfg.relay_address = relay;
  cfg.relay_fingerprint = relay_fp;
  cfg.bind_address = bind;
  cfg.sample_rate = sample_rate;
  cfg.channels = channels;
  cfg.jitter_min_ms = (uint32_t)jitter_min_ms;
  cfg.jitter_max_ms = (uint32_t)jitter_max_ms;
  cfg.disable_direct = disable_direct ? 1 : 0;
  cfg.include_loopback = include_loopback ? 1 : 0;
  cfg.event_callback = on_event;
  cfg.event_user_data = jc;
  cfg.quality_mode = quality_mode;
  cfg.quality_profile = quality_profile;
  cfg.port_min = port_min;
  cfg.port_max = port_max;
  cfg.quality_best_profile = quality_best_profile;
  cfg.dtx = dtx ? 1 : 0;
  cfg.no_path_timeout_ms = (uint32_t)no_path_timeout_ms;
  cfg.bind_address6 = bind6;
  cfg.disable_network_watch = disable_network_watch ? 1 : 0;
  /* Config.stunServers joined with "," by Context.java (NULL: none); the copy lives until
   * parley_context_create returned, which keeps what it needs. */
  cfg.stun_servers = stun;
  cfg.port_mapping = port_mapping ? 1 : 0;
  r = parley_context_create(id, &cfg, &ctx);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    goto done;
  }
  __atomic_store_n(&jc->ctx, ctx, __ATOMIC_RELEASE);
done:
  free(relay);
  free(relay_fp);
  free(bind);
  free(bind6);
  free(stun);
}

JNIEXPORT void JNICALL Java_org_parley_Native_contextDestroy(JNIEnv *env, jclass cls,
                                                             jlong jctx) {
  jparley_context *jc = HANDLE(jparley_context, jctx);
  int r;
  (void)cls;
  if (!jc) return;
  /* From anywhere inside the context's own callback (the listener, including after a parley
   * call it made) parley refuses with PARLEY_ERR_WRONG_THREAD and changes nothing. */
  r = parley_context_destroy(context_of(jc));
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return;
  }
  /* No event runs any more: the Context may be collected. */
  (*env)->DeleteGlobalRef(env, jc->self);
  free(jc);
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_contextFingerprint(JNIEnv *env, jclass cls,
                                                                    jlong jctx) {
  char out[PARLEY_FINGERPRINT_BUF_LEN];
  int r;
  (void)cls;
  r = parley_context_fingerprint(context_of(HANDLE(jparley_context, jctx)), out, sizeof out);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  return new_string(env, out);
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_contextRelayFingerprint(JNIEnv *env,
                                                                         jclass cls,
                                                                         jlong jctx) {
  char out[PARLEY_FINGERPRINT_BUF_LEN];
  int r;
  (void)cls;
  r = parley_context_relay_fingerprint(context_of(HANDLE(jparley_context, jctx)), out,
                                       sizeof out);
  if (r == PARLEY_ERR_NOT_REGISTERED) return NULL; /* none configured, none trusted yet */
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  return new_string(env, out);
}

JNIEXPORT void JNICALL Java_org_parley_Native_contextTrustRelay(JNIEnv *env, jclass cls,
                                                               jlong jctx, jstring fingerprint) {
  char *fp;
  int r;
  (void)cls;
  if (utf8_of(env, fingerprint, &fp) != 0) return;
  /* Java passed a non-null String: NULL here would only be a glue bug, which parley refuses
   * with PARLEY_ERR_INVALID_ARGUMENT. */
  r = parley_context_trust_relay(context_of(HANDLE(jparley_context, jctx)), fp);
  free(fp);
  if (r != PARLEY_OK) throw_parley(env, r);
}

JNIEXPORT void JNICALL Java_org_parley_Native_contextNetworkChanged(JNIEnv *env, jclass cls,
                                                                   jlong jctx) {
  int r;
  (void)cls;
  r = parley_context_network_changed(context_of(HANDLE(jparley_context, jctx)));
  if (r != PARLEY_OK) throw_parley(env, r);
}

/* ------------------------------------------------------------------------------------------ */
/* Calls                                                                                      */

JNIEXPORT jlong JNICALL Java_org_parley_Native_callStart(JNIEnv *env, jclass cls, jlong jctx,
                                                         jstring peer) {
  parley_call *call = NULL;
  char *p;
  int r;
  (void)cls;
  if (utf8_of(env, peer, &p) != 0) return 0;
  r = parley_call_start(context_of(HANDLE(jparley_context, jctx)), p, &call);
  free(p);
  if (r != PARLEY_OK) throw_parley(env, r);
  return TO_JLONG(call);
}

JNIEXPORT void JNICALL Java_org_parley_Native_callAccept(JNIEnv *env, jclass cls, jlong call) {
  int r;
  (void)cls;
  r = parley_call_accept(HANDLE(parley_call, call));
  if (r != PARLEY_OK) throw_parley(env, r);
}

JNIEXPORT void JNICALL Java_org_parley_Native_callReject(JNIEnv *env, jclass cls, jlong call) {
  int r;
  (void)cls;
  r = parley_call_reject(HANDLE(parley_call, call));
  if (r != PARLEY_OK) throw_parley(env, r);
}

JNIEXPORT void JNICALL Java_org_parley_Native_callHangup(JNIEnv *env, jclass cls, jlong call) {
  int r;
  (void)cls;
  r = parley_call_hangup(HANDLE(parley_call, call));
  if (r != PARLEY_OK) throw_parley(env, r);
}

/* A new global reference to `target` for a handle's user data (NULL for null) in *ref: 0, or
 * -1 with an OutOfMemoryError thrown. */
static int user_data_ref(JNIEnv *env, jobject target, jobject *ref) {
  *ref = NULL;
  if (!target) return 0;
  *ref = (*env)->NewGlobalRef(env, target);
  if (*ref) return 0;
  throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: global reference");
  return -1;
}

/* After parley_*_set_user_data returned `r`: deletes the reference that is no longer
 * attached (the new one, with the error thrown, or the previous one). The context's thread
 * may be inside a callback with the previous reference as its target: the callee holds its
 * own reference to the object, so deleting this one is safe. */
static void user_data_settle(JNIEnv *env, int r, jobject ref, jobject old) {
  if (r != PARLEY_OK) {
    if (ref) (*env)->DeleteGlobalRef(env, ref);
    throw_parley(env, r);
  } else if (old) {
    (*env)->DeleteGlobalRef(env, old);
  }
}

/* Replaces the handle's user data with a new global reference to `target` (null: none), and
 * deletes the previous one. Java serialises this per handle (Context's locks). */
JNIEXPORT void JNICALL Java_org_parley_Native_callSetUserData(JNIEnv *env, jclass cls,
                                                              jlong call, jobject target) {
  parley_call *c = HANDLE(parley_call, call);
  jobject old = (jobject)parley_call_user_data(c), ref;
  (void)cls;
  if (user_data_ref(env, target, &ref) != 0) return;
  user_data_settle(env, parley_call_set_user_data(c, ref), ref, old);
}

/* The object attached to the handle (a new local reference), or null (none, or a handle that
 * is not live). */
JNIEXPORT jobject JNICALL Java_org_parley_Native_callUserData(JNIEnv *env, jclass cls,
                                                              jlong call) {
  jobject ref = (jobject)parley_call_user_data(HANDLE(const parley_call, call));
  (void)cls;
  return ref ? (*env)->NewLocalRef(env, ref) : NULL;
}

/* parley_call_destroy, then the handle's global reference (no event names it any more). */
JNIEXPORT void JNICALL Java_org_parley_Native_callDestroy(JNIEnv *env, jclass cls, jlong call) {
  parley_call *c = HANDLE(parley_call, call);
  jobject ref = (jobject)parley_call_user_data(c);
  (void)cls;
  if (parley_call_destroy(c) == PARLEY_OK && ref) (*env)->DeleteGlobalRef(env, ref);
}

JNIEXPORT jstring JNICALL Java_org_parley_Native_callPeer(JNIEnv *env, jclass cls, jlong call) {
  char out[PARLEY_FINGERPRINT_BUF_LEN];
  int r;
  (void)cls;
  r = parley_call_peer(HANDLE(const parley_call, call), out, sizeof out);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  return new_string(env, out);
}

/* The audio hot path: the array is pinned (no copy on most VMs) for the duration of the
 * push/pull only, which never lock, block or allocate; Java checked the range. */
JNIEXPORT jint JNICALL Java_org_parley_Native_callPush(JNIEnv *env, jclass cls, jlong call,
                                                       jshortArray pcm, jint offset,
                                                       jint frames) {
  jshort *p;
  int r;
  (void)cls;
  if (frames <= 0) return parley_call_push_audio(HANDLE(parley_call, call), NULL, 0);
  p = (jshort *)(*env)->GetPrimitiveArrayCritical(env, pcm, NULL);
  if (!p) return PARLEY_ERR_NO_MEMORY;
  r = parley_call_push_audio(HANDLE(parley_call, call), (const int16_t *)p + offset,
                             (size_t)frames);
  (*env)->ReleasePrimitiveArrayCritical(env, pcm, p, JNI_ABORT); /* read only */
  return r;
}

JNIEXPORT jint JNICALL Java_org_parley_Native_callPull(JNIEnv *env, jclass cls, jlong call,
                                                       jshortArray out, jint offset,
                                                       jint frames) {
  jshort *p;
  int r;
  (void)cls;
  if (frames <= 0) return parley_call_pull_audio(HANDLE(parley_call, call), NULL, 0);
  p = (jshort *)(*env)->GetPrimitiveArrayCritical(env, out, NULL);
  if (!p) return PARLEY_ERR_NO_MEMORY;
  r = parley_call_pull_audio(HANDLE(parley_call, call), (int16_t *)p + offset, (size_t)frames);
  (*env)->ReleasePrimitiveArrayCritical(env, out, p, 0);
  return r;
}

JNIEXPORT jint JNICALL Java_org_parley_Native_callPushDirect(JNIEnv *env, jclass cls,
                                                             jlong call, jobject pcm,
                                                             jint offset, jint frames) {
  jshort *p;
  (void)cls;
  if (frames <= 0) return parley_call_push_audio(HANDLE(parley_call, call), NULL, 0);
  p = (jshort *)(*env)->GetDirectBufferAddress(env, pcm);
  if (!p) return PARLEY_ERR_INVALID_ARGUMENT;
  return parley_call_push_audio(HANDLE(parley_call, call), (const int16_t *)p + offset,
                                (size_t)frames);
}

JNIEXPORT jint JNICALL Java_org_parley_Native_callPullDirect(JNIEnv *env, jclass cls,
                                                             jlong call, jobject out,
                                                             jint offset, jint frames) {
  jshort *p;
  (void)cls;
  if (frames <= 0) return parley_call_pull_audio(HANDLE(parley_call, call), NULL, 0);
  p = (jshort *)(*env)->GetDirectBufferAddress(env, out);
  if (!p) return PARLEY_ERR_INVALID_ARGUMENT;
  return parley_call_pull_audio(HANDLE(parley_call, call), (int16_t *)p + offset,
                                (size_t)frames);
}

/* float32 PCM, as the int16 functions above. */
JNIEXPORT jint JNICALL Java_org_parley_Native_callPushFloat(JNIEnv *env, jclass cls, jlong call,
                                                            jfloatArray pcm, jint offset,
                                                            jint frames) {
  jfloat *p;
  int r;
  (void)cls;
  if (frames <= 0) return parley_call_push_audio_float(HANDLE(parley_call, call), NULL, 0);
  p = (jfloat *)(*env)->GetPrimitiveArrayCritical(env, pcm, NULL);
  if (!p) return PARLEY_ERR_NO_MEMORY;
  r = parley_call_push_audio_float(HANDLE(parley_call, call), (const float *)p + offset,
                                   (size_t)frames);
  (*env)->ReleasePrimitiveArrayCritical(env, pcm, p, JNI_ABORT); /* read only */
  return r;
}

JNIEXPORT jint JNICALL Java_org_parley_Native_callPullFloat(JNIEnv *env, jclass cls, jlong call,
                                                            jfloatArray out, jint offset,
                                                            jint frames) {
  jfloat *p;
  int r;
  (void)cls;
  if (frames <= 0) return parley_call_pull_audio_float(HANDLE(parley_call, call), NULL, 0);
  p = (jfloat *)(*env)->GetPrimitiveArrayCritical(env, out, NULL);
  if (!p) return PARLEY_ERR_NO_MEMORY;
  r = parley_call_pull_audio_float(HANDLE(parley_call, call), (float *)p + offset,
                                   (size_t)frames);
  (*env)->ReleasePrimitiveArrayCritical(env, out, p, 0);
  return r;
}

JNIEXPORT jint JNICALL Java_org_parley_Native_callPushFloatDirect(JNIEnv *env, jclass cls,
                                                                  jlong call, jobject pcm,
                                                                  jint offset, jint frames) {
  jfloat *p;
  (void)cls;
  if (frames <= 0) return parley_call_push_audio_float(HANDLE(parley_call, call), NULL, 0);
  p = (jfloat *)(*env)->GetDirectBufferAddress(env, pcm);
  if (!p) return PARLEY_ERR_INVALID_ARGUMENT;
  return parley_call_push_audio_float(HANDLE(parley_call, call), (const float *)p + offset,
                                      (size_t)frames);
}

JNIEXPORT jint JNICALL Java_org_parley_Native_callPullFloatDirect(JNIEnv *env, jclass cls,
                                                                  jlong call, jobject out,
                                                                  jint offset, jint frames) {
  jfloat *p;
  (void)cls;
  if (frames <= 0) return parley_call_pull_audio_float(HANDLE(parley_call, call), NULL, 0);
  p = (jfloat *)(*env)->GetDirectBufferAddress(env, out);
  if (!p) return PARLEY_ERR_INVALID_ARGUMENT;
  return parley_call_pull_audio_float(HANDLE(parley_call, call), (float *)p + offset,
                                      (size_t)frames);
}

JNIEXPORT jint JNICALL Java_org_parley_Native_callSetMuted(JNIEnv *env, jclass cls, jlong call,
                                                           jboolean muted) {
  (void)env;
  (void)cls;
  return parley_call_set_muted(HANDLE(parley_call, call), muted ? 1 : 0);
}

JNIEXPORT void JNICALL Java_org_parley_Native_callSendDatagram(JNIEnv *env, jclass cls,
                                                               jlong call, jbyteArray data,
                                                               jint offset, jint length) {
  uint8_t stack[PARLEY_DATAGRAM_MAX];
  uint8_t *buf = stack;
  int r;
  (void)cls;
  /* Copied out rather than pinned: the send waits for the context's thread. */
  if ((size_t)length > sizeof stack) {
    buf = (uint8_t *)malloc((size_t)length);
    if (!buf) {
      throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: datagram");
      return;
    }
  }
  (*env)->GetByteArrayRegion(env, data, offset, length, (jbyte *)buf);
  if ((*env)->ExceptionCheck(env)) {
    if (buf != stack) free(buf);
    return;
  }
  r = parley_call_send_datagram(HANDLE(parley_call, call), buf, (size_t)length);
  if (buf != stack) free(buf);
  if (r != PARLEY_OK) throw_parley(env, r);
}

JNIEXPORT void JNICALL Java_org_parley_Native_callStats(JNIEnv *env, jclass cls, jlong call,
                                                        jlongArray out) {
  parley_call_stats s;
  jlong v[26];
  int r;
  (void)cls;
  if ((*env)->GetArrayLength(env, out) < (jsize)(sizeof v / sizeof v[0])) {
    throw_new(env, "java/lang/IllegalArgumentException", "parley_jni: stats array too short");
    return;
  }
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  r = parley_call_get_stats(HANDLE(parley_call, call), &s);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return;
  }
  /* The order of org.parley.CallStats's constructor. */
  v[0] = s.path;
  v[1] = (jlong)s.rtt_ms;
  v[2] = (jlong)s.path_changes;
  v[3] = (jlong)s.time_to_direct_ms;
  v[4] = (jlong)s.frames_sent;
  v[5] = (jlong)s.frames_received;
  v[6] = (jlong)s.loss_permille;
  v[7] = (jlong)s.peer_loss_permille;
  v[8] = s.profile;
  v[9] = s.fec_loss_hint;
  v[10] = (jlong)s.audio_bytes_sent;
  v[11] = (jlong)s.jitter_delay_ms;
  v[12] = (jlong)s.jitter_target_ms;
  v[13] = (jlong)s.frames_decoded;
  v[14] = (jlong)s.fec_recovered;
  v[15] = (jlong)s.red_recovered;
  v[16] = (jlong)s.concealed;
  v[17] = (jlong)s.late;
  v[18] = s.muted;
  v[19] = (jlong)s.longest_gap_ms;
  v[20] = (jlong)s.quality_changes;
  v[21] = s.quality_reason;
  v[22] = (jlong)s.quality_loss_permille;
  v[23] = (jlong)s.direct_attempts;
  v[24] = s.direct_error;
  v[25] = (jlong)s.direct_lost;
  (*env)->SetLongArrayRegion(env, out, 0, (jsize)(sizeof v / sizeof v[0]), v);
}

/* ------------------------------------------------------------------------------------------ */
/* Rooms                                                                                      */

JNIEXPORT jstring JNICALL Java_org_parley_Native_roomIdGenerate(JNIEnv *env, jclass cls) {
  char out[PARLEY_ROOM_ID_BUF_LEN];
  int r;
  (void)cls;
  r = parley_room_id_generate(out, sizeof out);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return NULL;
  }
  return new_string(env, out);
}

JNIEXPORT jlong JNICALL Java_org_parley_Native_roomJoin(JNIEnv *env, jclass cls, jlong jctx,
                                                        jstring room_id) {
  parley_room *room = NULL;
  char *id;
  int r;
  (void)cls;
  if (utf8_of(env, room_id, &id) != 0) return 0;
  r = parley_room_join(context_of(HANDLE(jparley_context, jctx)), id, &room);
  free(id);
  if (r != PARLEY_OK) {
    throw_parley(env, r);
    return 0;
  }
  return TO_JLONG(room);
}

JNIEXPORT void JNICALL Java_org_parley_Native_roomLeave(JNIEnv *env, jclass cls, jlong room) {
  int r;
  (void)cls;
  r = parley_room_leave(HANDLE(parley_room, room));
  if (r != PARLEY_OK) throw_parley(env, r);
}

/* As callSetUserData, for a room. */
JNIEXPORT void JNICALL Java_org_parley_Native_roomSetUserData(JNIEnv *env, jclass cls,
                                                              jlong room, jobject target) {
  parley_room *rm = HANDLE(parley_room, room);
  jobject old = (jobject)parley_room_user_data(rm), ref;
  (void)cls;
  if (user_data_ref(env, target, &ref) != 0) return;
  user_data_settle(env, parley_room_set_user_data(rm, ref), ref, old);
}

JNIEXPORT jobject JNICALL Java_org_parley_Native_roomUserData(JNIEnv *env, jclass cls,
                                                              jlong room) {
  jobject ref = (jobject)parley_room_user_data(HANDLE(const parley_room, room));
  (void)cls;
  return ref ? (*env)->NewLocalRef(env, ref) : NULL;
}

/* parley_room_destroy, then the handle's global reference (no event names it any more). */
JNIEXPORT void JNICALL Java_org_parley_Native_roomDestroy(JNIEnv *env, jclass cls, jlong room) {
  parley_room *rm = HANDLE(parley_room, room);
  jobject ref = (jobject)parley_room_user_data(rm);
  (void)cls;
  if (parley_room_destroy(rm) == PARLEY_OK && ref) (*env)->DeleteGlobalRef(env, ref);
}

JNIEXPORT jobjectArray JNICALL Java_org_parley_Native_roomMembers(JNIEnv *env, jclass cls,
                                                                  jlong room) {
  parley_room *rm = HANDLE(parley_room, room);
  parley_room_member *m = NULL;
  size_t count = 0, capacity, i;
  jobjectArray out;
  int r;
  (void)cls;
  for (;;) {
    parley_room_member *grown;
    r = parley_room_members(rm, NULL, &count); /* how many */
    if (r != PARLEY_OK) goto fail;
    capacity = count;
    grown = (parley_room_member *)realloc(m, (capacity ? capacity : 1) * sizeof *m);
    if (!grown) {
      free(m);
      throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: room members");
      return NULL;
    }
    m = grown;
    count = capacity;
    r = parley_room_members(rm, m, &count);
    if (r == PARLEY_OK) break;
    if (r != PARLEY_ERR_BUFFER_TOO_SMALL) goto fail;
    /* An update grew the room in between: ask again. */
  }
  if (count > 0x7fffffff) count = 0x7fffffff;
  out = (*env)->NewObjectArray(env, (jsize)count, g_member_class, NULL);
  for (i = 0; out && i < count; ++i) {
    jstring fp = new_string(env, m[i].fingerprint);
    jobject member;
    if (!fp) {
      out = NULL;
      break;
    }
    member = (*env)->NewObject(env, g_member_class, g_member_init, fp, (jint)m[i].stream_id);
    (*env)->DeleteLocalRef(env, fp);
    if (!member) {
      out = NULL;
      break;
    }
    (*env)->SetObjectArrayElement(env, out, (jsize)i, member);
    (*env)->DeleteLocalRef(env, member);
  }
  free(m);
  return out;
fail:
  throw_parley(env, r);
  free(m);
  return NULL;
}

JNIEXPORT void JNICALL Java_org_parley_Native_roomSend(JNIEnv *env, jclass cls, jlong room,
                                                       jbyteArray payload, jint offset,
                                                       jint length, jint sequence,
                                                       jint timestamp, jint profile) {
  uint8_t stack[PARLEY_DATAGRAM_MAX];
  uint8_t *buf = stack;
  int r;
  (void)cls;
  /* Copied out rather than pinned: the send waits for the context's thread. Java checked the
   * range; parley refuses a payload over PARLEY_DATAGRAM_MAX itself. */
  if ((size_t)length > sizeof stack) {
    buf = (uint8_t *)malloc((size_t)length);
    if (!buf) {
      throw_new(env, "java/lang/OutOfMemoryError", "parley_jni: room frame");
      return;
    }
  }
  (*env)->GetByteArrayRegion(env, payload, offset, length, (jbyte *)buf);
  if ((*env)->ExceptionCheck(env)) {
    if (buf != stack) free(buf);
    return;
  }
  r = parley_room_send(HANDLE(parley_room, room), (uint32_t)sequence, (uint32_t)timestamp,
                       profile, buf, (size_t)length);
  if (buf != stack) free(buf);
  if (r != PARLEY_OK) throw_parley(env, r);
}
