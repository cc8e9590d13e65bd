/*
 * leveldb_batch: the raw LevelDB reference for bench/compare.sh - synced
 * WriteBatches of B records of V-byte values into a fresh database, for
 * S seconds, one writer. Prints one line of JSON: records/s and batch
 * latency percentiles.
 *
 *   cc -O2 bench/leveldb_batch.c -lleveldb -o leveldb_batch
 *   ./leveldb_batch DIR [B=100] [V=200] [S=5] [KEYS=seq|hash]
 *
 * KEYS seq (default): "k" + a 20-digit counter, the friendliest case for
 * LevelDB (every insert lands at the end of the memtable). KEYS hash:
 * 32 pseudo-random bytes per record, what a content-addressed store keys
 * its records by (StemeDB's 'c' key is the claim's BLAKE2b hash).
 */
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* splitmix64: 32 well-mixed bytes from a counter, standing in for a hash. */
static unsigned long long mix(unsigned long long x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr,
            "usage: %s DIR [batch] [value_bytes] [seconds] [seq|hash]\n",
            argv[0]);
    return 2;
  }
  int batch = argc > 2 ? atoi(argv[2]) : 100;
  int vbytes = argc > 3 ? atoi(argv[3]) : 200;
  double secs = argc > 4 ? atof(argv[4]) : 5;
  int hash_keys = argc > 5 && strcmp(argv[5], "hash") == 0;
  char *err = NULL;
  leveldb_options_t *o = leveldb_options_create();
  leveldb_options_set_create_if_missing(o, 1);
  leveldb_t *db = leveldb_open(o, argv[1], &err);
  if (err) {
    fprintf(stderr, "open: %s\n", err);
    return 1;
  }
  leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
  leveldb_writeoptions_set_sync(wo, 1);
  char *value = malloc((size_t)vbytes);
  memset(value, 'v', (size_t)vbytes);
  size_t cap = 1 << 20, n = 0;
  double *lat = malloc(cap * sizeof *lat);
  unsigned long long k = 0;
  double t0 = now(), end = t0 + secs;
  while (now() < end && n < cap) {
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    for (int i = 0; i < batch; i++, k++) {
      char key[32];
      int kl = 32;
      if (hash_keys)
        for (int w = 0; w < 4; w++) {
          unsigned long long h = mix(k * 4 + (unsigned long long)w);
          memcpy(key + 8 * w, &h, 8);
        }
      else
        kl = snprintf(key, sizeof key, "k%020llu", k);
      snprintf(value, (size_t)vbytes, "%llu", k); /* distinct values */
      value[strlen(value)] = 'v';
      leveldb_writebatch_put(b, key, (size_t)kl, value, (size_t)vbytes);
    }
    double s = now();
    leveldb_write(db, wo, b, &err);
    lat[n++] = now() - s;
    leveldb_writebatch_destroy(b);
    if (err) {
      fprintf(stderr, "write: %s\n", err);
      return 1;
    }
  }
  double el = now() - t0;
  qsort(lat, n, sizeof *lat, cmp);
  printf("{\"bench\":\"leveldb-batch\",\"keys\":\"%s\",\"batch\":%d,"
         "\"value_bytes\":%d,"
         "\"batches\":%zu,\"records_per_s\":%.1f,\"batches_per_s\":%.1f,"
         "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f}}\n",
         hash_keys ? "hash" : "seq", batch, vbytes, n, (double)k / el,
         (double)n / el, lat[n / 2] * 1e3,
         lat[(size_t)((double)n * 0.99)] * 1e3);
  leveldb_close(db);
  leveldb_writeoptions_destroy(wo);
  leveldb_options_destroy(o);
  free(value);
  free(lat);
  return 0;
}
