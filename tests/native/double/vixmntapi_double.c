/*
 * vixmntapi_double.c - a test double of VMware's libvixMntapi (Linux flavour), written from scratch.
 *
 * Real symbol names and C prototypes of the public VixMntApi 1.0 API (see the reference notes, section 9).
 * A disk set opened from one disk has $VIXMNTDOUBLE_VOLUMES volumes (default 1; 0 = a disk without any
 * volume, so GetOsInfo reports no OS). MountVolume makes a real folder <tmpDirectory>/vixmnt-<pid>-<n>/vol<i>
 * holding a file "mounted-by-vixmntapi-double"; DismountVolume removes it. Closing a set with a mounted volume
 * fails with VIX_E_MNTAPI_OPEN_HANDLES. Build: gcc -shared -fPIC -o libvixMntapi.so.N vixmntapi_double.c
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_VOLUMES 8
#define SET_MAGIC 0x53455421U
#define VOL_MAGIC 0x564f4c21U

typedef uint64_t VixError;
typedef char Bool;
typedef void LogFunc(const char *fmt, va_list args);

enum {
  VIX_OK = 0, VIX_E_FAIL = 1, VIX_E_INVALID_ARG = 3, VIX_E_MNTAPI_OPEN_HANDLES = 24015,
  VIX_E_MNTAPI_VOLUME_NOT_MOUNTED = 24304, VIX_E_MNTAPI_VOLUME_ALREADY_MOUNTED = 24305,
};

typedef struct { uint32_t openFlags; char *mountPath; } VixDiskSetInfo;
typedef struct {
  int type;
  Bool isMounted;
  char *symbolicLink;
  size_t numGuestMountPoints;
  char *inGuestMountPoints[1];
} VixVolumeInfo;
typedef struct {
  int family;
  uint32_t osMajorVersion, osMinorVersion;
  Bool osIs64Bit;
  char *vendor, *edition, *osFolder;
} VixOsInfo;

_Static_assert(offsetof(VixVolumeInfo, inGuestMountPoints) == 24, "LP64 VixVolumeInfo");
_Static_assert(sizeof(VixOsInfo) == 40, "LP64 VixOsInfo");

struct Set;
typedef struct { uint32_t magic; struct Set *set; int index, mounted; char link[PATH_MAX]; } Volume;
typedef struct Set { uint32_t magic; uint32_t flags; int nvol; Volume vols[MAX_VOLUMES]; char path[PATH_MAX]; } Set;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_init;
static unsigned long g_sets;
static LogFunc *g_log;
static char g_tmpdir[PATH_MAX - 64] = "/tmp";

static void say(const char *fmt, ...) {
  va_list ap;
  if (!g_log) return;
  va_start(ap, fmt);
  g_log(fmt, ap);
  va_end(ap);
}

static char *trim(char *s) {
  size_t n;
  while (*s == ' ' || *s == '\t' || *s == '"') s++;
  n = strlen(s);
  while (n && strchr(" \t\r\n\"", s[n - 1])) s[--n] = 0;
  return s;
}

EXPORT VixError VixMntapi_Init(uint32_t major, uint32_t minor, LogFunc *log, LogFunc *warn, LogFunc *panic,
                               const char *libDir, const char *configFile) {
  (void)warn, (void)panic, (void)libDir;
  if (major != 1) return VIX_E_INVALID_ARG;
  pthread_mutex_lock(&g_lock);
  if (g_init) { pthread_mutex_unlock(&g_lock); return VIX_E_FAIL; }
  g_init = 1, g_log = log;
  pthread_mutex_unlock(&g_lock);
  FILE *f = configFile ? fopen(configFile, "r") : NULL;
  char line[4096];
  while (f && fgets(line, sizeof line, f)) {
    char *eq = strchr(line, '=');
    if (line[0] == '#' || !eq) continue;
    *eq = 0;
    if (!strcmp(trim(line), "tmpDirectory")) snprintf(g_tmpdir, sizeof g_tmpdir, "%s", trim(eq + 1));
  }
  if (f) fclose(f);
  say("VixMntapi double %u.%u initialised; tmpDirectory=%s\n", major, minor, g_tmpdir);
  return VIX_OK;
}

EXPORT void VixMntapi_Exit(void) {
  say("VixMntapi double exiting\n");
  pthread_mutex_lock(&g_lock);
  g_init = 0, g_log = NULL;
  pthread_mutex_unlock(&g_lock);
}

EXPORT VixError VixMntapi_OpenDisks(void *connection, const char *names[], size_t count, uint32_t flags,
                                    void **out) {
  const char *env = getenv("VIXMNTDOUBLE_VOLUMES");
  int nvol = env ? atoi(env) : 1;
  if (!out) return VIX_E_INVALID_ARG;
  *out = NULL;
  if (!g_init) return VIX_E_FAIL;
  if (!connection || !names || count != 1 || !names[0]) return VIX_E_INVALID_ARG; /* Linux: exactly one disk */
  if (nvol < 0 || nvol > MAX_VOLUMES) return VIX_E_INVALID_ARG;
  Set *s = calloc(1, sizeof *s);
  if (!s) return VIX_E_FAIL;
  pthread_mutex_lock(&g_lock);
  unsigned long seq = ++g_sets;
  pthread_mutex_unlock(&g_lock);
  s->magic = SET_MAGIC, s->flags = flags, s->nvol = nvol;
  snprintf(s->path, sizeof s->path, "%s/vixmnt-%ld-%lu", g_tmpdir, (long)getpid(), seq);
  for (int i = 0; i < nvol; i++) s->vols[i] = (Volume){VOL_MAGIC, s, i, 0, ""};
  say("OpenDisks: %s, %d volume(s)\n", names[0], nvol);
  *out = s;
  return VIX_OK;
}

