/*
 * bad_client.c - a hostile C product of the simulated libvixDiskLib.so.7 (tests/shim/test_bad_input.py).
 *
 * `bad_client CASE` runs one hostile case and prints one `name=value` line per step on stdout (line-buffered,
 * so a hang or a crash shows how far it got); VixErrors are printed as numbers. What to connect to comes from
 * the environment: BC_SERVER, BC_PORT, BC_THUMBPRINT, BC_USER, BC_PASSWORD, BC_VM (vmxSpec "moref=vm-N"),
 * BC_SNAPSHOT (moref) and BC_DISK (the disk path as the snapshot records it).
 *
 * Built with -DBAD_CLIENT_FAKE_REAL -shared instead, this file is a tiny stand-in for VMware's library that the
 * tracing library forwards to (case `forward`): it has InitEx, Exit, Init, Connect, Create, GetConnectParams and
 * FreeConnectParams, each with an answer a test can recognise, and lacks every other function.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vddkc_vixdisklib.h"
#include "wire.h"

#ifdef BAD_CLIENT_FAKE_REAL

#define FAKE __attribute__((visibility("default")))
enum { FAKE_INIT_ANSWER = 44, FAKE_CREATE_ANSWER = 12 }; /* ARGUMENT_TOO_BIG, FILE_ALREADY_EXISTS: markers */

FAKE VixError VixDiskLib_InitEx(uint32_t a, uint32_t b, VixDiskLibGenericLogFunc *c, VixDiskLibGenericLogFunc *d,
                                VixDiskLibGenericLogFunc *e, const char *f, const char *g) {
  (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g;
  return VIX_OK;
}
FAKE void VixDiskLib_Exit(void) {}
FAKE VixError VixDiskLib_Init(uint32_t a, uint32_t b, VixDiskLibGenericLogFunc *c, VixDiskLibGenericLogFunc *d,
                              VixDiskLibGenericLogFunc *e, const char *f) {
  (void)a; (void)b; (void)c; (void)d; (void)e; (void)f;
  return FAKE_INIT_ANSWER;
}
FAKE VixError VixDiskLib_Connect(const VixDiskLibConnectParams *p, VixDiskLibConnection *c) {
  (void)p;
  *c = (VixDiskLibConnection)(uintptr_t)0x42;
  return VIX_OK;
}
FAKE VixError VixDiskLib_Create(VixDiskLibConnection c, const char *p, const VixDiskLibCreateParams *cp,
                                VixDiskLibProgressFunc f, void *d) {
  (void)c; (void)p; (void)cp; (void)f; (void)d;
  return FAKE_CREATE_ANSWER;
}
FAKE VixError VixDiskLib_GetConnectParams(VixDiskLibConnection c, VixDiskLibConnectParams **out) {
  (void)c;
  *out = calloc(1, sizeof **out);
  (*out)->serverName = strdup("fake-real-library");
  return VIX_OK;
}
FAKE void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *p) {
  if (p) free(p->serverName);
  free(p);
}

#else /* the client */

#define SECTOR VIXDISKLIB_SECTOR_SIZE
#define FAKE_CONN ((VixDiskLibConnection)(uintptr_t)0x1234)
#define FAKE_DISK ((VixDiskLibHandle)(uintptr_t)0x1234)

