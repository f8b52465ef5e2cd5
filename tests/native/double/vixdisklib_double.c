/*
 * vixdisklib_double.c - a test double of VMware's libvixDiskLib, written from scratch for the harness.
 *
 * It exports the real symbol names with the C prototypes of the public VixDiskLib API (as summarised in the
 * team's VDDK reference notes, from public sources) so the ctypes backend can be exercised without VMware's
 * library. It serves the harness simulator's own disk files: a datastore path "[ds] dir/disk.vmdk" maps to
 * $VIXDOUBLE_DISK_ROOT/ds/dir/disk.vmdk (a local connection takes absolute paths). A disk is a VMDK text
 * descriptor with one FLAT extent, or one SPARSE extent (hosted sparse "KDMV") whose parentFileNameHint
 * names the next link. Reads fall through the chain; writes go to the top link, which must be FLAT.
 *
 * Build:  gcc -shared -fPIC -pthread -DVIXDOUBLE_MAJOR=6|7|8 [-DVIXDOUBLE_V65] [-DVIXDOUBLE_OMIT_...]
 *   VIXDOUBLE_MAJOR  6: VixDiskLibInfo is 56 bytes; 7 and 8: 64 bytes (logical/physical sector sizes).
 *   VIXDOUBLE_V65    a 6.5-era library: ConnectParams ends at vimApiVer (80 bytes), and neither
 *                    QueryAllocatedBlocks, FreeBlockList nor AllocateConnectParams exist.
 *   Libraries that lack functions (so the harness's loader meets them), each switch leaving out:
 *   VIXDOUBLE_OMIT_LIST_MODES      ListTransportModes        VIXDOUBLE_OMIT_TRANSPORT_MODE  GetTransportMode
 *   VIXDOUBLE_OMIT_ASYNC           ReadAsync, WriteAsync, Wait  VIXDOUBLE_OMIT_WAIT        Wait alone
 *   VIXDOUBLE_OMIT_FLUSH           Flush                     VIXDOUBLE_OMIT_ATTACH         Attach
 *   VIXDOUBLE_OMIT_ACCESS          PrepareForAccess, EndAccess  VIXDOUBLE_OMIT_CLEANUP     Cleanup
 *   VIXDOUBLE_OMIT_QUERY           QueryAllocatedBlocks, FreeBlockList
 *   VIXDOUBLE_OMIT_ALLOCATE        AllocateConnectParams     VIXDOUBLE_OMIT_FREE_PARAMS    FreeConnectParams
 *   VIXDOUBLE_OMIT_IO              Read and Write (required: such a library must be refused)
 *   VIXDOUBLE_CORE_ONLY            every optional function above: only the twelve a backup needs remain
 *   VIXDOUBLE_VERSION="x.y.z"  the version InitEx announces (default per major: 6.7.3, 7.0.3, 8.0.1);
 *   VIXDOUBLE_BUILD_NUMBER="n" the build number it announces (default: the major, then six zeros).
 *
 * At InitEx the double announces itself through the log callback as VDDK does,
 * "VMware VixDiskLib (x.y.z) Release build-n"; VIXDOUBLE_VERSION in the environment overrides the
 * compiled-in version (an empty value announces nothing), so a test can load a "7.0.2" library.
 *
 * Fault injection, read at call time from the environment:
 *   VIXDOUBLE_FAIL_CONNECT=code   VIXDOUBLE_FAIL_OPEN=code   VIXDOUBLE_FAIL_PREPARE=code
 *   VIXDOUBLE_FAIL_READ=N:code    the Nth read since InitEx (Read and ReadAsync) fails with code
 *   VIXDOUBLE_FAIL_WRITE=N:code   likewise for writes
 *   VIXDOUBLE_READ_DELAY_MS=ms    every read sleeps first
 *   VIXDOUBLE_THUMBPRINT=aa:bb..  Open fails with VIX_E_FAIL when the connection's thumbprint differs
 *   VIXDOUBLE_TRANSPORTS=a:b      remote transports this "proxy" offers (default nbd:nbdssl)
 *   VIXDOUBLE_CLEANUP_REMAINING=n Cleanup reports n VMs still needing cleanup
 *   VIXDOUBLE_PHYSICAL_SECTOR=n   physicalSectorSize GetInfo reports (7.0+ layout)
 *   VIXDOUBLE_NULL_HANDLE=ConnectEx|Open  that call answers VIX_OK without setting its out handle (a library bug)
 *
 * Test hooks (not VixDiskLib): VixDouble_State(buf, len) prints counters (connections, disks, PrepareForAccess
 * depth, reads, writes, `live` = library-allocated objects not yet given back to their Free function,
 * `null_args` = calls that were handed a NULL connection or disk handle) and
 * what the last ConnectEx read from its parameters (never the password: only its length);
 * VixDouble_Panic(msg) calls the panic callback; VixDouble_Major() says which ABI was built.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#ifndef VIXDOUBLE_MAJOR
#define VIXDOUBLE_MAJOR 7
#endif
#ifndef VIXDOUBLE_VERSION
#if VIXDOUBLE_MAJOR == 6
#define VIXDOUBLE_VERSION "6.7.3"
#elif VIXDOUBLE_MAJOR == 8
#define VIXDOUBLE_VERSION "8.0.1"
#else
#define VIXDOUBLE_VERSION "7.0.3"
#endif
#endif
#ifndef VIXDOUBLE_BUILD_NUMBER
#define VIXDOUBLE_STR2(x) #x
#define VIXDOUBLE_STR(x) VIXDOUBLE_STR2(x)
#define VIXDOUBLE_BUILD_NUMBER VIXDOUBLE_STR(VIXDOUBLE_MAJOR) "000000"
#endif
#define EXPORT __attribute__((visibility("default")))

/* CORE_ONLY and V65 imply the switches of what they leave out (#undef first: -D may have set them already) */
#ifdef VIXDOUBLE_CORE_ONLY
#undef VIXDOUBLE_OMIT_LIST_MODES
#define VIXDOUBLE_OMIT_LIST_MODES 1
#undef VIXDOUBLE_OMIT_TRANSPORT_MODE
#define VIXDOUBLE_OMIT_TRANSPORT_MODE 1
#undef VIXDOUBLE_OMIT_ASYNC
#define VIXDOUBLE_OMIT_ASYNC 1
#undef VIXDOUBLE_OMIT_FLUSH
#define VIXDOUBLE_OMIT_FLUSH 1
#undef VIXDOUBLE_OMIT_ATTACH
#define VIXDOUBLE_OMIT_ATTACH 1
#undef VIXDOUBLE_OMIT_ACCESS
#define VIXDOUBLE_OMIT_ACCESS 1
#undef VIXDOUBLE_OMIT_CLEANUP
#define VIXDOUBLE_OMIT_CLEANUP 1
#undef VIXDOUBLE_OMIT_FREE_PARAMS
#define VIXDOUBLE_OMIT_FREE_PARAMS 1
#endif
#if defined(VIXDOUBLE_CORE_ONLY) || defined(VIXDOUBLE_V65)
#undef VIXDOUBLE_OMIT_QUERY
#define VIXDOUBLE_OMIT_QUERY 1
#undef VIXDOUBLE_OMIT_ALLOCATE
#define VIXDOUBLE_OMIT_ALLOCATE 1
#endif
#ifdef VIXDOUBLE_OMIT_ASYNC
#undef VIXDOUBLE_OMIT_WAIT
#define VIXDOUBLE_OMIT_WAIT 1
#endif

