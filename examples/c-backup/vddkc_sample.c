/*
 * vddkc_sample.c - an example backup product in C that uses only the public VixDiskLib ABI
 * (conformance/vixdisklib/shim/c/vddkc_vixdisklib.h), written from scratch for vddk-conformance.
 *
 *   full         snapshot disk -> raw image file (allocated blocks only, holes stay sparse)
 *   incremental  the areas of a changed-areas file (QueryChangedDiskAreas, bytes) -> the existing image
 *   restore      raw image file -> disk (read-write connection, no snapshot)
 *
 * Secrets come from an environment variable named on the command line and never reach the output.
 * --misuse deliberately breaks a VDDK threading or housekeeping rule, so a conformance harness can check
 * that the library (or its simulation) notices. See README.md for building and running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vddkc_vixdisklib.h"

#define PROG "vddkc_sample"
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define QAB_CHUNK ((VixDiskLibSectorType)VIXDISKLIB_MIN_CHUNK_SIZE) /* 128 sectors, 64 KiB */
#define MAX_ASYNC 64
#define MAX_CHUNK_SECTORS 65536 /* 32 MiB per request */
#define SECTOR ((uint64_t)VIXDISKLIB_SECTOR_SIZE)

enum mode { MODE_FULL, MODE_INCREMENTAL, MODE_RESTORE };
static const char *const MODE_NAMES[] = {"full", "incremental", "restore"};
enum { MISUSE_QAB_OFF_THREAD = 1, MISUSE_THREADS_BEFORE_INIT = 2, MISUSE_SKIP_CLEANUP = 4 };

typedef struct {
  uint64_t offset, length; /* sectors */
} Extent;

typedef struct {
  enum mode mode;
  const char *server, *thumbprint, *user, *secret_env, *vm, *disk, *snapshot, *transport;
  const char *libdir, *config, *image, *changed;
  int cookie, skip_zero, async;
  uint32_t port;
  uint64_t chunk; /* sectors per Read/Write */
  unsigned misuse;
} Options;

typedef struct {
  const Options *opt;
  char *secret; /* our copy of the password or cookie, wiped at exit */
  VixDiskLibConnectParams *params;
  VixDiskLibConnection conn;
  VixDiskLibHandle disk;
  uint64_t capacity; /* sectors */
  char transport[64];
  int image_fd;
  Extent *extents; /* what to copy: allocated blocks, changed areas */
  size_t nextents, extents_cap;
  uint64_t bytes_read, bytes_written, blocks;
} Session;

/* ---- output: errors, library log callbacks (with the secret masked) ------------------------------- */

static const char *g_secret; /* masked wherever library text is printed */

static void print_masked(FILE *out, const char *prefix, const char *text) {
  size_t n = strlen(text), secret_len = g_secret ? strlen(g_secret) : 0;
  while (n && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
  flockfile(out);
  fputs(prefix, out);
  for (size_t i = 0; i < n;) {
    if (secret_len && n - i >= secret_len && !memcmp(text + i, g_secret, secret_len)) {
      fputs("********", out);
      i += secret_len;
    } else {
      putc_unlocked(text[i++], out);
    }
  }
  putc_unlocked('\n', out);
  funlockfile(out);
}

static void log_to(const char *prefix, const char *fmt, va_list args) {
  char small[1024], *text = small;
  va_list copy;
  int n;
  if (!fmt) return;
  va_copy(copy, args);
  n = vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  if (n < 0) return;
  if ((size_t)n >= sizeof small) {
    char *big = malloc((size_t)n + 1);
    if (big) {
      vsnprintf(big, (size_t)n + 1, fmt, args);
      text = big;
    }
  }
  print_masked(stderr, prefix, text);
  if (text != small) free(text);
}

static void log_info(const char *fmt, va_list args) { log_to("vddk: ", fmt, args); }
static void log_warning(const char *fmt, va_list args) { log_to("vddk warning: ", fmt, args); }
static void log_panic(const char *fmt, va_list args) {
  log_to("vddk panic: ", fmt, args);
  abort();
}

/* "vddkc_sample: <Call> failed: <text> (error N)"; always EXIT_FAILED. */
static int vix_failed(const char *call, VixError err) {
  char *text = VixDiskLib_GetErrorText(err, NULL), line[512];
  if (VIX_ERROR_CODE(err) == err)
    snprintf(line, sizeof line, "%s failed: %s (error %" PRIu64 ")", call, text ? text : "no error text", err);
  else
    snprintf(line, sizeof line, "%s failed: %s (error %" PRIu64 ", 0x%" PRIx64 ")", call,
             text ? text : "no error text", (uint64_t)VIX_ERROR_CODE(err), err);
  VixDiskLib_FreeErrorText(text);
  print_masked(stderr, PROG ": ", line);
  return EXIT_FAILED;
}

static int os_failed(const char *what, const char *path) {
  fprintf(stderr, PROG ": %s %s: %s\n", what, path, strerror(errno));
  return EXIT_FAILED;
}

static void usage(FILE *out) {
  fputs("usage: " PROG " full|incremental|restore --server HOST [--port 443] --thumbprint XX:..:XX --user NAME\n"
        "    (--password-env VAR | --cookie-env VAR) --vm moref=vm-N --disk \"[datastore] dir/disk.vmdk\"\n"
        "    [--snapshot snapshot-N] [--transport nbdssl:nbd:hotadd:san] [--libdir DIR] [--config FILE]\n"
        "    [--image FILE] [--changed FILE] [--chunk-sectors 2048] [--skip-zero] [--async N]\n"
        "    [--misuse qab-off-thread|threads-before-init|skip-cleanup]\n",
        out);
}

static _Noreturn void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(PROG ": ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see --help)\n", stderr);
  va_end(ap);
  exit(EXIT_USAGE);
}