static void out(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(const char *name, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  printf("%s=", name);
  vprintf(fmt, args);
  printf("\n");
  va_end(args);
  fflush(stdout);
}

static void err_out(const char *name, VixError err) { out(name, "%llu", (unsigned long long)err); }

static void log_to_stderr(const char *fmt, va_list args) {
  fputs("[vddk] ", stderr);
  vfprintf(stderr, fmt, args);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *env(const char *name) {
  const char *value = getenv(name);
  if (!value) {
    fprintf(stderr, "bad_client: %s is not set\n", name);
    exit(2);
  }
  return value;
}

static VixError init(void) { return VixDiskLib_InitEx(7, 0, log_to_stderr, log_to_stderr, log_to_stderr, NULL, NULL); }

/* Parameters for the test's server; their strings are the environment's (the library must never free them). */
static VixDiskLibConnectParams *params(void) {
  VixDiskLibConnectParams *p = VixDiskLib_AllocateConnectParams();
  if (!p) {
    fprintf(stderr, "bad_client: AllocateConnectParams returned NULL\n");
    exit(2);
  }
  p->vmxSpec = (char *)env("BC_VM");
  p->serverName = (char *)env("BC_SERVER");
  p->thumbPrint = (char *)env("BC_THUMBPRINT");
  p->credType = VIXDISKLIB_CRED_UID;
  p->creds.uid.userName = (char *)env("BC_USER");
  p->creds.uid.password = (char *)env("BC_PASSWORD");
  p->port = (uint32_t)atoi(env("BC_PORT"));
  return p;
}

static VixError connect_to(VixDiskLibConnectParams *p, VixDiskLibConnection *connection) {
  return VixDiskLib_ConnectEx(p, 1, env("BC_SNAPSHOT"), "nbd", connection);
}

static VixError open_disk(VixDiskLibConnection connection, VixDiskLibHandle *disk) {
  return VixDiskLib_Open(connection, env("BC_DISK"), VIXDISKLIB_FLAG_OPEN_READ_ONLY, disk);
}

/* InitEx, ConnectEx and Open, each of which must succeed (the case is about what comes after). */
static void session(VixDiskLibConnectParams **p, VixDiskLibConnection *connection, VixDiskLibHandle *disk) {
  VixError err = init();
  if (err == VIX_OK) err = connect_to(*p = params(), connection);
  if (err == VIX_OK && disk) err = open_disk(*connection, disk);
  if (err != VIX_OK) {
    err_out("setup", err);
    exit(3);
  }
}

static void end(VixDiskLibConnectParams *p, VixDiskLibConnection connection, VixDiskLibHandle disk) {
  if (disk) err_out("close", VixDiskLib_Close(disk));
  if (connection) err_out("disconnect", VixDiskLib_Disconnect(connection));
  VixDiskLib_FreeConnectParams(p);
  VixDiskLib_Exit();
  out("exit", "done");
}

/* Agents of this process, from /proc: their command line names the module and --parent-pid <our pid>. */
static int count_agents(void) {
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  DIR *proc = opendir("/proc");
  int found = 0;
  for (struct dirent *e; proc && (e = readdir(proc));) {
    char path[300], cmdline[8192];
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    size_t n = fread(cmdline, 1, sizeof cmdline - 1, f);
    fclose(f);
    cmdline[n] = '\0';
    int module = 0, parent = 0;
    for (size_t at = 0; at < n; at += strlen(cmdline + at) + 1) {
      if (strcmp(cmdline + at, "conformance.vixdisklib.shim.agent") == 0) module = 1;
      if (strcmp(cmdline + at, "--parent-pid") == 0 && at + 13 < n && strcmp(cmdline + at + 13, pid) == 0) parent = 1;
    }
    found += module && parent;
  }
  if (proc) closedir(proc);
  return found;
}

/* ---- the cases ---- */

/* Calls before InitEx, and after Exit with the handles of the ended session. */
static int case_uninitialised(void) {
  uint8_t buffer[SECTOR];
  VixDiskLibConnectParams *p = params();
  VixDiskLibConnection connection = NULL;
  VixDiskLibHandle disk = NULL;
  err_out("before_connect", connect_to(p, &connection));
  err_out("before_open", VixDiskLib_Open(FAKE_CONN, env("BC_DISK"), VIXDISKLIB_FLAG_OPEN_READ_ONLY, &disk));
  err_out("before_read", VixDiskLib_Read(FAKE_DISK, 0, 1, buffer));
  VixDiskLib_FreeConnectParams(p);
  session(&p, &connection, &disk);
  err_out("during_read", VixDiskLib_Read(disk, 0, 1, buffer));
  VixDiskLib_Exit(); /* with the disk open and the connection made */
  VixDiskLibConnection second = NULL;
  VixDiskLibHandle reopened = NULL;
  err_out("after_connect", connect_to(p, &second));
  err_out("after_open", open_disk(connection, &reopened));
  err_out("after_read", VixDiskLib_Read(disk, 0, 1, buffer));
  err_out("after_close", VixDiskLib_Close(disk));
  err_out("after_disconnect", VixDiskLib_Disconnect(connection));
  out("agents_after_exit", "%d", count_agents());
  VixDiskLib_FreeConnectParams(p);
  return 0;
}

/* NULL out-pointers, paths, buffers and handles. */
static int case_null(void) {
  VixDiskLibConnectParams *p;
  VixDiskLibConnection connection;
  VixDiskLibHandle disk, other = NULL;
  uint8_t buffer[8 * SECTOR];
  session(&p, &connection, &disk);
  err_out("connect_null_out", connect_to(p, NULL));
  err_out("open_null_out", VixDiskLib_Open(connection, env("BC_DISK"), VIXDISKLIB_FLAG_OPEN_READ_ONLY, NULL));
  err_out("open_null_path", VixDiskLib_Open(connection, NULL, VIXDISKLIB_FLAG_OPEN_READ_ONLY, &other));
  err_out("open_null_connection", VixDiskLib_Open(NULL, env("BC_DISK"), VIXDISKLIB_FLAG_OPEN_READ_ONLY, &other));
  out("open_null_left_handle_null", "%d", other == NULL);
  err_out("get_info_null_out", VixDiskLib_GetInfo(disk, NULL));
  err_out("query_null_out", VixDiskLib_QueryAllocatedBlocks(disk, 0, 128, 128, NULL));
  err_out("read_null_buffer", VixDiskLib_Read(disk, 0, 8, NULL));
  err_out("write_null_buffer", VixDiskLib_Write(disk, 0, 8, NULL));
  err_out("read_null_disk", VixDiskLib_Read(NULL, 0, 8, buffer));
  err_out("close_null", VixDiskLib_Close(NULL));
  err_out("disconnect_null", VixDiskLib_Disconnect(NULL));
  out("transport_null", "%s", VixDiskLib_GetTransportMode(NULL));
  VixDiskLib_FreeInfo(NULL);
  VixDiskLib_FreeBlockList(NULL);
  VixDiskLib_FreeErrorText(NULL);
  VixDiskLib_FreeConnectParams(NULL);
  err_out("read_still_works", VixDiskLib_Read(disk, 0, 8, buffer));
  end(p, connection, disk);
  return 0;
}

/* Handles used after Close, after Disconnect, and never valid. */
static int case_stale(void) {
  VixDiskLibConnectParams *p;
  VixDiskLibConnection connection;
  VixDiskLibHandle disk, orphan = NULL, again = NULL;
  VixDiskLibInfo *info = NULL;
  uint8_t buffer[8 * SECTOR];
  session(&p, &connection, &disk);
  err_out("close", VixDiskLib_Close(disk));
  err_out("read_after_close", VixDiskLib_Read(disk, 0, 8, buffer));
  err_out("get_info_after_close", VixDiskLib_GetInfo(disk, &info));
  out("get_info_left_null", "%d", info == NULL);
  err_out("close_twice", VixDiskLib_Close(disk));
  err_out("read_never_valid", VixDiskLib_Read(FAKE_DISK, 0, 8, buffer));
  err_out("open_never_valid_connection", VixDiskLib_Open(FAKE_CONN, env("BC_DISK"), VIXDISKLIB_FLAG_OPEN_READ_ONLY, &again));
  err_out("disconnect_never_valid", VixDiskLib_Disconnect(FAKE_CONN));
  err_out("open_orphan", open_disk(connection, &orphan));
  err_out("disconnect_with_open_disk", VixDiskLib_Disconnect(connection));
  err_out("open_after_disconnect", open_disk(connection, &again));
  err_out("read_orphan", VixDiskLib_Read(orphan, 0, 8, buffer));
  err_out("close_orphan", VixDiskLib_Close(orphan));
  err_out("disconnect_twice", VixDiskLib_Disconnect(connection));
  end(p, NULL, NULL);
  return 0;
}

/* InitEx twice without Exit: an error, and still one agent serving the first session. */
static int case_init_twice(void) {
  VixDiskLibConnectParams *p;
  VixDiskLibConnection connection;
  VixDiskLibHandle disk;
  uint8_t buffer[8 * SECTOR];
  session(&p, &connection, &disk);
  err_out("second_init", init());
  out("agents", "%d", count_agents());
  err_out("read_after_second_init", VixDiskLib_Read(disk, 0, 8, buffer));
  end(p, connection, disk);
  return 0;
}

/* A forked child uses the parent's handle and calls Exit; the parent carries on. */
static int case_fork(void) {
  VixDiskLibConnectParams *p;
  VixDiskLibConnection connection;
  VixDiskLibHandle disk;
  uint8_t buffer[8 * SECTOR], again[8 * SECTOR];
  session(&p, &connection, &disk);
  err_out("parent_read", VixDiskLib_Read(disk, 2048, 8, buffer));
  pid_t child = fork();
  if (child == 0) {
    uint8_t mine[8 * SECTOR];
    err_out("child_read", VixDiskLib_Read(disk, 2048, 8, mine));
    VixDiskLib_Exit();
    out("child_exit", "done");
    exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  out("child_status", "%d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  out("agents_after_child", "%d", count_agents());
  err_out("parent_read_after_child", VixDiskLib_Read(disk, 2048, 8, again));
  out("parent_same_bytes", "%d", memcmp(buffer, again, sizeof buffer) == 0);
  end(p, connection, disk);
  return 0;
}

/* The test kills the agent once this prints ready=1 and reads `go` on stdin. */
static int case_killed_agent(void) {
  VixDiskLibConnectParams *p;
  VixDiskLibConnection connection;
  VixDiskLibHandle disk;
  uint8_t buffer[8 * SECTOR];
  char line[64];
  session(&p, &connection, &disk);
  err_out("read_before", VixDiskLib_Read(disk, 0, 8, buffer));
  out("ready", "1");
  if (!fgets(line, sizeof line, stdin)) return 4;
  double started = now_ms();
  err_out("read_after_kill", VixDiskLib_Read(disk, 0, 8, buffer));
  out("read_after_kill_ms", "%.0f", now_ms() - started);
  err_out("close_after_kill", VixDiskLib_Close(disk));
  err_out("disconnect_after_kill", VixDiskLib_Disconnect(connection));
  VixDiskLib_FreeConnectParams(p);
  started = now_ms();
  VixDiskLib_Exit();
  out("exit_ms", "%.0f", now_ms() - started);
  out("agents_after_exit", "%d", count_agents());
  return 0;
}

static atomic_int callbacks_run;
static atomic_int callbacks_failed;

static void completed(void *data, VixError result) {
  (void)data;
  if (result != VIX_OK) atomic_fetch_add(&callbacks_failed, 1);
  atomic_fetch_add(&callbacks_run, 1);
}

/* ReadAsync with a NULL callback; 16 ReadAsync then Wait against one synchronous Read. */
static int case_async(void) {
  enum { N = 16, EACH = 8, START = 2048 };
  VixDiskLibConnectParams *p;
  VixDiskLibConnection connection;
  VixDiskLibHandle disk;
  static uint8_t async_bytes[N * EACH * SECTOR], sync_bytes[N * EACH * SECTOR];
  session(&p, &connection, &disk);
  err_out("read_async_null_callback", VixDiskLib_ReadAsync(disk, START, EACH, async_bytes, NULL, NULL));
  err_out("read_async_null_buffer", VixDiskLib_ReadAsync(disk, START, EACH, NULL, completed, NULL));
  int submitted = 0;
  for (int i = 0; i < N; i++)
    submitted += VixDiskLib_ReadAsync(disk, START + (VixDiskLibSectorType)i * EACH, EACH,
                                      async_bytes + (size_t)i * EACH * SECTOR, completed, NULL) == VIX_ASYNC;
  out("submitted", "%d", submitted);
  err_out("wait", VixDiskLib_Wait(disk));
  out("callbacks_at_wait", "%d", atomic_load(&callbacks_run));
  out("callbacks_failed", "%d", atomic_load(&callbacks_failed));
  err_out("read", VixDiskLib_Read(disk, START, N * EACH, sync_bytes));
  out("same_bytes", "%d", memcmp(async_bytes, sync_bytes, sizeof sync_bytes) == 0);
  end(p, connection, disk);
  return 0;
}

/* Reads and writes larger than one frame of the wire carries; then the session still works. */
static int case_huge(void) {
  VixDiskLibConnectParams *p;
  VixDiskLibConnection connection;
  VixDiskLibHandle disk;
  VixDiskLibBlockList *blocks = NULL;
  const VixDiskLibSectorType frame = WIRE_MAX_FRAME / SECTOR;
  uint8_t *big = calloc(frame + 1, SECTOR);
  uint8_t small[8 * SECTOR];
  if (!big) return 5;
  session(&p, &connection, &disk);
  err_out("read_over_frame", VixDiskLib_Read(disk, 0, frame + 1, big));
  err_out("read_frame", VixDiskLib_Read(disk, 0, frame, big));
  err_out("read_absurd", VixDiskLib_Read(disk, 0, UINT64_MAX / 2, small));
  err_out("write_frame", VixDiskLib_Write(disk, 0, frame, big));
  err_out("read_after_write_frame", VixDiskLib_Read(disk, 0, 8, small));
  err_out("write_over_frame", VixDiskLib_Write(disk, 0, frame + 1, big));
  /* the most one call moves (one frame less 1 MiB for the header and log lines) reaches the agent */
  err_out("write_largest", VixDiskLib_Write(disk, 0, (WIRE_MAX_FRAME - 1024 * 1024) / SECTOR, big));
  err_out("read_largest", VixDiskLib_Read(disk, 0, (WIRE_MAX_FRAME - 1024 * 1024) / SECTOR, big));
  err_out("read_async_over_frame", VixDiskLib_ReadAsync(disk, 0, frame + 1, big, completed, NULL));
  err_out("write_async_frame", VixDiskLib_WriteAsync(disk, 0, frame, big, completed, NULL));
  err_out("query_absurd", VixDiskLib_QueryAllocatedBlocks(disk, 0, UINT64_MAX / 2, 128, &blocks));
  out("callbacks_run", "%d", atomic_load(&callbacks_run));
  err_out("read_still_works", VixDiskLib_Read(disk, 0, 8, small));
  end(p, connection, disk);
  free(big);
  return 0;
}

/* The rest of the 7.0 API (exports_more.c) as a remote connection of the simulated library answers it. */
static int case_more_api(void) {
  VixDiskLibConnectParams *p = params(), *copy = NULL, stack;
  VixDiskLibConnection connection = NULL, legacy = NULL;
  VixDiskLibHandle disk = NULL;
  VixDiskLibCreateParams create = {.diskType = VIXDISKLIB_DISK_MONOLITHIC_SPARSE, .adapterType = VIXDISKLIB_ADAPTER_SCSI_LSILOGIC, .hwVersion = 7, .capacity = 2048};
  uint8_t buffer[8 * SECTOR];
  char text[256];
  size_t needed = 0;
  uint64_t space = 0;
  const char *path = env("BC_DISK");
  /* before Init */
  err_out("pre_get_connect_params", VixDiskLib_GetConnectParams(FAKE_CONN, &copy));
  err_out("pre_create", VixDiskLib_Create(FAKE_CONN, "[ds] new.vmdk", &create, NULL, NULL));
  err_out("pre_rename", VixDiskLib_Rename("/tmp/a.vmdk", "/tmp/b.vmdk"));
  err_out("pre_connect", VixDiskLib_Connect(p, &legacy));
  /* the deprecated pair (Connect has no snapshot: the disk is opened through a ConnectEx connection) */
  err_out("init", VixDiskLib_Init(7, 0, log_to_stderr, log_to_stderr, log_to_stderr, NULL));
  err_out("connect", VixDiskLib_Connect(p, &legacy));
  err_out("connect_ex", connect_to(p, &connection));
  err_out("open", open_disk(connection, &disk));
  err_out("read", VixDiskLib_Read(disk, 0, 8, buffer));
  /* NULL arguments */
  err_out("null_connect_out", VixDiskLib_Connect(p, NULL));
  err_out("null_get_connect_params_out", VixDiskLib_GetConnectParams(connection, NULL));
  err_out("null_get_connect_params_connection", VixDiskLib_GetConnectParams(NULL, &copy));
  err_out("null_create_connection", VixDiskLib_Create(NULL, "[ds] new.vmdk", &create, NULL, NULL));
  err_out("null_create_path", VixDiskLib_Create(connection, NULL, &create, NULL, NULL));
  err_out("null_create_params", VixDiskLib_Create(connection, "[ds] new.vmdk", NULL, NULL, NULL));
  err_out("null_create_child_path", VixDiskLib_CreateChild(disk, NULL, VIXDISKLIB_DISK_MONOLITHIC_SPARSE, NULL, NULL));
  err_out("null_create_child_disk", VixDiskLib_CreateChild(NULL, "/tmp/c.vmdk", VIXDISKLIB_DISK_MONOLITHIC_SPARSE, NULL, NULL));
  err_out("null_read_metadata_key", VixDiskLib_ReadMetadata(disk, NULL, text, sizeof text, &needed));
  err_out("null_read_metadata_disk", VixDiskLib_ReadMetadata(NULL, "uuid", text, sizeof text, &needed));
  err_out("null_write_metadata_value", VixDiskLib_WriteMetadata(disk, "uuid", NULL));
  err_out("null_write_metadata_key", VixDiskLib_WriteMetadata(disk, NULL, "x"));
  err_out("null_get_metadata_keys_disk", VixDiskLib_GetMetadataKeys(NULL, text, sizeof text, &needed));
  err_out("null_unlink_connection", VixDiskLib_Unlink(NULL, path));
  err_out("null_unlink_path", VixDiskLib_Unlink(connection, NULL));
  err_out("null_grow_path", VixDiskLib_Grow(connection, NULL, 4096, 0, NULL, NULL));
  err_out("null_shrink", VixDiskLib_Shrink(NULL, NULL, NULL));
  err_out("null_defragment", VixDiskLib_Defragment(NULL, NULL, NULL));
  err_out("null_rename_src", VixDiskLib_Rename(NULL, "/tmp/b.vmdk"));
  err_out("null_rename_dst", VixDiskLib_Rename("/tmp/a.vmdk", NULL));
  err_out("null_clone_src", VixDiskLib_Clone(connection, "[ds] c.vmdk", connection, NULL, NULL, NULL, NULL, 0));
  err_out("null_clone_dst_connection", VixDiskLib_Clone(NULL, "[ds] c.vmdk", connection, path, NULL, NULL, NULL, 0));
  err_out("null_is_attach_possible", VixDiskLib_IsAttachPossible(disk, NULL));
  err_out("null_space_needed_out", VixDiskLib_SpaceNeededForClone(disk, VIXDISKLIB_DISK_VMFS_THIN, NULL));
  err_out("null_check_repair_file", VixDiskLib_CheckRepair(connection, NULL, 0));
  /* GetConnectParams: a copy of what Connect was given, freed (strings too) by FreeConnectParams */
  err_out("get_connect_params", VixDiskLib_GetConnectParams(legacy, &copy));
  int same = copy && copy->serverName && strcmp(copy->serverName, p->serverName) == 0 && copy->vmxSpec &&
             strcmp(copy->vmxSpec, p->vmxSpec) == 0 && copy->thumbPrint &&
             strcmp(copy->thumbPrint, p->thumbPrint) == 0 && copy->credType == VIXDISKLIB_CRED_UID &&
             copy->creds.uid.userName && strcmp(copy->creds.uid.userName, p->creds.uid.userName) == 0 &&
             copy->creds.uid.password && strcmp(copy->creds.uid.password, p->creds.uid.password) == 0 &&
             copy->port == p->port;
  int duplicated = copy && copy != p && copy->serverName != p->serverName && copy->vmxSpec != p->vmxSpec;
  out("copy_same_values", "%d", same);
  out("copy_own_strings", "%d", duplicated);
  VixDiskLib_FreeConnectParams(copy);
  copy = NULL;
  memset(&stack, 0, sizeof stack);
  VixDiskLib_FreeConnectParams(&stack); /* a struct the library never handed out: left alone, no crash */
  out("free_foreign", "done");
  err_out("get_connect_params_never_valid", VixDiskLib_GetConnectParams(FAKE_CONN, &copy));
  out("get_connect_params_failed_left_null", "%d", copy == NULL);
  /* what a remote connection answers */
  err_out("create", VixDiskLib_Create(connection, "[ds] new.vmdk", &create, NULL, NULL));
  err_out("create_child", VixDiskLib_CreateChild(disk, "/tmp/c.vmdk", VIXDISKLIB_DISK_MONOLITHIC_SPARSE, NULL, NULL));
  err_out("read_metadata", VixDiskLib_ReadMetadata(disk, "uuid", text, sizeof text, &needed));
  err_out("read_metadata_size", VixDiskLib_ReadMetadata(disk, "uuid", NULL, 0, &needed));
  err_out("write_metadata", VixDiskLib_WriteMetadata(disk, "uuid", "x"));
  err_out("get_metadata_keys", VixDiskLib_GetMetadataKeys(disk, text, sizeof text, &needed));
  err_out("unlink", VixDiskLib_Unlink(connection, path));
  err_out("grow", VixDiskLib_Grow(connection, path, 1 << 20, 0, NULL, NULL));
  err_out("shrink", VixDiskLib_Shrink(disk, NULL, NULL));
  err_out("defragment", VixDiskLib_Defragment(disk, NULL, NULL));
  err_out("rename", VixDiskLib_Rename("/tmp/a.vmdk", "/tmp/b.vmdk"));
  err_out("clone", VixDiskLib_Clone(connection, "[ds] c.vmdk", connection, path, NULL, NULL, NULL, 0));
  err_out("is_attach_possible", VixDiskLib_IsAttachPossible(disk, disk));
  err_out("space_needed", VixDiskLib_SpaceNeededForClone(disk, VIXDISKLIB_DISK_VMFS_THIN, &space));
  err_out("check_repair", VixDiskLib_CheckRepair(connection, path, 0));
  /* handles that are not open */
  err_out("shrink_never_valid", VixDiskLib_Shrink(FAKE_DISK, NULL, NULL));
  err_out("unlink_never_valid", VixDiskLib_Unlink(FAKE_CONN, path));
  err_out("read_still_works", VixDiskLib_Read(disk, 0, 8, buffer));
  err_out("close", VixDiskLib_Close(disk));
  err_out("read_metadata_closed", VixDiskLib_ReadMetadata(disk, "uuid", text, sizeof text, &needed));
  err_out("disconnect", VixDiskLib_Disconnect(connection));
  err_out("get_connect_params_disconnected", VixDiskLib_GetConnectParams(connection, &copy));
  err_out("disconnect_legacy", VixDiskLib_Disconnect(legacy));
  VixDiskLib_FreeConnectParams(p); /* its strings are the environment's: must not be freed */
  VixDiskLib_Exit();
  out("exit", "done");
  err_out("post_create_child", VixDiskLib_CreateChild(disk, "/tmp/c.vmdk", VIXDISKLIB_DISK_MONOLITHIC_SPARSE, NULL, NULL));
  return 0;
}

/* The tracing library over the fake real library (VDDKC_SHIM_FORWARD names its folder). */
static int case_forward(void) {
  VixDiskLibConnectParams *copy = NULL;
  VixDiskLibConnection connection = NULL;
  VixDiskLibCreateParams create = {.diskType = VIXDISKLIB_DISK_MONOLITHIC_SPARSE, .adapterType = VIXDISKLIB_ADAPTER_SCSI_LSILOGIC, .hwVersion = 7, .capacity = 2048};
  err_out("init", VixDiskLib_Init(7, 0, log_to_stderr, log_to_stderr, log_to_stderr, NULL));
  err_out("init_ex", init());
  err_out("connect", VixDiskLib_Connect(NULL, &connection));
  out("connection", "%#llx", (unsigned long long)(uintptr_t)connection);
  err_out("create", VixDiskLib_Create(connection, "/tmp/new.vmdk", &create, NULL, NULL));
  err_out("get_connect_params", VixDiskLib_GetConnectParams(connection, &copy));
  out("copy_server", "%s", copy && copy->serverName ? copy->serverName : "(none)");
  VixDiskLib_FreeConnectParams(copy);
  err_out("grow", VixDiskLib_Grow(connection, "/tmp/new.vmdk", 4096, 0, NULL, NULL));
  err_out("read_metadata", VixDiskLib_ReadMetadata(NULL, NULL, NULL, 0, NULL));
  err_out("shrink", VixDiskLib_Shrink(NULL, NULL, NULL));
  err_out("rename", VixDiskLib_Rename("/tmp/a.vmdk", "/tmp/b.vmdk"));
  VixDiskLib_Exit();
  out("exit", "done");
  return 0;
}

static const struct { const char *name; int (*run)(void); } CASES[] = {
    {"uninitialised", case_uninitialised}, {"null", case_null}, {"stale", case_stale},
    {"init-twice", case_init_twice}, {"fork", case_fork}, {"killed-agent", case_killed_agent},
    {"async", case_async}, {"huge", case_huge}, {"more-api", case_more_api}, {"forward", case_forward},
};

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (size_t i = 0; argc == 2 && i < sizeof CASES / sizeof CASES[0]; i++)
    if (strcmp(argv[1], CASES[i].name) == 0) return CASES[i].run();
  fprintf(stderr, "usage: bad_client CASE (uninitialised, null, stale, init-twice, fork, killed-agent, async, huge, "
                  "more-api, forward)\n");
  return 2;
}

#endif