typedef uint64_t VixError;
typedef uint64_t VixDiskLibSectorType;
typedef char Bool;
typedef void VixDiskLibGenericLogFunc(const char *fmt, va_list args);
typedef void (*VixDiskLibCompletionCB)(void *cbData, VixError result);

enum {
  VIX_OK = 0, VIX_E_FAIL = 1, VIX_E_OUT_OF_MEMORY = 2, VIX_E_INVALID_ARG = 3, VIX_E_FILE_NOT_FOUND = 4,
  VIX_E_NOT_SUPPORTED = 6, VIX_E_FILE_ERROR = 7, VIX_E_FILE_READ_ONLY = 11, VIX_E_INVALID_HANDLE = 1000,
  VIX_E_DISK_INVAL = 16000, VIX_E_DISK_NOINIT = 16001, VIX_E_DISK_OUTOFRANGE = 16007, VIX_ASYNC = 25000,
};
#define SECTOR 512ULL
#define MIN_CHUNK 128ULL
#define MAX_CHUNK 131072ULL
#define MAX_CHUNKS 524288ULL
#define MAX_LINKS 32
#define FLAG_SINGLE_LINK 2
#define FLAG_READ_ONLY 4

typedef struct { uint32_t cylinders, heads, sectors; } VixDiskLibGeometry;
typedef struct {
  VixDiskLibGeometry biosGeo, physGeo;
  VixDiskLibSectorType capacity;
  int adapterType;
  int numLinks;
  char *parentFileNameHint;
  char *uuid;
#if VIXDOUBLE_MAJOR >= 7
  uint32_t logicalSectorSize, physicalSectorSize;
#endif
} VixDiskLibInfo;

typedef struct {
  char *vmxSpec, *serverName, *thumbPrint;
  long privateUse;
  int credType;
  union {
    struct { char *userName, *password; } uid;
    struct { char *cookie, *userName, *key; } sessionId;
    void *ticketId;
  } creds;
  uint32_t port, nfcHostPort;
  char *vimApiVer;
#ifndef VIXDOUBLE_V65
  char reserved[8];
  void *state;
  union { struct { char *id, *datastoreMoRef, *ssId; } vStorageObjSpec; } spec;
  int specType;
#endif
} VixDiskLibConnectParams;

typedef struct { VixDiskLibSectorType offset, length; } VixDiskLibBlock;
typedef struct { uint32_t numBlocks; VixDiskLibBlock blocks[1]; } VixDiskLibBlockList;

#if VIXDOUBLE_MAJOR >= 7
_Static_assert(sizeof(VixDiskLibInfo) == 64, "7.0+ Info is 64 bytes");
#else
_Static_assert(sizeof(VixDiskLibInfo) == 56, "pre-7.0 Info is 56 bytes");
#endif
#ifdef VIXDOUBLE_V65
_Static_assert(sizeof(VixDiskLibConnectParams) == 80, "6.5 ConnectParams is 80 bytes");
#else
_Static_assert(sizeof(VixDiskLibConnectParams) == 128, "6.7+ ConnectParams is 128 bytes");
#endif
_Static_assert(offsetof(VixDiskLibBlockList, blocks) == 8, "blocks start at 8 on LP64");

/* ---- library state ---------------------------------------------------------------------------- */

typedef struct { int fd, sparse; uint64_t gd_offset, grain; uint32_t gtes; char path[PATH_MAX]; } Link;

typedef struct Job {
  struct Job *next;
  int write;
  uint64_t start, count;
  uint8_t *buf;
  VixDiskLibCompletionCB cb;
  void *data;
} Job;

#define CONN_MAGIC 0x434f4e4eU
#define DISK_MAGIC 0x4449534bU
typedef struct {
  uint32_t magic;
  int read_only, remote;
  char modes[128], thumbprint[128], session[PATH_MAX + 64];
} Conn;

typedef struct Disk {
  uint32_t magic;
  Conn *conn;
  Link links[MAX_LINKS];
  int nlinks, writable;
  uint64_t capacity; /* sectors */
  const char *transport;
  char uuid[128], parent_hint[PATH_MAX], adapter[32];
  uint32_t cyl, heads, secs;
  struct Disk *attached_to, *attached_parent; /* parent -> child and child -> parent after Attach */
  int closed;                                 /* a parent closed while its child still uses its links */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  Job *head, *tail;
  int pending, worker, stop;
  pthread_t thread;
} Disk;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_init;
static VixDiskLibGenericLogFunc *g_log, *g_warn, *g_panic;
static char g_tmpdir[PATH_MAX];
static unsigned long g_reads, g_writes, g_sessions;
static int g_connections, g_disks, g_access;
static long g_live; /* library-allocated objects not yet handed back to a Free function */
static unsigned long g_null_args; /* calls handed a NULL connection or disk handle */
static char g_last_connect[1024];
#ifndef VIXDOUBLE_V65
static void *g_allocated[64];
#endif

static void live(long delta) {
  pthread_mutex_lock(&g_lock);
  g_live += delta;
  pthread_mutex_unlock(&g_lock);
}