/* ---- command line ----------------------------------------------------------------------------------- */

static uint64_t number_arg(const char *name, const char *text, uint64_t low, uint64_t high) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || !*text || *end || text[0] == '-' || v < low || v > high)
    usage_error("%s wants a number from %" PRIu64 " to %" PRIu64 ", got '%s'", name, low, high, text);
  return v;
}

/* SHA-1 (20 bytes) or SHA-256 (32 bytes) as colon-separated hex pairs */
static int thumbprint_ok(const char *t) {
  size_t len = strlen(t), pairs = (len + 1) / 3;
  if ((len + 1) % 3 || (pairs != 20 && pairs != 32)) return 0;
  for (size_t i = 0; i < len; i++) {
    int hex = (t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f') || (t[i] >= 'A' && t[i] <= 'F');
    if (i % 3 == 2 ? t[i] != ':' : !hex) return 0;
  }
  return 1;
}

/* The name of an option as given, without any "=value" (which could be a secret typed by mistake). */
static int option_name_len(const char *arg) {
  size_t n = strcspn(arg, "=");
  return n > 64 ? 64 : (int)n;
}

/* getopt_long accepts unique prefixes: "--password=xyz" would silently become --password-env=xyz. Only
 * full option names are accepted here. */
static void exact_names_only(int argc, char **argv, const struct option *longs) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) || !arg[2]) continue;
    size_t len = strcspn(arg + 2, "=");
    const struct option *o = longs;
    while (o->name && (strlen(o->name) != len || strncmp(o->name, arg + 2, len))) o++;
    if (!o->name) usage_error("unknown option '%.*s'", option_name_len(arg), arg);
    if (o->has_arg == required_argument && !arg[2 + len]) i++; /* its value is the next word */
  }
}

