/*
 * parley-identity: create or inspect a parley identity using only the public C header.
 *
 *   parley-identity new  FILE   create a seed file (mode 0600) and print its fingerprint
 *   parley-identity show FILE   print the fingerprint of an existing seed file
 *   parley-identity cert FILE   print the fingerprint the identity's certificate verifies to
 *   parley-identity certder FILE OUT   write the identity's certificate (DER) to OUT
 */
#include <parley/parley.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int report(const char *what, int err) {
  fprintf(stderr, "parley-identity: %s: %s (%d): %s\n", what, parley_strerror(err), err,
          parley_last_error_message());
  return 1;
}

static int usage(void) {
  fprintf(stderr, "usage: parley-identity new|show|cert FILE\n"
                  "       parley-identity certder FILE OUT\n");
  return 2;
}

int main(int argc, char **argv) {
  parley_identity *id = NULL;
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
  int err;

  if (argc < 3) return usage();
  if ((strcmp(argv[1], "certder") == 0) != (argc == 4) || argc > 4) return usage();
  if (strcmp(argv[1], "new") == 0) {
    if ((err = parley_identity_generate(&id)) != PARLEY_OK) return report("generate", err);
    if ((err = parley_identity_save_file(id, argv[2], 0)) != PARLEY_OK) {
      parley_identity_destroy(id);
      return report("save", err);
    }
  } else if (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "cert") == 0 ||
             strcmp(argv[1], "certder") == 0) {
    if ((err = parley_identity_load_file(argv[2], &id)) != PARLEY_OK) return report("load", err);
  } else {
    return usage();
  }

  if (strcmp(argv[1], "cert") == 0 || strcmp(argv[1], "certder") == 0) {
    size_t len = 0;
    uint8_t *der;
    parley_identity_certificate_der(id, NULL, &len);
    der = (uint8_t *)malloc(len);
    if (der == NULL) {
      parley_identity_destroy(id);
      return report("cert", PARLEY_ERR_NO_MEMORY);
    }
    err = parley_identity_certificate_der(id, der, &len);
    if (err == PARLEY_OK) err = parley_certificate_fingerprint(der, len, fp, sizeof fp);
    if (err == PARLEY_OK && argc == 4) {
      FILE *f = fopen(argv[3], "wb");
      if (f == NULL || fwrite(der, 1, len, f) != len) err = PARLEY_ERR_IO;
      if (f != NULL && fclose(f) != 0) err = PARLEY_ERR_IO;
    }
    free(der);
    if (err != PARLEY_OK) {
      parley_identity_destroy(id);
      return report("cert", err);
    }
    if (argc == 3) printf("certificate: %zu bytes DER, Ed25519, fingerprint %s\n", len, fp);
  } else {
    parley_identity_fingerprint(id, fp, sizeof fp);
    printf("%s\n", fp);
  }
  parley_identity_destroy(id);
  return 0;
}