static void emit(VixDiskLibGenericLogFunc *fn, const char *fmt, ...) {
  va_list ap;
  if (!fn) return;
  va_start(ap, fmt);
  fn(fmt, ap);
  va_end(ap);
}
#define LOG(...) emit(g_log, __VA_ARGS__)
#define WARN(...) emit(g_warn, __VA_ARGS__)

/* VIXDOUBLE_NULL_HANDLE names the call that answers VIX_OK without setting its out handle */
static int null_handle(const char *call) {
  const char *v = getenv("VIXDOUBLE_NULL_HANDLE");
  return v && !strcmp(v, call);
}

static void note_null(const void *handle) {
  if (!handle) __atomic_add_fetch(&g_null_args, 1, __ATOMIC_RELAXED);
}

static long env_long(const char *name, long fallback) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : fallback;
}

/* VIXDOUBLE_FAIL_READ=N:code: the code for operation number `n`, else VIX_OK. */
static VixError injected(const char *name, unsigned long n) {
  const char *v = getenv(name);
  unsigned long at, code;
  if (v && sscanf(v, "%lu:%lu", &at, &code) == 2 && at == n) return code;
  return VIX_OK;
}

static const char *text_of(VixError err) {
  switch (err & 0xFFFF) {
  case VIX_OK: return "The operation was successfully completed";
  case VIX_E_FAIL: return "Unknown error";
  case VIX_E_OUT_OF_MEMORY: return "Memory allocation failed. Out of memory";
  case VIX_E_INVALID_ARG: return "One of the parameters was invalid";
  case VIX_E_FILE_NOT_FOUND: return "A file was not found";
  case VIX_E_NOT_SUPPORTED: return "The operation is not supported";
  case VIX_E_FILE_ERROR: return "A file access error occurred on the host or guest operating system";
  case VIX_E_FILE_READ_ONLY: return "The file is write-protected";
  case VIX_E_INVALID_HANDLE: return "The handle is not a valid VIX object";
  case VIX_E_DISK_INVAL: return "One of the parameters supplied is invalid";
  case VIX_E_DISK_NOINIT: return "The disk library has not been initialized";
  case VIX_E_DISK_OUTOFRANGE: return "The specified sector is out of range";
  case VIX_ASYNC: return "The asynchronous operation was queued";
  default: return NULL;
  }
}

/* ---- files: descriptor, flat and hosted sparse extents ------------------------------------------ */

static int read_full(int fd, void *buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) { if (errno == EINTR) continue; return -1; }
    if (n == 0) { memset((char *)buf + done, 0, len - done); break; } /* past EOF reads as zeros */
    done += (size_t)n;
  }
  return 0;
}

static uint32_t u32_at(int fd, uint64_t off) {
  uint32_t v = 0;
  if (read_full(fd, &v, 4, off) < 0) return 0;
  return v; /* little-endian file, x86-64/aarch64 host */
}

static char *unquote(char *s) {
  size_t n;
  while (*s == ' ' || *s == '\t') s++;
  n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"') { s[n - 1] = 0; s++; }
  return s;
}

#define DESCRIPTOR_MAX 65536

/* Parse descriptor text: the one extent line (file, kind, sectors), the parent hint and, for the top link,
 * the ddb values that describe the disk. */
static VixError parse_descriptor(Disk *d, char *text, char *extent, char *parent, char *kind,
                                 unsigned long long *total) {
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char access[16], file[PATH_MAX], *eq;
    unsigned long long sectors = 0;
    while (*line == ' ') line++;
    if (*line == '#') continue;
    if (sscanf(line, "%15s %llu %15s \"%4095[^\"]\"", access, &sectors, kind, file) == 4 &&
        (!strcmp(access, "RW") || !strcmp(access, "RDONLY"))) {
      if (*extent) return VIX_E_NOT_SUPPORTED; /* one extent per link, like the simulator */
      snprintf(extent, PATH_MAX, "%s", file);
      *total = sectors;
      continue;
    }
    if (!(eq = strchr(line, '='))) continue;
    *eq = 0;
    char *key = unquote(line), *value = unquote(eq + 1);
    if (!strcmp(key, "parentFileNameHint")) snprintf(parent, PATH_MAX, "%s", value);
    if (d->nlinks) continue;
    if (!strcmp(key, "ddb.uuid")) snprintf(d->uuid, sizeof d->uuid, "%s", value);
    if (!strcmp(key, "ddb.adapterType")) snprintf(d->adapter, sizeof d->adapter, "%s", value);
    if (!strcmp(key, "ddb.geometry.cylinders")) d->cyl = (uint32_t)strtoul(value, NULL, 10);
    if (!strcmp(key, "ddb.geometry.heads")) d->heads = (uint32_t)strtoul(value, NULL, 10);
    if (!strcmp(key, "ddb.geometry.sectors")) d->secs = (uint32_t)strtoul(value, NULL, 10);
  }
  return VIX_OK;
}