static void parse_args(int argc, char **argv, Options *o) {
  enum {
    OPT_SERVER = 256, OPT_PORT, OPT_THUMB, OPT_USER, OPT_PWENV, OPT_COOKIEENV, OPT_VM, OPT_DISK,
    OPT_SNAP, OPT_TRANSPORT, OPT_LIBDIR, OPT_CONFIG, OPT_IMAGE, OPT_CHANGED, OPT_CHUNK, OPT_SKIPZERO, OPT_ASYNC,
    OPT_MISUSE, OPT_HELP
  };
  static const struct option longs[] = {
      {"server", required_argument, NULL, OPT_SERVER},
      {"port", required_argument, NULL, OPT_PORT},
      {"thumbprint", required_argument, NULL, OPT_THUMB},
      {"user", required_argument, NULL, OPT_USER},
      {"password-env", required_argument, NULL, OPT_PWENV},
      {"cookie-env", required_argument, NULL, OPT_COOKIEENV},
      {"vm", required_argument, NULL, OPT_VM},
      {"disk", required_argument, NULL, OPT_DISK},
      {"snapshot", required_argument, NULL, OPT_SNAP},
      {"transport", required_argument, NULL, OPT_TRANSPORT},
      {"libdir", required_argument, NULL, OPT_LIBDIR},
      {"config", required_argument, NULL, OPT_CONFIG},
      {"image", required_argument, NULL, OPT_IMAGE},
      {"changed", required_argument, NULL, OPT_CHANGED},
      {"chunk-sectors", required_argument, NULL, OPT_CHUNK},
      {"skip-zero", no_argument, NULL, OPT_SKIPZERO},
      {"async", required_argument, NULL, OPT_ASYNC},
      {"misuse", required_argument, NULL, OPT_MISUSE},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0},
  };
  int c;
  memset(o, 0, sizeof *o);
  o->port = 443;
  o->chunk = 2048;
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    exit(0);
  }
  if (argc < 2 || argv[1][0] == '-') usage_error("give the mode first: full, incremental or restore");
  const char *mode = argv[1];
  argc--, argv++; /* options follow the mode */
  exact_names_only(argc, argv, longs);
  opterr = 0; /* one line of our own instead of getopt's */
  while ((c = getopt_long(argc, argv, "+:", longs, NULL)) != -1) {
    switch (c) {
    case OPT_SERVER: o->server = optarg; break;
    case OPT_PORT: o->port = (uint32_t)number_arg("--port", optarg, 1, 65535); break;
    case OPT_THUMB: o->thumbprint = optarg; break;
    case OPT_USER: o->user = optarg; break;
    case OPT_PWENV:
    case OPT_COOKIEENV:
      if (o->secret_env) usage_error("give one of --password-env and --cookie-env, once");
      o->secret_env = optarg;
      o->cookie = c == OPT_COOKIEENV;
      break;
    case OPT_VM: o->vm = optarg; break;
    case OPT_DISK: o->disk = optarg; break;
    case OPT_SNAP: o->snapshot = optarg; break;
    case OPT_TRANSPORT: o->transport = optarg; break;
    case OPT_LIBDIR: o->libdir = optarg; break;
    case OPT_CONFIG: o->config = optarg; break;
    case OPT_IMAGE: o->image = optarg; break;
    case OPT_CHANGED: o->changed = optarg; break;
    case OPT_CHUNK: o->chunk = number_arg("--chunk-sectors", optarg, 1, MAX_CHUNK_SECTORS); break;
    case OPT_SKIPZERO: o->skip_zero = 1; break;
    case OPT_ASYNC: o->async = (int)number_arg("--async", optarg, 1, MAX_ASYNC); break;
    case OPT_MISUSE:
      if (!strcmp(optarg, "qab-off-thread")) o->misuse |= MISUSE_QAB_OFF_THREAD;
      else if (!strcmp(optarg, "threads-before-init")) o->misuse |= MISUSE_THREADS_BEFORE_INIT;
      else if (!strcmp(optarg, "skip-cleanup")) o->misuse |= MISUSE_SKIP_CLEANUP;
      else usage_error("unknown --misuse '%s'", optarg);
      break;
    case OPT_HELP: usage(stdout); exit(0);
    case ':': usage_error("%.*s needs a value", option_name_len(argv[optind - 1]), argv[optind - 1]);
    default: usage_error("unknown option '%.*s'", option_name_len(argv[optind - 1]), argv[optind - 1]);
    }
  }
  if (optind != argc) usage_error("unexpected argument after the options (values never go on the command line)");
  if (!strcmp(mode, "full")) o->mode = MODE_FULL;
  else if (!strcmp(mode, "incremental")) o->mode = MODE_INCREMENTAL;
  else if (!strcmp(mode, "restore")) o->mode = MODE_RESTORE;
  else usage_error("unknown mode '%s': full, incremental or restore", mode);
  if (!o->server || !*o->server) usage_error("--server is required");
  if (!o->thumbprint || !thumbprint_ok(o->thumbprint))
    usage_error("--thumbprint is required: the host's SHA-1 or SHA-256 thumbprint as XX:XX:..:XX");
  if (!o->user || !*o->user) usage_error("--user is required");
  if (!o->secret_env) usage_error("--password-env VAR or --cookie-env VAR is required");
  if (!o->vm || strncmp(o->vm, "moref=", 6) || !o->vm[6]) usage_error("--vm moref=vm-N is required");
  if (!o->disk || !*o->disk) usage_error("--disk \"[datastore] dir/disk.vmdk\" is required");
  if (!o->image || !*o->image) usage_error("--image FILE is required");
  if (o->mode == MODE_INCREMENTAL && !o->changed) usage_error("incremental needs --changed FILE");
  if (o->mode != MODE_INCREMENTAL && o->changed) usage_error("--changed is for incremental only");
  if (o->mode == MODE_RESTORE && o->snapshot) usage_error("restore writes the disk itself: no --snapshot");
  if (o->mode != MODE_RESTORE && o->skip_zero) usage_error("--skip-zero is for restore only");
  if (o->mode != MODE_FULL && (o->misuse & MISUSE_QAB_OFF_THREAD))
    usage_error("--misuse qab-off-thread needs full (only full queries allocated blocks)");
}

/* ---- extents ---------------------------------------------------------------------------------------- */