static Set *set_of(void *h) { Set *s = h; return s && s->magic == SET_MAGIC ? s : NULL; }
static Volume *vol_of(void *h) { Volume *v = h; return v && v->magic == VOL_MAGIC ? v : NULL; }

EXPORT VixError VixMntapi_GetDiskSetInfo(void *set, VixDiskSetInfo **out) {
  Set *s = set_of(set);
  if (!s || !out) return VIX_E_INVALID_ARG;
  VixDiskSetInfo *info = calloc(1, sizeof *info);
  if (!info) return VIX_E_FAIL;
  info->openFlags = s->flags;
  info->mountPath = strdup(s->path);
  *out = info;
  return VIX_OK;
}

EXPORT void VixMntapi_FreeDiskSetInfo(VixDiskSetInfo *info) {
  if (info) free(info->mountPath);
  free(info);
}

EXPORT VixError VixMntapi_GetVolumeHandles(void *set, size_t *count, void ***out) {
  Set *s = set_of(set);
  if (!s || !count || !out) return VIX_E_INVALID_ARG;
  void **array = calloc((size_t)s->nvol + 1, sizeof *array);
  if (!array) return VIX_E_FAIL;
  for (int i = 0; i < s->nvol; i++) array[i] = &s->vols[i];
  *count = (size_t)s->nvol;
  *out = array;
  return VIX_OK;
}

EXPORT void VixMntapi_FreeVolumeHandles(void **array) { free(array); }

EXPORT VixError VixMntapi_GetVolumeInfo(void *volume, VixVolumeInfo **out) {
  Volume *v = vol_of(volume);
  if (!v || !out) return VIX_E_INVALID_ARG;
  VixVolumeInfo *info = calloc(1, sizeof *info);
  if (!info) return VIX_E_FAIL;
  info->type = v->index == 0 ? 1 : 4; /* a basic partition, then LVM volumes */
  info->isMounted = (Bool)v->mounted;
  info->symbolicLink = v->mounted ? strdup(v->link) : NULL;
  info->numGuestMountPoints = 1;
  info->inGuestMountPoints[0] = strdup(v->index == 0 ? "/" : "/data");
  *out = info;
  return VIX_OK;
}

EXPORT void VixMntapi_FreeVolumeInfo(VixVolumeInfo *info) {
  if (!info) return;
  free(info->symbolicLink);
  for (size_t i = 0; i < info->numGuestMountPoints; i++) free(info->inGuestMountPoints[i]);
  free(info);
}

EXPORT VixError VixMntapi_MountVolume(void *volume, Bool readOnly) {
  Volume *v = vol_of(volume);
  char marker[PATH_MAX + 64];
  if (!v) return VIX_E_INVALID_ARG;
  if (v->mounted) return VIX_E_MNTAPI_VOLUME_ALREADY_MOUNTED;
  mkdir(g_tmpdir, 0700);
  mkdir(v->set->path, 0700);
  if (snprintf(v->link, sizeof v->link, "%s/vol%d", v->set->path, v->index) >= (int)sizeof v->link)
    return VIX_E_INVALID_ARG;
  if (mkdir(v->link, 0700) && access(v->link, F_OK)) return VIX_E_FAIL;
  snprintf(marker, sizeof marker, "%s/mounted-by-vixmntapi-double", v->link);
  FILE *f = fopen(marker, "w");
  if (f) { fprintf(f, "%s\n", readOnly ? "read-only" : "read-write"); fclose(f); }
  v->mounted = 1;
  say("MountVolume: volume %d at %s\n", v->index, v->link);
  return VIX_OK;
}

EXPORT VixError VixMntapi_DismountVolume(void *volume, Bool force) {
  Volume *v = vol_of(volume);
  char marker[PATH_MAX + 64];
  (void)force;
  if (!v) return VIX_E_INVALID_ARG;
  if (!v->mounted) return VIX_E_MNTAPI_VOLUME_NOT_MOUNTED;
  snprintf(marker, sizeof marker, "%s/mounted-by-vixmntapi-double", v->link);
  unlink(marker);
  rmdir(v->link);
  rmdir(v->set->path); /* fails while another volume is mounted, which is fine */
  v->mounted = 0;
  return VIX_OK;
}

EXPORT VixError VixMntapi_GetOsInfo(void *set, VixOsInfo **out) {
  Set *s = set_of(set);
  if (!s || !out) return VIX_E_INVALID_ARG;
  VixOsInfo *info = calloc(1, sizeof *info);
  if (!info) return VIX_E_FAIL;
  if (s->nvol) {
    *info = (VixOsInfo){255, 8, 3, 1, strdup("Red Hat"), strdup("Enterprise Linux"), strdup("/")};
  }
  *out = info;
  return VIX_OK;
}

EXPORT void VixMntapi_FreeOsInfo(VixOsInfo *info) {
  if (!info) return;
  free(info->vendor);
  free(info->edition);
  free(info->osFolder);
  free(info);
}

EXPORT VixError VixMntapi_CloseDiskSet(void *set) {
  Set *s = set_of(set);
  if (!s) return VIX_E_INVALID_ARG;
  for (int i = 0; i < s->nvol; i++)
    if (s->vols[i].mounted) return VIX_E_MNTAPI_OPEN_HANDLES;
  s->magic = 0;
  for (int i = 0; i < s->nvol; i++) s->vols[i].magic = 0;
  free(s);
  return VIX_OK;
}