/* Open one link (descriptor + extent); recurse into its parent unless `single`. */
static VixError open_link(Disk *d, const char *path, int single) {
  char *text, dir[PATH_MAX], extent[PATH_MAX] = "", parent[PATH_MAX] = "", kind[16] = "";
  unsigned long long total = 0;
  Link *l;
  ssize_t n;
  int fd;
  if (d->nlinks >= MAX_LINKS) return VIX_E_DISK_INVAL;
  fd = open(path, O_RDONLY);
  if (fd < 0) return errno == ENOENT ? VIX_E_FILE_NOT_FOUND : VIX_E_FILE_ERROR;
  text = malloc(DESCRIPTOR_MAX + 1);
  n = text ? read(fd, text, DESCRIPTOR_MAX) : -1;
  close(fd);
  if (n < 4 || memcmp(text, "KDMV", 4) == 0) { free(text); return VIX_E_DISK_INVAL; }
  text[n] = 0;
  VixError rc = parse_descriptor(d, text, extent, parent, kind, &total);
  free(text);
  if (rc) return rc;
  if (!*extent || !total) return VIX_E_DISK_INVAL;
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) slash[1] = 0; else strcpy(dir, "./");
  l = &d->links[d->nlinks];
  memset(l, 0, sizeof *l);
  if (snprintf(l->path, sizeof l->path, "%s%s", extent[0] == '/' ? "" : dir, extent) >= (int)sizeof l->path)
    return VIX_E_INVALID_ARG;
  l->fd = open(l->path, d->writable && d->nlinks == 0 ? O_RDWR : O_RDONLY);
  if (l->fd < 0) return errno == ENOENT ? VIX_E_FILE_NOT_FOUND : VIX_E_FILE_ERROR;
  d->nlinks++;
  if (!strcmp(kind, "SPARSE")) {
    unsigned char hdr[512];
    if (read_full(l->fd, hdr, sizeof hdr, 0) < 0 || memcmp(hdr, "KDMV", 4)) return VIX_E_DISK_INVAL;
    l->sparse = 1;
    memcpy(&l->grain, hdr + 20, 8);
    memcpy(&l->gtes, hdr + 44, 4);
    memcpy(&l->gd_offset, hdr + 56, 8);
    if (!l->grain || !l->gtes || !l->gd_offset) return VIX_E_DISK_INVAL;
  } else if (strcmp(kind, "FLAT") && strcmp(kind, "VMFS")) {
    return VIX_E_NOT_SUPPORTED;
  }
  if (d->nlinks == 1) {
    d->capacity = total;
    snprintf(d->parent_hint, sizeof d->parent_hint, "%s", parent);
  }
  if (!*parent || single) return VIX_OK;
  char next[PATH_MAX];
  if (snprintf(next, sizeof next, "%s%s", parent[0] == '/' ? "" : dir, parent) >= (int)sizeof next)
    return VIX_E_INVALID_ARG;
  return open_link(d, next, 0);
}

/* File offset of sector `sector` in a sparse link, 0 when the grain is not allocated. */
static uint64_t sparse_lookup(const Link *l, uint64_t sector) {
  uint64_t grain = sector / l->grain;
  uint32_t gde = u32_at(l->fd, l->gd_offset * SECTOR + 4 * (grain / l->gtes));
  if (!gde) return 0;
  uint32_t gte = u32_at(l->fd, (uint64_t)gde * SECTOR + 4 * (grain % l->gtes));
  return gte ? (uint64_t)gte * SECTOR + (sector % l->grain) * SECTOR : 0;
}

static int read_chain(const Disk *d, int link, uint64_t sector, uint64_t count, uint8_t *buf) {
  if (link >= d->nlinks) { memset(buf, 0, count * SECTOR); return 0; }
  const Link *l = &d->links[link];
  if (!l->sparse) return read_full(l->fd, buf, count * SECTOR, sector * SECTOR);
  while (count) {
    uint64_t run = l->grain - sector % l->grain;
    if (run > count) run = count;
    uint64_t at = sparse_lookup(l, sector);
    if ((at ? read_full(l->fd, buf, run * SECTOR, at) : read_chain(d, link + 1, sector, run, buf)) < 0) return -1;
    sector += run, count -= run, buf += run * SECTOR;
  }
  return 0;
}

#ifndef VIXDOUBLE_OMIT_QUERY
static int range_allocated(const Disk *d, uint64_t sector, uint64_t count) {
  for (int i = 0; i < d->nlinks; i++) {
    const Link *l = &d->links[i];
    if (!l->sparse) {
      off_t data = lseek(l->fd, (off_t)(sector * SECTOR), SEEK_DATA);
      if (data >= 0 && (uint64_t)data < (sector + count) * SECTOR) return 1;
      continue;
    }
    for (uint64_t s = sector - sector % l->grain; s < sector + count; s += l->grain)
      if (sparse_lookup(l, s)) return 1;
  }
  return 0;
}

#endif

/* ---- handles, async worker ------------------------------------------------------------------------ */

static Disk *disk_of(void *h) {
  Disk *d = h;
  note_null(h);
  return d && d->magic == DISK_MAGIC && !d->closed ? d : NULL;
}

/* A handle that can do I/O: not a parent whose links an Attach handed to its child. */
static Disk *io_disk_of(void *h) {
  Disk *d = disk_of(h);
  return d && !d->attached_to ? d : NULL;
}