static int add_extent(Session *s, uint64_t offset, uint64_t length) {
  if (!length) return 0;
  if (s->nextents) {
    Extent *last = &s->extents[s->nextents - 1];
    if (last->offset + last->length == offset) { /* adjacent: one larger extent */
      last->length += length;
      return 0;
    }
  }
  if (s->nextents == s->extents_cap) {
    size_t cap = s->extents_cap ? s->extents_cap * 2 : 256;
    Extent *grown = realloc(s->extents, cap * sizeof *grown);
    if (!grown) return -1;
    s->extents = grown, s->extents_cap = cap;
  }
  s->extents[s->nextents++] = (Extent){offset, length};
  return 0;
}

/* "offset length" in bytes per line, as QueryChangedDiskAreas reports changedArea[]; # comments allowed */
static void read_changed(Session *s, const char *path) {
  FILE *f = fopen(path, "r");
  char line[256];
  unsigned lineno = 0;
  if (!f) usage_error("cannot read --changed %s: %s", path, strerror(errno));
  while (fgets(line, sizeof line, f)) {
    unsigned long long offset, length;
    char extra;
    lineno++;
    char *p = line + strspn(line, " \t\r\n");
    if (!*p || *p == '#') continue;
    if (sscanf(p, "%llu %llu %c", &offset, &length, &extra) != 2 || !length || offset % SECTOR || length % SECTOR)
      usage_error("%s line %u: want \"offset length\" in bytes, multiples of 512", path, lineno);
    if (add_extent(s, offset / SECTOR, length / SECTOR) < 0) usage_error("out of memory");
    s->blocks++;
  }
  fclose(f);
}

/* ---- the transfer pipeline: synchronous, or up to N async requests in flight ------------------------ */

typedef struct Pipe Pipe;
typedef struct {
  Pipe *pipe;
  uint8_t *buf;
  uint64_t sector, count;
  int busy, done;
  VixError result;
} Slot;

struct Pipe {
  Session *s;
  int to_disk; /* restore: image -> disk; else disk -> image */
  int async, nslots, failed;
  Slot *slots;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

static void on_complete(void *data, VixError result) { /* on one of the library's threads */
  Slot *slot = data;
  pthread_mutex_lock(&slot->pipe->lock);
  slot->result = result;
  slot->done = 1;
  pthread_cond_broadcast(&slot->pipe->cond);
  pthread_mutex_unlock(&slot->pipe->lock);
}

static int pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t offset) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    done += (size_t)n;
  }
  return 0;
}

static int pread_all(int fd, uint8_t *buf, size_t len, uint64_t offset) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pread(fd, buf + done, len - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) { errno = EIO; return -1; } /* the image is shorter than the disk */
    done += (size_t)n;
  }
  return 0;
}

static int pipe_init(Pipe *p, Session *s, int to_disk) {
  memset(p, 0, sizeof *p);
  p->s = s, p->to_disk = to_disk, p->async = s->opt->async > 0;
  p->nslots = p->async ? s->opt->async : 1;
  p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
  if (!p->slots) return -1;
  pthread_mutex_init(&p->lock, NULL); /* destroyed by pipe_finish */
  pthread_cond_init(&p->cond, NULL);
  for (int i = 0; i < p->nslots; i++) {
    void *buf = NULL;
    p->slots[i].pipe = p;
    if (posix_memalign(&buf, 4096, s->opt->chunk * SECTOR)) return -1; /* aligned for unbuffered transports */
    p->slots[i].buf = buf;
  }
  return 0;
}

/* A finished request: a read goes into the image at the same offset; both count their bytes. */
static int retire(Pipe *p, Slot *slot, VixError result) {
  Session *s = p->s;
  size_t len = slot->count * SECTOR;
  slot->busy = slot->done = 0;
  if (VIX_FAILED(result))
    return vix_failed(p->to_disk ? (p->async ? "VixDiskLib_WriteAsync" : "VixDiskLib_Write")
                                 : (p->async ? "VixDiskLib_ReadAsync" : "VixDiskLib_Read"),
                      result);
  if (p->to_disk) {
    s->bytes_written += len;
    return 0;
  }
  s->bytes_read += len;
  if (pwrite_all(s->image_fd, slot->buf, len, slot->sector * SECTOR) < 0) return os_failed("writing", s->opt->image);
  s->bytes_written += len;
  return 0;
}

/* Retire every completed async request (or, after a failure, just forget them); 0, or the exit code of the
 * first failure. */
static int reap(Pipe *p, int block, int discard) {
  int rc = 0, any = 0;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    for (int i = 0; i < p->nslots; i++) any |= p->slots[i].busy && p->slots[i].done;
    if (any || !block) break;
    pthread_cond_wait(&p->cond, &p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->nslots; i++) {
    Slot *slot = &p->slots[i];
    pthread_mutex_lock(&p->lock);
    int done = slot->busy && slot->done;
    VixError result = slot->result;
    pthread_mutex_unlock(&p->lock);
    if (done && !rc && !discard) rc = retire(p, slot, result);
    else if (done) slot->busy = slot->done = 0;
  }
  return rc;
}

