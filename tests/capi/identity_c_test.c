/* The public header from C99: the identity functions end to end, including every error
 * path a host can hit. Built with -std=c99 -pedantic; links only libparley.so. */
#include <parley/parley.h>

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static const uint8_t kSeed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
static const char kFingerprint[] =
    "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";

static int log_lines = 0;
static void on_log(void *user, int level, const char *message) {
  (void)level;
  (void)message;
  ++*(int *)user;
}

static void write_raw(const char *path, const uint8_t *bytes, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(write(fd, bytes, len) == (ssize_t)len);
  CHECK(fchmod(fd, mode) == 0);
  close(fd);
}

static int same_file(const char *path, const struct stat *before) {
  struct stat now;
  if (stat(path, &now) != 0) return 0;
  return now.st_mode == before->st_mode && now.st_size == before->st_size &&
         now.st_mtim.tv_sec == before->st_mtim.tv_sec &&
         now.st_mtim.tv_nsec == before->st_mtim.tv_nsec;
}

int main(void) {
  parley_identity *id = NULL, *loaded = NULL;
  char fp[PARLEY_FINGERPRINT_BUF_LEN], fp2[PARLEY_FINGERPRINT_BUF_LEN];
  uint8_t pk[PARLEY_PUBLIC_KEY_LEN], seed_out[PARLEY_SEED_LEN];
  uint8_t der[4096];
  size_t der_len;
  char dir[] = "/tmp/parley-capi-XXXXXX";
  char path[256], open_path[256];
  struct stat st;

  /* version */
  CHECK(parley_version() == PARLEY_VERSION_NUM);
  CHECK(strcmp(parley_version_string(), PARLEY_VERSION_STRING) == 0);

  /* errors */
  CHECK(strcmp(parley_strerror(PARLEY_OK), "success") == 0);
  CHECK(strcmp(parley_strerror(PARLEY_ERR_SEED_FILE_PERMISSIONS),
               "seed file permissions too open") == 0);
  CHECK(strcmp(parley_strerror(12345), "unknown error") == 0);
  CHECK(strcmp(parley_error_name(PARLEY_OK), "PARLEY_OK") == 0);
  CHECK(strcmp(parley_error_name(PARLEY_ERR_WRONG_CALL_STATE), "PARLEY_ERR_WRONG_CALL_STATE") == 0);
  CHECK(strcmp(parley_error_name(12345), "unknown") == 0);
  CHECK(strcmp(parley_event_type_name(PARLEY_EVENT_ROOM_FRAME), "PARLEY_EVENT_ROOM_FRAME") == 0);
  CHECK(strcmp(parley_event_type_name(-1), "unknown") == 0);

  /* logging: a host sink receives parley's lines */
  CHECK(parley_log_set_level(99) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_log_set_callback(on_log, &log_lines) == PARLEY_OK);
  CHECK(parley_log_set_level(PARLEY_LOG_DEBUG) == PARLEY_OK);

  /* identity from a fixed seed */
  CHECK(parley_identity_from_seed(kSeed, sizeof kSeed, &id) == PARLEY_OK);
  CHECK(parley_identity_fingerprint(id, fp, sizeof fp) == PARLEY_OK);
  CHECK(strcmp(fp, kFingerprint) == 0);
  CHECK(parley_identity_public_key(id, pk) == PARLEY_OK);
  CHECK(pk[0] == 0xd7 && pk[31] == 0x1a);
  CHECK(parley_identity_export_seed(id, seed_out) == PARLEY_OK);
  CHECK(memcmp(seed_out, kSeed, 32) == 0);

  /* certificate: size query, too-small buffer, then verify it back to the fingerprint */
  der_len = 0;
  CHECK(parley_identity_certificate_der(id, NULL, &der_len) == PARLEY_OK);
  CHECK(der_len > 100 && der_len < sizeof der);
  {
    size_t small = 10;
    CHECK(parley_identity_certificate_der(id, der, &small) == PARLEY_ERR_BUFFER_TOO_SMALL);
    CHECK(small == der_len);
  }
  CHECK(parley_identity_certificate_der(id, der, &der_len) == PARLEY_OK);
  CHECK(parley_certificate_fingerprint(der, der_len, fp2, sizeof fp2) == PARLEY_OK);
  CHECK(strcmp(fp2, kFingerprint) == 0);
  CHECK(parley_certificate_fingerprint(der, der_len - 1, fp2, sizeof fp2) ==
        PARLEY_ERR_CERT_MALFORMED);
  CHECK(parley_certificate_fingerprint(der, der_len, fp2, 64) == PARLEY_ERR_BUFFER_TOO_SMALL);

  /* fingerprint normalisation */
  CHECK(parley_fingerprint_normalize("21FE31DF A154A261 626BF854 046FD227 1B7BED4B 6ABE45AA "
                                     "58877EF4 7F9721B9", fp2, sizeof fp2) == PARLEY_OK);
  CHECK(strcmp(fp2, kFingerprint) == 0);
  CHECK(parley_fingerprint_normalize("xyz", fp2, sizeof fp2) == PARLEY_ERR_FINGERPRINT_INVALID);

  /* NULL and bad arguments: distinct code, clear message, *out cleared */
  loaded = (parley_identity *)&failures; /* garbage that must be overwritten with NULL */
  CHECK(parley_identity_from_seed(NULL, 32, &loaded) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(loaded == NULL);
  CHECK(strstr(parley_last_error_message(), "seed") != NULL);
  CHECK(parley_identity_from_seed(kSeed, 16, &loaded) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_generate(NULL) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_load_file(NULL, &loaded) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_load_file("/x", NULL) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_save_file(NULL, "/tmp/x", 0) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_save_file(id, NULL, 0) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_save_file(id, "/tmp/x", 0x80) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_fingerprint(NULL, fp, sizeof fp) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_fingerprint(id, NULL, sizeof fp) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_fingerprint(id, fp, 10) == PARLEY_ERR_BUFFER_TOO_SMALL);
  CHECK(parley_identity_public_key(id, NULL) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_export_seed(NULL, seed_out) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_identity_certificate_der(id, der, NULL) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_certificate_fingerprint(NULL, 10, fp, sizeof fp) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_fingerprint_normalize(NULL, fp, sizeof fp) == PARLEY_ERR_INVALID_ARGUMENT);
  parley_identity_destroy(NULL);

  /* seed files */
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/me.seed", dir);
  CHECK(parley_identity_load_file(path, &loaded) == PARLEY_ERR_SEED_FILE_NOT_FOUND);
  CHECK(parley_identity_save_file(id, path, 0) == PARLEY_OK);
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK(parley_identity_save_file(id, path, 0) == PARLEY_ERR_SEED_FILE_EXISTS);
  CHECK(same_file(path, &st));
  CHECK(parley_identity_load_file(path, &loaded) == PARLEY_OK);
  CHECK(parley_identity_fingerprint(loaded, fp2, sizeof fp2) == PARLEY_OK);
  CHECK(strcmp(fp2, kFingerprint) == 0);
  parley_identity_destroy(loaded);
  loaded = NULL;

  /* world-readable: refused, untouched */
  snprintf(open_path, sizeof open_path, "%s/open.seed", dir);
  write_raw(open_path, kSeed, sizeof kSeed, 0644);
  CHECK(stat(open_path, &st) == 0);
  CHECK(parley_identity_load_file(open_path, &loaded) == PARLEY_ERR_SEED_FILE_PERMISSIONS);
  CHECK(loaded == NULL);
  CHECK(strstr(parley_last_error_message(), "0644") != NULL);
  CHECK(same_file(open_path, &st));

  /* truncated: invalid, untouched */
  write_raw(open_path, kSeed, 16, 0600);
  CHECK(stat(open_path, &st) == 0);
  CHECK(parley_identity_load_file(open_path, &loaded) == PARLEY_ERR_SEED_FILE_INVALID);
  CHECK(same_file(open_path, &st));

  /* a generated identity survives a save/load round trip */
  {
    parley_identity *fresh = NULL;
    char p2[256];
    snprintf(p2, sizeof p2, "%s/fresh.seed", dir);
    CHECK(parley_identity_generate(&fresh) == PARLEY_OK);
    CHECK(parley_identity_fingerprint(fresh, fp, sizeof fp) == PARLEY_OK);
    CHECK(strcmp(fp, kFingerprint) != 0);
    CHECK(parley_identity_save_file(fresh, p2, PARLEY_SAVE_OVERWRITE) == PARLEY_OK);
    CHECK(parley_identity_load_file(p2, &loaded) == PARLEY_OK);
    CHECK(parley_identity_fingerprint(loaded, fp2, sizeof fp2) == PARLEY_OK);
    CHECK(strcmp(fp, fp2) == 0);
    parley_identity_destroy(loaded);
    parley_identity_destroy(fresh);
    unlink(p2);
  }

  CHECK(log_lines > 0); /* debug-level error details reached the host's sink */
  CHECK(parley_log_set_callback(NULL, NULL) == PARLEY_OK);
  parley_identity_destroy(id);
  unlink(path);
  unlink(open_path);
  rmdir(dir);

  return check_report();
}