static VixError do_read(Disk *d, uint64_t start, uint64_t count, uint8_t *buf) {
  unsigned long n;
  long delay = env_long("VIXDOUBLE_READ_DELAY_MS", 0);
  if (start + count > d->capacity || start + count < start) return VIX_E_DISK_OUTOFRANGE;
  pthread_mutex_lock(&g_lock);
  n = ++g_reads;
  pthread_mutex_unlock(&g_lock);
  if (delay > 0) {
    struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  VixError fault = injected("VIXDOUBLE_FAIL_READ", n);
  if (fault) { WARN("Read %lu: injected failure %lu\n", n, (unsigned long)fault); return fault; }
  return read_chain(d, 0, start, count, buf) < 0 ? VIX_E_FILE_ERROR : VIX_OK;
}

static VixError do_write(Disk *d, uint64_t start, uint64_t count, const uint8_t *buf) {
  unsigned long n;
  if (!d->writable) return VIX_E_FILE_READ_ONLY;
  if (start + count > d->capacity || start + count < start) return VIX_E_DISK_OUTOFRANGE;
  if (d->links[0].sparse) return VIX_E_NOT_SUPPORTED; /* the double writes FLAT extents only */
  pthread_mutex_lock(&g_lock);
  n = ++g_writes;
  pthread_mutex_unlock(&g_lock);
  VixError fault = injected("VIXDOUBLE_FAIL_WRITE", n);
  if (fault) return fault;
  size_t done = 0, len = count * SECTOR;
  while (done < len) {
    ssize_t w = pwrite(d->links[0].fd, buf + done, len - done, (off_t)(start * SECTOR + done));
    if (w < 0) { if (errno == EINTR) continue; return VIX_E_FILE_ERROR; }
    done += (size_t)w;
  }
  return VIX_OK;
}

#ifndef VIXDOUBLE_OMIT_ASYNC
static void *worker(void *arg) {
  Disk *d = arg;
  pthread_mutex_lock(&d->lock);
  for (;;) {
    while (!d->head && !d->stop) pthread_cond_wait(&d->cond, &d->lock);
    if (!d->head) break;
    Job *j = d->head;
    d->head = j->next;
    if (!d->head) d->tail = NULL;
    pthread_mutex_unlock(&d->lock);
    VixError rc = j->write ? do_write(d, j->start, j->count, j->buf) : do_read(d, j->start, j->count, j->buf);
    j->cb(j->data, rc); /* on this worker thread, never the caller's */
    free(j);
    pthread_mutex_lock(&d->lock);
    d->pending--;
    pthread_cond_broadcast(&d->cond);
  }
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

static VixError submit(void *h, int write, uint64_t start, uint64_t count, uint8_t *buf, VixDiskLibCompletionCB cb,
                       void *data) {
  Disk *d = io_disk_of(h);
  if (!d) return VIX_E_INVALID_ARG;
  if (!cb || !buf) return VIX_E_INVALID_ARG;
  if (start + count > d->capacity || start + count < start) return VIX_E_DISK_OUTOFRANGE;
  if (write && !d->writable) return VIX_E_FILE_READ_ONLY;
  Job *j = calloc(1, sizeof *j);
  if (!j) return VIX_E_OUT_OF_MEMORY;
  *j = (Job){NULL, write, start, count, buf, cb, data};
  pthread_mutex_lock(&d->lock);
  if (!d->worker) {
    if (pthread_create(&d->thread, NULL, worker, d)) { pthread_mutex_unlock(&d->lock); free(j); return VIX_E_FAIL; }
    d->worker = 1;
  }
  if (d->tail) d->tail->next = j; else d->head = j;
  d->tail = j;
  d->pending++;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
  return VIX_ASYNC;
}
#endif

static void drain(Disk *d) {
  pthread_mutex_lock(&d->lock);
  while (d->pending) pthread_cond_wait(&d->cond, &d->lock);
  pthread_mutex_unlock(&d->lock);
}

static void free_disk(Disk *d) {
  drain(d);
  if (d->worker) {
    pthread_mutex_lock(&d->lock);
    d->stop = 1;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
  }
  for (int i = 0; i < d->nlinks; i++) close(d->links[i].fd);
  pthread_mutex_destroy(&d->lock);
  pthread_cond_destroy(&d->cond);
  d->magic = 0;
  free(d);
  pthread_mutex_lock(&g_lock);
  g_disks--;
  pthread_mutex_unlock(&g_lock);
}

/* ---- the API ---------------------------------------------------------------------------------------- */

EXPORT VixError VixDiskLib_InitEx(uint32_t major, uint32_t minor, VixDiskLibGenericLogFunc *log,
                                  VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic,
                                  const char *libDir, const char *configFile) {
  /* VIXDOUBLE_INIT=abort: a library that takes its process down; VIXDOUBLE_INIT=N: InitEx fails with code N */
  const char *init = getenv("VIXDOUBLE_INIT");
  if (init && !strcmp(init, "abort")) abort();
  if (init && *init) return (VixError)strtoul(init, NULL, 10);
  pthread_mutex_lock(&g_lock);
  if (g_init) { pthread_mutex_unlock(&g_lock); return VIX_E_FAIL; }
  g_init = 1, g_log = log, g_warn = warn, g_panic = panic, g_reads = g_writes = 0, g_tmpdir[0] = 0;
  pthread_mutex_unlock(&g_lock);
  if (configFile) {
    FILE *f = fopen(configFile, "r");
    char line[4096];
    if (!f) WARN("InitEx: cannot read configuration %s\n", configFile);
    while (f && fgets(line, sizeof line, f)) {
      char *eq = strchr(line, '=');
      if (line[0] == '#' || !eq) continue;
      *eq = 0;
      if (!strcmp(unquote(line), "tmpDirectory")) snprintf(g_tmpdir, sizeof g_tmpdir, "%s", unquote(eq + 1));
    }
    if (f) fclose(f);
  }
  const char *version = getenv("VIXDOUBLE_VERSION") ? getenv("VIXDOUBLE_VERSION") : VIXDOUBLE_VERSION;
  if (*version) LOG("VMware VixDiskLib (%s) Release build-%s\n", version, VIXDOUBLE_BUILD_NUMBER);
  LOG("VixDiskLib double %d (requested %u.%u) initialised; libDir=%s tmpDirectory=%s\n", VIXDOUBLE_MAJOR, major,
      minor, libDir ? libDir : "(null)", *g_tmpdir ? g_tmpdir : "(default)");
  return VIX_OK;
}

EXPORT void VixDiskLib_Exit(void) {
  pthread_mutex_lock(&g_lock);
  int open_disks = g_disks;
  pthread_mutex_unlock(&g_lock);
  if (open_disks) WARN("Exit: %d disk handle(s) still open\n", open_disks);
  LOG("VixDiskLib double exiting\n");
  pthread_mutex_lock(&g_lock);
  g_init = 0, g_log = g_warn = g_panic = NULL;
  pthread_mutex_unlock(&g_lock);
}

#ifndef VIXDOUBLE_OMIT_LIST_MODES
/* VIXDOUBLE_MODES: the modes a kit offers (a kit without some transport's plugin) */
EXPORT const char *VixDiskLib_ListTransportModes(void) {
  const char *modes = getenv("VIXDOUBLE_MODES");
  return modes ? modes : "file:san:hotadd:nbd:nbdssl";
}
#endif

EXPORT char *VixDiskLib_GetErrorText(VixError err, const char *locale) {
  char buf[256];
  const char *text = text_of(err);
  (void)locale;
  if (text) snprintf(buf, sizeof buf, "%s", text);
  else snprintf(buf, sizeof buf, "Unknown error code %u", (unsigned)(err & 0xFFFF));
  live(1);
  return strdup(buf);
}

EXPORT void VixDiskLib_FreeErrorText(char *text) {
  if (text) live(-1);
  free(text);
}

#ifndef VIXDOUBLE_OMIT_ALLOCATE
EXPORT VixDiskLibConnectParams *VixDiskLib_AllocateConnectParams(void) {
  VixDiskLibConnectParams *p = calloc(1, sizeof *p);
  if (p) live(1);
  pthread_mutex_lock(&g_lock);
  for (int i = 0; p && i < 64; i++) if (!g_allocated[i]) { g_allocated[i] = p; break; }
  pthread_mutex_unlock(&g_lock);
  return p;
}
#endif

#ifndef VIXDOUBLE_OMIT_FREE_PARAMS
EXPORT void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *p) {
  if (!p) return;
  if (p->vmxSpec || p->serverName || p->thumbPrint || p->creds.uid.userName || p->creds.uid.password)
    WARN("FreeConnectParams: string fields still set; they belong to the caller\n");
#ifndef VIXDOUBLE_V65
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < 64; i++) if (g_allocated[i] == p) g_allocated[i] = NULL;
  pthread_mutex_unlock(&g_lock);
#endif
  live(-1);
  free(p);
}
#endif