/* A free buffer; with async, waits for (and retires) a completion when all N are in flight. */
static Slot *pipe_acquire(Pipe *p) {
  for (;;) {
    for (int i = 0; i < p->nslots; i++)
      if (!p->slots[i].busy) return &p->slots[i];
    if ((p->failed = reap(p, 1, 0))) return NULL;
  }
}

/* Read or write `slot` (its buffer already filled for writes). */
static int pipe_start(Pipe *p, Slot *slot, uint64_t sector, uint64_t count) {
  VixDiskLibHandle disk = p->s->disk;
  VixError err;
  slot->sector = sector, slot->count = count, slot->busy = 1, slot->done = 0;
  if (!p->async) {
    err = p->to_disk ? VixDiskLib_Write(disk, sector, count, slot->buf)
                     : VixDiskLib_Read(disk, sector, count, slot->buf);
    return p->failed = retire(p, slot, err);
  }
  err = p->to_disk ? VixDiskLib_WriteAsync(disk, sector, count, slot->buf, on_complete, slot)
                   : VixDiskLib_ReadAsync(disk, sector, count, slot->buf, on_complete, slot);
  if (err == VIX_ASYNC) return 0;
  slot->busy = 0; /* not queued: no callback will come */
  return p->failed = vix_failed(p->to_disk ? "VixDiskLib_WriteAsync" : "VixDiskLib_ReadAsync", err);
}

/* VixDiskLib_Wait for what is in flight, retire it; the buffers are freed only after that. */
static int pipe_finish(Pipe *p) {
  int rc = p->failed, pending = 0;
  if (p->async && p->slots) {
    for (int i = 0; i < p->nslots; i++) pending |= p->slots[i].busy;
    if (pending) {
      VixError err = VixDiskLib_Wait(p->s->disk);
      if (VIX_FAILED(err) && !rc) rc = vix_failed("VixDiskLib_Wait", err);
      int reaped = reap(p, 0, rc != 0);
      if (!rc) rc = reaped;
    }
  }
  if (p->slots) {
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
  }
  for (int i = 0; p->slots && i < p->nslots; i++) free(p->slots[i].buf);
  free(p->slots);
  p->slots = NULL;
  return rc;
}

static int out_of_memory(void) {
  fprintf(stderr, PROG ": out of memory\n");
  return EXIT_FAILED;
}

/* disk -> image: every extent, in --chunk-sectors pieces */
static int copy_extents_to_image(Session *s) {
  Pipe p;
  int rc = 0;
  if (pipe_init(&p, s, 0) < 0) {
    pipe_finish(&p);
    return out_of_memory();
  }
  for (size_t i = 0; i < s->nextents && !rc; i++) {
    uint64_t end = s->extents[i].offset + s->extents[i].length;
    for (uint64_t sector = s->extents[i].offset; sector < end && !rc;) {
      uint64_t count = end - sector < s->opt->chunk ? end - sector : s->opt->chunk;
      Slot *slot = pipe_acquire(&p);
      rc = slot ? pipe_start(&p, slot, sector, count) : p.failed;
      sector += count;
    }
  }
  int finished = pipe_finish(&p);
  return rc ? rc : finished;
}

/* ---- modes -------------------------------------------------------------------------------------- */

typedef struct {
  Session *s;
  VixError err;
  const char *call;
  int oom;
} QabJob;

/* Allocated blocks of the whole disk, MAX_CHUNK_NUMBER chunks per call; the partial last chunk counts
 * as allocated (it cannot be queried). */
static void *query_allocated(void *arg) {
  QabJob *job = arg;
  Session *s = job->s;
  uint64_t chunks = s->capacity / QAB_CHUNK, offset = 0;
  while (chunks > 0) {
    uint64_t n = chunks < VIXDISKLIB_MAX_CHUNK_NUMBER ? chunks : VIXDISKLIB_MAX_CHUNK_NUMBER;
    VixDiskLibBlockList *list = NULL;
    VixError err = VixDiskLib_QueryAllocatedBlocks(s->disk, offset, n * QAB_CHUNK, QAB_CHUNK, &list);
    if (VIX_FAILED(err)) {
      job->err = err, job->call = "VixDiskLib_QueryAllocatedBlocks";
      return NULL;
    }
    for (uint32_t i = 0; list && i < list->numBlocks && !job->oom; i++) {
      VixDiskLibBlock b = list->blocks[i];
      if (b.offset < offset || b.offset + b.length > offset + n * QAB_CHUNK || b.offset + b.length < b.offset) {
        job->err = VIX_E_DISK_OUTOFRANGE, job->call = "VixDiskLib_QueryAllocatedBlocks (block outside the range)";
        break;
      }
      job->oom = add_extent(s, b.offset, b.length) < 0;
    }
    err = list ? VixDiskLib_FreeBlockList(list) : VIX_OK;
    if (VIX_FAILED(err) && !job->err) job->err = err, job->call = "VixDiskLib_FreeBlockList";
    if (job->err || job->oom) return NULL;
    chunks -= n;
    offset += n * QAB_CHUNK;
  }
  if (add_extent(s, offset, s->capacity - offset) < 0) job->oom = 1;
  return NULL;
}