EXPORT VixError VixDiskLib_ConnectEx(const VixDiskLibConnectParams *p, Bool readOnly, const char *snapshotRef,
                                     const char *transportModes, void **out) {
  long fault = env_long("VIXDOUBLE_FAIL_CONNECT", 0);
  if (!out) return VIX_E_INVALID_ARG;
  *out = NULL;
  if (!g_init) return VIX_E_DISK_NOINIT;
  if (fault) return (VixError)fault;
  if (null_handle("ConnectEx")) return VIX_OK;
  Conn *c = calloc(1, sizeof *c);
  if (!c) return VIX_E_OUT_OF_MEMORY;
  c->magic = CONN_MAGIC;
  c->read_only = readOnly != 0;
  c->remote = p && p->serverName;
  snprintf(c->modes, sizeof c->modes, "%s", transportModes ? transportModes : "file:san:hotadd:nbd");
  if (p && p->thumbPrint) snprintf(c->thumbprint, sizeof c->thumbprint, "%s", p->thumbPrint);
  if (p) {
    const char *user = p->credType == 2 ? p->creds.sessionId.userName : p->creds.uid.userName;
    const char *secret = p->credType == 2 ? p->creds.sessionId.key : p->creds.uid.password;
    int sealed = 1;
#ifndef VIXDOUBLE_V65
    sealed = 0;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < 64; i++) if (g_allocated[i] == p) sealed = 1;
    pthread_mutex_unlock(&g_lock);
    if (!sealed) WARN("ConnectEx: connect parameters were not allocated with VixDiskLib_AllocateConnectParams\n");
#endif
    snprintf(g_last_connect, sizeof g_last_connect,
             "server=%s vmxSpec=%s thumbprint=%s credType=%d user=%s secretLength=%zu port=%u nfcHostPort=%u "
             "snapshot=%s modes=%s readOnly=%d allocated=%d"
#ifndef VIXDOUBLE_V65
             " specType=%d"
#endif
             , p->serverName ? p->serverName : "(null)", p->vmxSpec ? p->vmxSpec : "(null)",
             p->thumbPrint ? p->thumbPrint : "(null)", p->credType, user ? user : "(null)",
             secret ? strlen(secret) : 0, p->port, p->nfcHostPort, snapshotRef ? snapshotRef : "(null)", c->modes,
             c->read_only, sealed
#ifndef VIXDOUBLE_V65
             , p->specType
#endif
    );
    LOG("ConnectEx: server %s user %s vm %s\n", p->serverName ? p->serverName : "(local)", user ? user : "-",
        p->vmxSpec ? p->vmxSpec : "-");
  }
  if (c->remote && *g_tmpdir) {
    pthread_mutex_lock(&g_lock);
    unsigned long seq = ++g_sessions;
    pthread_mutex_unlock(&g_lock);
    mkdir(g_tmpdir, 0700);
    snprintf(c->session, sizeof c->session, "%s/vixdouble-%ld-%lu.session", g_tmpdir, (long)getpid(), seq);
    FILE *f = fopen(c->session, "w");
    if (f) { fprintf(f, "%s\n", p->serverName); fclose(f); } else c->session[0] = 0;
  }
  pthread_mutex_lock(&g_lock);
  g_connections++;
  pthread_mutex_unlock(&g_lock);
  *out = c;
  return VIX_OK;
}

EXPORT VixError VixDiskLib_Disconnect(void *conn) {
  Conn *c = conn;
  note_null(conn);
  if (!c || c->magic != CONN_MAGIC) return VIX_E_INVALID_ARG;
  if (*c->session) unlink(c->session);
  c->magic = 0;
  free(c);
  pthread_mutex_lock(&g_lock);
  g_connections--;
  pthread_mutex_unlock(&g_lock);
  return VIX_OK;
}

/* The transport Open picks: the first requested mode this "proxy" offers. */
static const char *pick_transport(const Conn *c) {
  char modes[128], offered[128];
  snprintf(modes, sizeof modes, ":%s:", getenv("VIXDOUBLE_TRANSPORTS") ? getenv("VIXDOUBLE_TRANSPORTS") : "nbd:nbdssl");
  snprintf(offered, sizeof offered, "%s", c->modes);
  if (!c->remote) return "file";
  static const char *known[] = {"san", "hotadd", "nbdssl", "nbd"};
  for (char *save = NULL, *m = strtok_r(offered, ":", &save); m; m = strtok_r(NULL, ":", &save)) {
    char needle[40];
    snprintf(needle, sizeof needle, ":%s:", m);
    for (unsigned i = 0; i < sizeof known / sizeof *known; i++)
      if (!strcmp(m, known[i]) && strstr(modes, needle)) return known[i];
  }
  return NULL;
}

EXPORT VixError VixDiskLib_Open(void *conn, const char *path, uint32_t flags, void **out) {
  Conn *c = conn;
  char full[PATH_MAX];
  const char *root = getenv("VIXDOUBLE_DISK_ROOT"), *expect = getenv("VIXDOUBLE_THUMBPRINT");
  long fault = env_long("VIXDOUBLE_FAIL_OPEN", 0);
  if (!out) return VIX_E_INVALID_ARG;
  *out = NULL;
  if (!g_init) return VIX_E_DISK_NOINIT;
  note_null(conn);
  if (!c || c->magic != CONN_MAGIC || !path) return VIX_E_INVALID_ARG;
  if (fault) return (VixError)fault;
  if (null_handle("Open")) return VIX_OK;
  if (c->remote && expect && strcasecmp(expect, c->thumbprint)) return VIX_E_FAIL; /* what VDDK says */
  if (!(flags & FLAG_READ_ONLY) && c->read_only) return VIX_E_FILE_READ_ONLY;
  const char *transport = pick_transport(c);
  if (!transport) return VIX_E_NOT_SUPPORTED;
  if (path[0] == '[') {
    const char *close_bracket = strchr(path, ']');
    if (!close_bracket || !root) return VIX_E_FILE_NOT_FOUND;
    const char *rest = close_bracket + 1;
    while (*rest == ' ') rest++;
    if (strstr(rest, "..")) return VIX_E_INVALID_ARG;
    if (snprintf(full, sizeof full, "%s/%.*s/%s", root, (int)(close_bracket - path - 1), path + 1, rest) >=
        (int)sizeof full)
      return VIX_E_INVALID_ARG;
  } else if (path[0] == '/') {
    snprintf(full, sizeof full, "%s", path);
  } else {
    return VIX_E_INVALID_ARG; /* local paths must be absolute */
  }
  Disk *d = calloc(1, sizeof *d);
  if (!d) return VIX_E_OUT_OF_MEMORY;
  d->magic = DISK_MAGIC;
  d->conn = c;
  d->writable = !(flags & FLAG_READ_ONLY);
  d->transport = transport;
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->cond, NULL);
  VixError rc = open_link(d, full, flags & FLAG_SINGLE_LINK);
  pthread_mutex_lock(&g_lock);
  g_disks++;
  pthread_mutex_unlock(&g_lock);
  if (rc) { free_disk(d); return rc; }
  LOG("Open: %s (%d link%s) over %s, %s\n", path, d->nlinks, d->nlinks == 1 ? "" : "s", transport,
      d->writable ? "read-write" : "read-only");
  *out = d;
  return VIX_OK;
}

EXPORT VixError VixDiskLib_Close(void *h) {
  Disk *d = disk_of(h);
  if (!d) return VIX_E_INVALID_ARG;
  if (d->closed) return VIX_E_INVALID_ARG;
  if (d->attached_to) { d->closed = 1; return VIX_OK; } /* the child owns its links (6.7.3+ behaviour) */
  Disk *parent = d->attached_parent;
  free_disk(d);
  if (parent && parent->closed) free_disk(parent);
  else if (parent) parent->attached_to = NULL; /* an empty handle now; its own Close frees it */
  return VIX_OK;
}

EXPORT VixError VixDiskLib_GetInfo(void *h, VixDiskLibInfo **out) {
  Disk *d = io_disk_of(h);
  if (!d || !out) return VIX_E_INVALID_ARG;
  /* pre-7.0 callers must not read past 56 bytes: fill what follows with a pattern that shows if they do */
  VixDiskLibInfo *info = malloc(sizeof *info + 8);
  if (!info) return VIX_E_OUT_OF_MEMORY;
  memset(info, 0, sizeof *info);
  memset((char *)info + sizeof *info, 0xAB, 8);
  info->biosGeo = info->physGeo = (VixDiskLibGeometry){d->cyl, d->heads, d->secs};
  info->capacity = d->capacity;
  info->adapterType = !strcmp(d->adapter, "ide") ? 1 : !strcmp(d->adapter, "buslogic") ? 2
                      : !strcmp(d->adapter, "lsilogic") ? 3 : 256;
  info->numLinks = d->nlinks;
  info->parentFileNameHint = *d->parent_hint ? strdup(d->parent_hint) : NULL;
  info->uuid = *d->uuid ? strdup(d->uuid) : NULL;
  live(1);
#if VIXDOUBLE_MAJOR >= 7
  info->logicalSectorSize = 512;
  info->physicalSectorSize = (uint32_t)env_long("VIXDOUBLE_PHYSICAL_SECTOR", 512);
#endif
  *out = info;
  return VIX_OK;
}

EXPORT void VixDiskLib_FreeInfo(VixDiskLibInfo *info) {
  if (!info) return;
  live(-1);
  free(info->parentFileNameHint);
  free(info->uuid);
  free(info);
}

#ifndef VIXDOUBLE_OMIT_TRANSPORT_MODE
EXPORT const char *VixDiskLib_GetTransportMode(void *h) {
  Disk *d = disk_of(h);
  return d ? d->transport : NULL;
}
#endif

#ifndef VIXDOUBLE_OMIT_IO
EXPORT VixError VixDiskLib_Read(void *h, VixDiskLibSectorType start, VixDiskLibSectorType n, uint8_t *buf) {
  Disk *d = io_disk_of(h);
  if (!d || !buf) return VIX_E_INVALID_ARG;
  return do_read(d, start, n, buf);
}

EXPORT VixError VixDiskLib_Write(void *h, VixDiskLibSectorType start, VixDiskLibSectorType n, const uint8_t *buf) {
  Disk *d = io_disk_of(h);
  if (!d || !buf) return VIX_E_INVALID_ARG;
  return do_write(d, start, n, buf);
}
#endif

#ifndef VIXDOUBLE_OMIT_ASYNC
EXPORT VixError VixDiskLib_ReadAsync(void *h, VixDiskLibSectorType start, VixDiskLibSectorType n, uint8_t *buf,
                                     VixDiskLibCompletionCB cb, void *data) {
  return submit(h, 0, start, n, buf, cb, data);
}

EXPORT VixError VixDiskLib_WriteAsync(void *h, VixDiskLibSectorType start, VixDiskLibSectorType n,
                                      const uint8_t *buf, VixDiskLibCompletionCB cb, void *data) {
  return submit(h, 1, start, n, (uint8_t *)buf, cb, data);
}
#endif

#ifndef VIXDOUBLE_OMIT_WAIT
EXPORT VixError VixDiskLib_Wait(void *h) {
  Disk *d = disk_of(h);
  if (!d) return VIX_E_INVALID_ARG;
  drain(d);
  return VIX_OK;
}
#endif

#ifndef VIXDOUBLE_OMIT_FLUSH
EXPORT VixError VixDiskLib_Flush(void *h) {
  Disk *d = disk_of(h);
  if (!d) return VIX_E_INVALID_ARG;
  drain(d);
  if (d->writable && fsync(d->links[0].fd) < 0) return VIX_E_FILE_ERROR;
  return VIX_OK;
}
#endif