static int image_size_is(Session *s, off_t *size) {
  struct stat st;
  if (fstat(s->image_fd, &st) < 0) return os_failed("stat", s->opt->image);
  *size = st.st_size;
  if ((uint64_t)st.st_size == s->capacity * SECTOR) return 0;
  fprintf(stderr, PROG ": image %s holds %lld bytes but the disk holds %" PRIu64 " (%" PRIu64 " sectors)\n",
          s->opt->image, (long long)st.st_size, s->capacity * SECTOR, s->capacity);
  return EXIT_USAGE;
}

static int do_full(Session *s) {
  QabJob job = {s, VIX_OK, NULL, 0};
  if (ftruncate(s->image_fd, 0) < 0 || ftruncate(s->image_fd, (off_t)(s->capacity * SECTOR)) < 0)
    return os_failed("sizing", s->opt->image);
  if (s->opt->misuse & MISUSE_QAB_OFF_THREAD) { /* misuse: not the thread that opened the disk */
    pthread_t thread;
    if (pthread_create(&thread, NULL, query_allocated, &job)) return out_of_memory();
    pthread_join(thread, NULL);
  } else {
    query_allocated(&job);
  }
  if (job.oom) return out_of_memory();
  if (job.err && VIX_ERROR_CODE(job.err) == VIX_E_NOT_SUPPORTED) {
    char *text = VixDiskLib_GetErrorText(job.err, NULL);
    fprintf(stderr, PROG ": QueryAllocatedBlocks unavailable (%s): copying the whole disk\n", text ? text : "?");
    VixDiskLib_FreeErrorText(text);
    s->nextents = 0;
    add_extent(s, 0, s->capacity);
  } else if (job.err) {
    return vix_failed(job.call, job.err);
  }
  s->blocks = s->nextents;
  return copy_extents_to_image(s);
}

static int do_incremental(Session *s) {
  off_t size;
  int rc = image_size_is(s, &size);
  if (rc) return rc;
  for (size_t i = 0; i < s->nextents; i++)
    if (s->extents[i].offset + s->extents[i].length > s->capacity) {
      fprintf(stderr, PROG ": changed area at byte %" PRIu64 " (%" PRIu64 " bytes) is beyond the disk's end\n",
              s->extents[i].offset * SECTOR, s->extents[i].length * SECTOR);
      return EXIT_USAGE;
    }
  return copy_extents_to_image(s);
}

/* A piece of the image that lies in a hole (reads as zeros without reading it). */
static int in_hole(int fd, uint64_t offset, uint64_t len) {
  off_t data = lseek(fd, (off_t)offset, SEEK_DATA);
  if (data < 0) return errno == ENXIO; /* no data up to the end; other errors: read it */
  return (uint64_t)data >= offset + len;
}

static int all_zero(const uint8_t *buf, size_t len) { return !len || (buf[0] == 0 && !memcmp(buf, buf + 1, len - 1)); }

/* image -> disk: the image's data, and zeros where the disk holds data the image does not (found with
 * QueryAllocatedBlocks on the target; without it, every piece is written). --skip-zero: the target is new. */
static int do_restore(Session *s) {
  off_t size;
  int rc = image_size_is(s, &size), target_known = 0;
  Pipe p;
  if (rc) return rc;
  if (!s->opt->skip_zero) {
    QabJob job = {s, VIX_OK, NULL, 0};
    s->nextents = 0;
    query_allocated(&job);
    if (job.oom) return out_of_memory();
    if (job.err && VIX_ERROR_CODE(job.err) != VIX_E_NOT_SUPPORTED) return vix_failed(job.call, job.err);
    target_known = !job.err;
  }
  if (pipe_init(&p, s, 1) < 0) {
    pipe_finish(&p);
    return out_of_memory();
  }
  size_t at = 0; /* the first target extent that may overlap the current piece */
  for (uint64_t sector = 0; sector < s->capacity && !rc;) {
    uint64_t count = s->capacity - sector < s->opt->chunk ? s->capacity - sector : s->opt->chunk;
    size_t len = count * SECTOR;
    int target_has = !s->opt->skip_zero;
    if (target_known) {
      while (at < s->nextents && s->extents[at].offset + s->extents[at].length <= sector) at++;
      target_has = at < s->nextents && s->extents[at].offset < sector + count;
    }
    if (!target_has && in_hole(s->image_fd, sector * SECTOR, len)) {
      sector += count;
      continue;
    }
    Slot *slot = pipe_acquire(&p);
    if (!slot) {
      rc = p.failed;
      break;
    }
    if (pread_all(s->image_fd, slot->buf, len, sector * SECTOR) < 0) {
      rc = os_failed("reading", s->opt->image);
      break;
    }
    s->bytes_read += len;
    if (target_has || !all_zero(slot->buf, len)) {
      rc = pipe_start(&p, slot, sector, count);
      s->blocks++;
    }
    sector += count;
  }
  int finished = pipe_finish(&p);
  return rc ? rc : finished;
}

/* ---- one session: connect, open, copy, close, disconnect, cleanup ------------------------------------ */

static void release_params(Session *s) {
  VixDiskLibConnectParams *p = s->params;
  if (!p) return;
  p->vmxSpec = p->serverName = p->thumbPrint = NULL; /* our strings: the library must not free them */
  memset(&p->creds, 0, sizeof p->creds);
  VixDiskLib_FreeConnectParams(p);
  s->params = NULL;
}

static int session(Session *s) {
  const Options *o = s->opt;
  VixDiskLibInfo *info = NULL;
  VixError err;
  int rc = 0;
  static char no_key[] = "";

  s->params = VixDiskLib_AllocateConnectParams();
  if (!s->params) return vix_failed("VixDiskLib_AllocateConnectParams", VIX_E_OUT_OF_MEMORY);
  VixDiskLibConnectParams *p = s->params;
  p->specType = VIXDISKLIB_SPEC_VMX;
  p->vmxSpec = (char *)o->vm;
  p->serverName = (char *)o->server;
  p->thumbPrint = (char *)o->thumbprint;
  p->port = o->port;
  if (o->cookie) {
    p->credType = VIXDISKLIB_CRED_SESSIONID;
    p->creds.sessionId.cookie = s->secret;
    p->creds.sessionId.userName = (char *)o->user;
    p->creds.sessionId.key = no_key;
  } else {
    p->credType = VIXDISKLIB_CRED_UID;
    p->creds.uid.userName = (char *)o->user;
    p->creds.uid.password = s->secret;
  }

  err = VixDiskLib_ConnectEx(p, o->mode != MODE_RESTORE, o->snapshot, o->transport, &s->conn);
  if (VIX_FAILED(err)) {
    s->conn = NULL;
    rc = vix_failed("VixDiskLib_ConnectEx", err);
    goto out;
  }
  err = VixDiskLib_Open(s->conn, o->disk, o->mode == MODE_RESTORE ? 0 : VIXDISKLIB_FLAG_OPEN_READ_ONLY, &s->disk);
  if (VIX_FAILED(err)) {
    s->disk = NULL;
    rc = vix_failed("VixDiskLib_Open", err);
    goto out;
  }
  err = VixDiskLib_GetInfo(s->disk, &info);
  if (VIX_FAILED(err)) {
    rc = vix_failed("VixDiskLib_GetInfo", err);
    goto out;
  }
  s->capacity = info->capacity;
  VixDiskLib_FreeInfo(info);
  const char *mode = VixDiskLib_GetTransportMode(s->disk);
  snprintf(s->transport, sizeof s->transport, "%s", mode ? mode : "unknown");

  rc = o->mode == MODE_FULL ? do_full(s) : o->mode == MODE_INCREMENTAL ? do_incremental(s) : do_restore(s);
  if (rc) goto out;
  if (o->mode == MODE_RESTORE && VIX_FAILED(err = VixDiskLib_Flush(s->disk))) {
    rc = vix_failed("VixDiskLib_Flush", err);
    goto out;
  }
  err = VixDiskLib_Close(s->disk);
  s->disk = NULL;
  if (VIX_FAILED(err)) {
    rc = vix_failed("VixDiskLib_Close", err);
    goto out;
  }
  err = VixDiskLib_Disconnect(s->conn);
  s->conn = NULL;
  if (VIX_FAILED(err)) {
    rc = vix_failed("VixDiskLib_Disconnect", err);
    goto out;
  }
  if (!(o->misuse & MISUSE_SKIP_CLEANUP)) {
    uint32_t cleaned = 0, remaining = 0;
    err = VixDiskLib_Cleanup(p, &cleaned, &remaining); /* same params: vmxSpec as in the connect */
    if (VIX_FAILED(err)) rc = vix_failed("VixDiskLib_Cleanup", err); /* e.g. VMs still needing cleanup */
    else if (cleaned || remaining)
      fprintf(stderr, PROG ": Cleanup: %" PRIu32 " cleaned up, %" PRIu32 " remaining\n", cleaned, remaining);
  }
out:
  if (rc && (s->disk || s->conn)) { /* a failed session releases what it holds, HotAdd disks included */
    if (s->disk) VixDiskLib_Close(s->disk);
    if (s->conn) VixDiskLib_Disconnect(s->conn);
    s->disk = NULL, s->conn = NULL;
    if (!(o->misuse & MISUSE_SKIP_CLEANUP)) {
      uint32_t cleaned = 0, remaining = 0;
      VixDiskLib_Cleanup(p, &cleaned, &remaining); /* its own failure is not the one to report */
    }
  }
  release_params(s);
  return rc;
}