#ifndef VIXDOUBLE_OMIT_QUERY
EXPORT VixError VixDiskLib_QueryAllocatedBlocks(void *h, VixDiskLibSectorType start, VixDiskLibSectorType n,
                                                VixDiskLibSectorType chunk, VixDiskLibBlockList **out) {
  Disk *d = disk_of(h);
  if (!d || !out) return VIX_E_INVALID_ARG;
  *out = NULL;
  if (chunk < MIN_CHUNK || chunk > MAX_CHUNK) return VIX_E_INVALID_ARG;
  uint64_t chunks = (n + chunk - 1) / chunk;
  if (chunks > MAX_CHUNKS || start + n > d->capacity || start + n < start) {
    WARN("QueryAllocatedBlocks: Invalid sector parameter (must in disk capacity range)\n");
    return VIX_E_INVALID_ARG;
  }
  VixDiskLibBlockList *list = malloc(offsetof(VixDiskLibBlockList, blocks) + sizeof(VixDiskLibBlock) * (chunks + 1));
  if (!list) return VIX_E_OUT_OF_MEMORY;
  list->numBlocks = 0;
  for (uint64_t s = start; s < start + n; s += chunk) {
    uint64_t len = start + n - s < chunk ? start + n - s : chunk;
    if (!range_allocated(d, s, len)) continue;
    VixDiskLibBlock *last = list->numBlocks ? &list->blocks[list->numBlocks - 1] : NULL;
    if (last && last->offset + last->length == s) last->length += len;
    else list->blocks[list->numBlocks++] = (VixDiskLibBlock){s, len};
  }
  live(1);
  *out = list;
  return VIX_OK;
}

EXPORT VixError VixDiskLib_FreeBlockList(VixDiskLibBlockList *list) {
  if (list) live(-1);
  free(list);
  return VIX_OK;
}
#endif

#ifndef VIXDOUBLE_OMIT_ATTACH
EXPORT VixError VixDiskLib_Attach(void *parent, void *child) {
  Disk *p = disk_of(parent), *c = disk_of(child);
  char want[PATH_MAX], have[PATH_MAX];
  if (!p || !c || p == c) return VIX_E_INVALID_ARG;
  if (c->nlinks != 1 || !c->links[0].sparse || !*c->parent_hint || c->nlinks + p->nlinks > MAX_LINKS)
    return VIX_E_INVALID_ARG;
  /* the child's parentFileNameHint must name the parent's top link (compare the extents' real paths) */
  snprintf(want, sizeof want, "%s", c->links[0].path);
  char *slash = strrchr(want, '/');
  if (slash) slash[1] = 0;
  char hint[PATH_MAX * 2];
  snprintf(hint, sizeof hint, "%s%s", c->parent_hint[0] == '/' ? "" : want, c->parent_hint);
  Disk probe;
  memset(&probe, 0, sizeof probe);
  if (open_link(&probe, hint, 1) != VIX_OK || !realpath(probe.links[0].path, want) ||
      !realpath(p->links[0].path, have) || strcmp(want, have)) {
    for (int i = 0; i < probe.nlinks; i++) close(probe.links[i].fd);
    return VIX_E_INVALID_ARG;
  }
  for (int i = 0; i < probe.nlinks; i++) close(probe.links[i].fd);
  for (int i = 0; i < p->nlinks; i++) c->links[c->nlinks++] = p->links[i];
  p->nlinks = 0;
  p->attached_to = c;
  c->attached_parent = p;
  return VIX_OK;
}
#endif

#ifndef VIXDOUBLE_OMIT_ACCESS
static VixError access_call(const VixDiskLibConnectParams *p, const char *identity, int delta, const char *what) {
  long fault = env_long("VIXDOUBLE_FAIL_PREPARE", 0);
  if (!g_init) return VIX_E_DISK_NOINIT;
  if (!p || !p->vmxSpec || !identity || strlen(identity) > 50) return VIX_E_INVALID_ARG;
  if (delta > 0 && fault) return (VixError)fault;
  pthread_mutex_lock(&g_lock);
  g_access += delta;
  if (g_access < 0) g_access = 0;
  pthread_mutex_unlock(&g_lock);
  LOG("%s: %s for %s\n", what, p->vmxSpec, identity);
  return VIX_OK;
}

EXPORT VixError VixDiskLib_PrepareForAccess(const VixDiskLibConnectParams *p, const char *identity) {
  return access_call(p, identity, 1, "PrepareForAccess");
}

EXPORT VixError VixDiskLib_EndAccess(const VixDiskLibConnectParams *p, const char *identity) {
  return access_call(p, identity, -1, "EndAccess");
}
#endif

#ifndef VIXDOUBLE_OMIT_CLEANUP
EXPORT VixError VixDiskLib_Cleanup(const VixDiskLibConnectParams *p, uint32_t *cleaned, uint32_t *remaining) {
  uint32_t done = 0;
  long left = env_long("VIXDOUBLE_CLEANUP_REMAINING", 0);
  DIR *dir;
  if (!g_init) return VIX_E_DISK_NOINIT;
  if (p && p->serverName && *g_tmpdir && (dir = opendir(g_tmpdir))) {
    struct dirent *e;
    while ((e = readdir(dir))) {
      long pid;
      unsigned long seq;
      char path[PATH_MAX * 2];
      if (sscanf(e->d_name, "vixdouble-%ld-%lu.session", &pid, &seq) != 2) continue;
      if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* a live process's session */
      snprintf(path, sizeof path, "%s/%s", g_tmpdir, e->d_name);
      if (unlink(path) == 0) done++;
    }
    closedir(dir);
  }
  if (cleaned) *cleaned = done;
  if (remaining) *remaining = (uint32_t)(left > 0 ? left : 0);
  return left > 0 ? VIX_E_FAIL : VIX_OK;
}
#endif

/* ---- test hooks (not part of VixDiskLib) ------------------------------------------------------------ */

EXPORT int VixDouble_Major(void) { return VIXDOUBLE_MAJOR; }

EXPORT void VixDouble_State(char *buf, size_t len) {
  pthread_mutex_lock(&g_lock);
  snprintf(buf, len,
           "initialised=%d connections=%d disks=%d access=%d reads=%lu writes=%lu live=%ld null_args=%lu %s",
           g_init, g_connections, g_disks, g_access, g_reads, g_writes, g_live,
           __atomic_load_n(&g_null_args, __ATOMIC_RELAXED), g_last_connect);
  pthread_mutex_unlock(&g_lock);
}

EXPORT void VixDouble_Panic(const char *message) { emit(g_panic, "PANIC: %s\n", message); }