/* --misuse threads-before-init: the worker exists before InitEx and waits for it */
typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int released, go, rc;
  Session *s;
} Gate;

static void *worker(void *arg) {
  Gate *g = arg;
  pthread_mutex_lock(&g->lock);
  while (!g->released) pthread_cond_wait(&g->cond, &g->lock);
  int go = g->go;
  pthread_mutex_unlock(&g->lock);
  g->rc = go ? session(g->s) : EXIT_FAILED;
  return NULL;
}

static void open_gate(Gate *g, int go) {
  pthread_mutex_lock(&g->lock);
  g->released = 1, g->go = go;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

static void json_string(const char *text) {
  putchar('"');
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (*c == '"' || *c == '\\') printf("\\%c", *c);
    else if (*c < 0x20) printf("\\u%04x", *c);
    else putchar(*c);
  }
  putchar('"');
}

static void wipe(char *secret) {
  if (!secret) return;
  for (volatile char *c = secret; *c; c++) *c = 0;
}

int main(int argc, char **argv) {
  Options opt;
  Session s;
  Gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, EXIT_FAILED, &s};
  pthread_t thread;
  struct timespec t0, t1;
  int rc, threaded;

  parse_args(argc, argv, &opt);
  memset(&s, 0, sizeof s);
  s.opt = &opt;
  s.image_fd = -1;
  const char *secret = getenv(opt.secret_env);
  if (!secret || !*secret) /* no name in the message: a mistyped secret in its place must not be shown */
    usage_error("the environment variable named by --%s-env is not set or empty", opt.cookie ? "cookie" : "password");
  if (!(s.secret = strdup(secret))) usage_error("out of memory");
  g_secret = s.secret;
  if (opt.mode == MODE_INCREMENTAL) read_changed(&s, opt.changed);
  s.image_fd = opt.mode == MODE_FULL ? open(opt.image, O_RDWR | O_CREAT | O_CLOEXEC, 0600)
                                     : open(opt.image, (opt.mode == MODE_RESTORE ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (s.image_fd < 0) usage_error("cannot open image %s: %s", opt.image, strerror(errno));

  clock_gettime(CLOCK_MONOTONIC, &t0);
  threaded = (opt.misuse & MISUSE_THREADS_BEFORE_INIT) != 0;
  if (threaded && pthread_create(&thread, NULL, worker, &gate)) {
    fprintf(stderr, PROG ": cannot create the worker thread\n");
    return EXIT_FAILED;
  }
  VixError err = VixDiskLib_InitEx(7, 0, log_info, log_warning, log_panic, opt.libdir, opt.config);
  if (VIX_FAILED(err)) {
    rc = vix_failed("VixDiskLib_InitEx", err);
    if (threaded) {
      open_gate(&gate, 0);
      pthread_join(thread, NULL);
    }
  } else {
    if (threaded) {
      open_gate(&gate, 1);
      pthread_join(thread, NULL);
      rc = gate.rc;
    } else {
      rc = session(&s);
    }
    VixDiskLib_Exit();
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (close(s.image_fd) < 0 && !rc) rc = os_failed("closing", opt.image);
  if (!rc) {
    printf("{\"mode\":\"%s\",\"transport\":", MODE_NAMES[opt.mode]);
    json_string(s.transport);
    printf(",\"capacity_bytes\":%" PRIu64 ",\"bytes_read\":%" PRIu64 ",\"bytes_written\":%" PRIu64
           ",\"seconds\":%.3f,\"blocks\":%" PRIu64 "}\n",
           s.capacity * SECTOR, s.bytes_read, s.bytes_written,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, s.blocks);
  }
  g_secret = NULL;
  wipe(s.secret);
  free(s.secret);
  free(s.extents);
  return rc;
}
