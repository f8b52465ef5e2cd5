/*
 * agent_calls.c - the VixDiskLib functions of the simulated backend: each checks what the C API can check
 * itself (NULL out-pointers and buffers), asks the agent, and turns the reply into the C API's results.
 * Connection and disk handles are the agent's ids; an id the agent does not know is its error, not a crash.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

static char transport_modes[256] = "file:san:hotadd:nbdssl:nbd";

/* The most sectors one Read/Write (sync or async) moves: what one frame carries besides its header and log lines
   (sessions.py MAX_DATA). A larger request is VIX_E_INVALID_ARG here; sent, its frame would exceed WIRE_MAX_FRAME
   and the agent would hang up, ending the whole session. */
#define MAX_IO_SECTORS ((WIRE_MAX_FRAME - 1024u * 1024u) / VIXDISKLIB_SECTOR_SIZE)

/* The static strings GetTransportMode may return (the C API hands out strings the caller never frees). */
static const char *intern_mode(const char *mode) {
  static const char *const known[] = {"file", "san", "hotadd", "nbd", "nbdssl"};
  for (size_t i = 0; mode && i < sizeof known / sizeof known[0]; i++)
    if (strcmp(mode, known[i]) == 0) return known[i];
  return "unknown";
}

/* The transport each open disk uses, as Open reported it, and the path Open was given (NULL if out of memory). */
typedef struct Disk { struct Disk *next; uint64_t id; const char *mode; char *path; } Disk;
static pthread_mutex_t disks_lock = PTHREAD_MUTEX_INITIALIZER;
static Disk *disks;

static void remember_disk(uint64_t id, const char *mode, const char *path) {
  Disk *disk = calloc(1, sizeof *disk);
  if (!disk) return;
  disk->id = id;
  disk->mode = intern_mode(mode);
  disk->path = strdup(path);
  pthread_mutex_lock(&disks_lock);
  disk->next = disks;
  disks = disk;
  pthread_mutex_unlock(&disks_lock);
}

static void forget_disk(uint64_t id) {
  pthread_mutex_lock(&disks_lock);
  for (Disk **at = &disks; *at; at = &(*at)->next)
    if ((*at)->id == id) { Disk *gone = *at; *at = gone->next; free(gone->path); free(gone); break; }
  pthread_mutex_unlock(&disks_lock);
}

static uint64_t id_of(const void *handle) { return (uint64_t)(uintptr_t)handle; }

/* The first-read hook (first_read.c) before a Read/ReadAsync of `handle` is sent: the disk's transport and path. */
static void before_read(const void *handle) {
  if (!first_read_pending()) return;
  const char *mode = "unknown";
  char path[PATH_MAX];
  int known = 0;
  pthread_mutex_lock(&disks_lock);
  for (Disk *d = disks; d; d = d->next)
    if (d->id == id_of(handle)) {
      mode = d->mode;
      known = d->path != NULL;
      if (known) snprintf(path, sizeof path, "%s", d->path);
      break;
    }
  pthread_mutex_unlock(&disks_lock);
  first_read(mode, known ? path : NULL);
}

static void start(WireOut *request, int op) {
  wire_start(request);
  wire_u64(request, (uint64_t)op);
}

/* Ask the agent; the reply is freed unless `keep` is given. */
static VixError ask(const char *call, WireOut *request, AgentReply *keep) {
  AgentReply reply;
  VixError err = agent_ready(call);
  if (err == VIX_OK) err = agent_call(call, request, &reply);
  else memset(&reply, 0, sizeof reply);
  wire_free(request);
  if (keep) *keep = reply;
  else agent_done(&reply);
  return err;
}

static void put_params(WireOut *r, const VixDiskLibConnectParams *p) {
  static const VixDiskLibConnectParams none;
  const VixDiskLibConnectParams *q = p ? p : &none;
  const char *user = NULL, *password = NULL, *cookie = NULL, *key = NULL;
  if (q->credType == VIXDISKLIB_CRED_UID) {
    user = q->creds.uid.userName;
    password = q->creds.uid.password;
  } else if (q->credType == VIXDISKLIB_CRED_SESSIONID) {
    cookie = q->creds.sessionId.cookie;
    user = q->creds.sessionId.userName;
    key = q->creds.sessionId.key;
  }
  int fcd = q->specType == VIXDISKLIB_SPEC_VSTORAGE_OBJECT;
  wire_str(r, q->vmxSpec);
  wire_str(r, q->serverName);
  wire_str(r, q->thumbPrint);
  wire_u64(r, (uint64_t)q->credType);
  wire_str(r, user);
  wire_str(r, password);
  wire_str(r, cookie);
  wire_str(r, key);
  wire_u64(r, q->port);
  wire_u64(r, q->nfcHostPort);
  wire_str(r, q->vimApiVer);
  wire_u64(r, (uint64_t)q->specType);
  wire_str(r, fcd ? q->spec.vStorageObjSpec.id : NULL);
  wire_str(r, fcd ? q->spec.vStorageObjSpec.datastoreMoRef : NULL);
  wire_str(r, fcd ? q->spec.vStorageObjSpec.ssId : NULL);
  wire_u64(r, (uint64_t)q->privateUse);
  wire_u64(r, p ? sizeof *p : 0);
}

static VixError a_InitEx(uint32_t major, uint32_t minor, VixDiskLibGenericLogFunc *log, VixDiskLibGenericLogFunc *warn,
                         VixDiskLibGenericLogFunc *panic, const char *libDir, const char *configFile) {
  shim_set_log(log, warn, panic);
  char modes[sizeof transport_modes];
  VixError err = agent_start(major, minor, libDir, configFile, modes, sizeof modes);
  if (err == VIX_OK && modes[0]) memcpy(transport_modes, modes, sizeof modes);
  if (err == VIX_OK) first_read_arm();
  return err;
}

static void a_Exit(void) {
  agent_stop();
  params_forget_all(); /* connections end with the session (a forked child's copies are never usable) */
  pthread_mutex_lock(&disks_lock);
  while (disks) { Disk *next = disks->next; free(disks->path); free(disks); disks = next; }
  pthread_mutex_unlock(&disks_lock);
}

static const char *a_ListTransportModes(void) { return transport_modes; }

/* Both track what the library allocated (exports_more.c): FreeConnectParams frees the strings of a
   GetConnectParams copy too, never those a caller put in an AllocateConnectParams struct, and leaves alone a
   struct the library never handed out. */
static VixDiskLibConnectParams *a_AllocateConnectParams(void) { return params_allocate(); }

static void a_FreeConnectParams(VixDiskLibConnectParams *params) { params_free(params); }

static VixError a_ConnectEx(const VixDiskLibConnectParams *params, Bool readOnly, const char *snapshotRef,
                            const char *transportModes, VixDiskLibConnection *connection) {
  if (!connection) return VIX_E_INVALID_ARG;
  *connection = NULL;
  WireOut r;
  start(&r, OP_CONNECT);
  put_params(&r, params);
  wire_u64(&r, readOnly != 0);
  wire_str(&r, snapshotRef);
  wire_str(&r, transportModes);
  AgentReply reply;
  VixError err = ask("VixDiskLib_ConnectEx", &r, &reply);
  uint64_t id = err == VIX_OK ? wire_get_u64(&reply.in) : 0;
  if (err == VIX_OK && (reply.in.bad || id == 0)) err = VIX_E_FAIL;
  agent_done(&reply);
  if (err == VIX_OK) {
    *connection = (VixDiskLibConnection)(uintptr_t)id;
    params_connected(*connection, params); /* for GetConnectParams */
  }
  return err;
}

/* A call whose only argument is one handle and which returns nothing but its error. */
static VixError simple(const char *call, int op, const void *handle) {
  if (!handle) return VIX_E_INVALID_ARG;
  WireOut r;
  start(&r, op);
  wire_u64(&r, id_of(handle));
  return ask(call, &r, NULL);
}

static VixError a_Disconnect(VixDiskLibConnection c) {
  VixError err = simple("VixDiskLib_Disconnect", OP_DISCONNECT, c);
  if (err == VIX_OK) params_disconnected(c);
  return err;
}

static VixError access_call(const char *call, int op, const VixDiskLibConnectParams *params, const char *identity) {
  WireOut r;
  start(&r, op);
  put_params(&r, params);
  wire_str(&r, identity);
  return ask(call, &r, NULL);
}

static VixError a_PrepareForAccess(const VixDiskLibConnectParams *params, const char *identity) {
  return access_call("VixDiskLib_PrepareForAccess", OP_PREPARE, params, identity);
}

static VixError a_EndAccess(const VixDiskLibConnectParams *params, const char *identity) {
  return access_call("VixDiskLib_EndAccess", OP_END_ACCESS, params, identity);
}

static VixError a_Cleanup(const VixDiskLibConnectParams *params, uint32_t *cleaned, uint32_t *remaining) {
  WireOut r;
  start(&r, OP_CLEANUP);
  put_params(&r, params);
  AgentReply reply;
  VixError err = ask("VixDiskLib_Cleanup", &r, &reply);
  if (reply.body) { /* the counts come with a failure too */
    uint64_t a = wire_get_u64(&reply.in), b = wire_get_u64(&reply.in);
    if (!reply.in.bad) { *cleaned = (uint32_t)a; *remaining = (uint32_t)b; }
  }
  agent_done(&reply);
  return err;
}

static VixError a_Open(VixDiskLibConnection c, const char *path, uint32_t flags, VixDiskLibHandle *handle) {
  if (!handle) return VIX_E_INVALID_ARG;
  *handle = NULL;
  if (!c || !path) return VIX_E_INVALID_ARG;
  WireOut r;
  start(&r, OP_OPEN);
  wire_u64(&r, id_of(c));
  wire_str(&r, path);
  wire_u64(&r, flags);
  AgentReply reply;
  VixError err = ask("VixDiskLib_Open", &r, &reply);
  if (err == VIX_OK) {
    uint64_t id = wire_get_u64(&reply.in);
    char *mode = wire_get_str(&reply.in);
    if (reply.in.bad || id == 0) err = VIX_E_FAIL;
    else { remember_disk(id, mode, path); *handle = (VixDiskLibHandle)(uintptr_t)id; }
    free(mode);
  }
  agent_done(&reply);
  return err;
}

static VixError a_Close(VixDiskLibHandle h) {
  VixError err = simple("VixDiskLib_Close", OP_CLOSE, h);
  if (err == VIX_OK) forget_disk(id_of(h));
  return err;
}

static VixError a_GetInfo(VixDiskLibHandle h, VixDiskLibInfo **out) {
  if (!h || !out) return VIX_E_INVALID_ARG;
  *out = NULL;
  WireOut r;
  start(&r, OP_GET_INFO);
  wire_u64(&r, id_of(h));
  AgentReply reply;
  VixError err = ask("VixDiskLib_GetInfo", &r, &reply);
  if (err == VIX_OK) {
    VixDiskLibInfo *info = calloc(1, sizeof *info);
    WireIn *in = &reply.in;
    if (!info) { agent_done(&reply); return VIX_E_OUT_OF_MEMORY; }
    info->capacity = wire_get_u64(in);
    info->adapterType = (VixDiskLibAdapterType)wire_get_u64(in);
    info->numLinks = (int)wire_get_u64(in);
    info->parentFileNameHint = wire_get_str(in);
    info->uuid = wire_get_str(in);
    info->biosGeo.cylinders = (uint32_t)wire_get_u64(in);
    info->biosGeo.heads = (uint32_t)wire_get_u64(in);
    info->biosGeo.sectors = (uint32_t)wire_get_u64(in);
    info->physGeo.cylinders = (uint32_t)wire_get_u64(in);
    info->physGeo.heads = (uint32_t)wire_get_u64(in);
    info->physGeo.sectors = (uint32_t)wire_get_u64(in);
    uint64_t logical = wire_get_u64(in), physical = wire_get_u64(in);
#if VDDKC_ABI_MAJOR >= 7
    info->logicalSectorSize = (uint32_t)logical;
    info->physicalSectorSize = (uint32_t)physical;
#else
    (void)logical;
    (void)physical;
#endif
    if (in->bad) {
      free(info->parentFileNameHint);
      free(info->uuid);
      free(info);
      err = VIX_E_FAIL;
    } else {
      *out = info;
    }
  }
  agent_done(&reply);
  return err;
}

static void a_FreeInfo(VixDiskLibInfo *info) {
  if (!info) return;
  free(info->parentFileNameHint);
  free(info->uuid);
  free(info);
}

static const char *a_GetTransportMode(VixDiskLibHandle h) {
  const char *mode = NULL;
  pthread_mutex_lock(&disks_lock);
  for (Disk *d = disks; d; d = d->next)
    if (d->id == id_of(h)) mode = d->mode;
  pthread_mutex_unlock(&disks_lock);
  return mode ? mode : "unknown";
}

static VixError a_Read(VixDiskLibHandle h, VixDiskLibSectorType start_sector, VixDiskLibSectorType count,
                       uint8_t *buffer) {
  if (!h || (!buffer && count)) return VIX_E_INVALID_ARG;
  if (count > MAX_IO_SECTORS) return VIX_E_INVALID_ARG;
  before_read(h);
  WireOut r;
  start(&r, OP_READ);
  wire_u64(&r, id_of(h));
  wire_u64(&r, start_sector);
  wire_u64(&r, count);
  AgentReply reply;
  VixError err = ask("VixDiskLib_Read", &r, &reply);
  if (err == VIX_OK) {
    size_t len;
    const uint8_t *data = wire_get_bytes(&reply.in, &len);
    if (reply.in.bad || len != count * VIXDISKLIB_SECTOR_SIZE) err = VIX_E_FAIL;
    else if (len) memcpy(buffer, data, len);
  }
  agent_done(&reply);
  return err;
}

static VixError a_Write(VixDiskLibHandle h, VixDiskLibSectorType start_sector, VixDiskLibSectorType count,
                        const uint8_t *buffer) {
  if (!h || (!buffer && count)) return VIX_E_INVALID_ARG;
  if (count > MAX_IO_SECTORS) return VIX_E_INVALID_ARG;
  WireOut r;
  start(&r, OP_WRITE);
  wire_u64(&r, id_of(h));
  wire_u64(&r, start_sector);
  wire_bytes(&r, buffer, count * VIXDISKLIB_SECTOR_SIZE);
  return ask("VixDiskLib_Write", &r, NULL);
}

static VixError a_ReadAsync(VixDiskLibHandle h, VixDiskLibSectorType start_sector, VixDiskLibSectorType count,
                            uint8_t *buffer, VixDiskLibCompletionCB callback, void *data) {
  if (!h || !callback || (!buffer && count)) return VIX_E_INVALID_ARG;
  if (count > MAX_IO_SECTORS) return VIX_E_INVALID_ARG;
  before_read(h);
  WireOut r;
  start(&r, OP_READ_ASYNC);
  wire_u64(&r, id_of(h));
  wire_u64(&r, start_sector);
  wire_u64(&r, count);
  AgentReply reply;
  VixError err = ask("VixDiskLib_ReadAsync", &r, &reply);
  if (err == VIX_OK || err == VIX_ASYNC) {
    VixError result = wire_get_u64(&reply.in);
    size_t len;
    const uint8_t *bytes = wire_get_bytes(&reply.in, &len);
    if (reply.in.bad) result = VIX_E_FAIL;
    else if (result == VIX_OK && len == count * VIXDISKLIB_SECTOR_SIZE) { if (len) memcpy(buffer, bytes, len); }
    else if (result == VIX_OK) result = VIX_E_FAIL;
    async_complete(id_of(h), callback, data, result);
    err = VIX_ASYNC;
  }
  agent_done(&reply);
  return err;
}

static VixError a_WriteAsync(VixDiskLibHandle h, VixDiskLibSectorType start_sector, VixDiskLibSectorType count,
                             const uint8_t *buffer, VixDiskLibCompletionCB callback, void *data) {
  if (!h || !callback || (!buffer && count)) return VIX_E_INVALID_ARG;
  if (count > MAX_IO_SECTORS) return VIX_E_INVALID_ARG;
  WireOut r;
  start(&r, OP_WRITE_ASYNC);
  wire_u64(&r, id_of(h));
  wire_u64(&r, start_sector);
  wire_bytes(&r, buffer, count * VIXDISKLIB_SECTOR_SIZE);
  AgentReply reply;
  VixError err = ask("VixDiskLib_WriteAsync", &r, &reply);
  if (err == VIX_OK || err == VIX_ASYNC) {
    VixError result = wire_get_u64(&reply.in);
    async_complete(id_of(h), callback, data, reply.in.bad ? VIX_E_FAIL : result);
    err = VIX_ASYNC;
  }
  agent_done(&reply);
  return err;
}

static VixError a_Wait(VixDiskLibHandle h) {
  if (!h) return VIX_E_INVALID_ARG;
  async_wait(id_of(h));
  return simple("VixDiskLib_Wait", OP_WAIT, h);
}

static VixError a_Flush(VixDiskLibHandle h) { return simple("VixDiskLib_Flush", OP_FLUSH, h); }

static VixError a_QueryAllocatedBlocks(VixDiskLibHandle h, VixDiskLibSectorType start_sector,
                                       VixDiskLibSectorType count, VixDiskLibSectorType chunk,
                                       VixDiskLibBlockList **list) {
  if (!h || !list) return VIX_E_INVALID_ARG;
  *list = NULL;
  WireOut r;
  start(&r, OP_QUERY_BLOCKS);
  wire_u64(&r, id_of(h));
  wire_u64(&r, start_sector);
  wire_u64(&r, count);
  wire_u64(&r, chunk);
  AgentReply reply;
  VixError err = ask("VixDiskLib_QueryAllocatedBlocks", &r, &reply);
  if (err == VIX_OK) {
    uint64_t n = wire_get_u64(&reply.in);
    VixDiskLibBlockList *blocks = n <= VIXDISKLIB_MAX_CHUNK_NUMBER && !reply.in.bad
        ? calloc(1, offsetof(VixDiskLibBlockList, blocks) + (n ? n : 1) * sizeof(VixDiskLibBlock)) : NULL;
    if (!blocks) err = reply.in.bad || n > VIXDISKLIB_MAX_CHUNK_NUMBER ? VIX_E_FAIL : VIX_E_OUT_OF_MEMORY;
    for (uint64_t i = 0; blocks && i < n; i++) {
      blocks->blocks[i].offset = wire_get_u64(&reply.in);
      blocks->blocks[i].length = wire_get_u64(&reply.in);
    }
    if (blocks && reply.in.bad) { free(blocks); blocks = NULL; err = VIX_E_FAIL; }
    if (blocks) { blocks->numBlocks = (uint32_t)n; *list = blocks; }
  }
  agent_done(&reply);
  return err;
}

static VixError a_FreeBlockList(VixDiskLibBlockList *list) {
  free(list);
  return VIX_OK;
}

static VixError a_Attach(VixDiskLibHandle parent, VixDiskLibHandle child) {
  if (!parent || !child) return VIX_E_INVALID_ARG;
  WireOut r;
  start(&r, OP_ATTACH);
  wire_u64(&r, id_of(parent));
  wire_u64(&r, id_of(child));
  return ask("VixDiskLib_Attach", &r, NULL);
}

/* Texts when the agent cannot be asked (not initialised, or gone). */
static const char *local_text(VixError err) {
  switch (VIX_ERROR_CODE(err)) {
    case VIX_OK: return "The operation was successful";
    case VIX_E_FAIL: return "Unknown error";
    case VIX_E_OUT_OF_MEMORY: return "Memory allocation failed: out of memory";
    case VIX_E_INVALID_ARG: return "One of the parameters was invalid";
    case VIX_E_NOT_SUPPORTED: return "The operation is not supported";
    case VIX_E_HOST_CONNECTION_LOST: return "The network connection to the host was lost";
    case VIX_E_DISK_NOINIT: return "The disk library has not been initialized";
    default: return "Unknown error";
  }
}

static char *a_GetErrorText(VixError err, const char *locale) {
  (void)locale;
  WireOut r;
  start(&r, OP_ERROR_TEXT);
  wire_u64(&r, err);
  AgentReply reply;
  char *text = NULL;
  if (ask("VixDiskLib_GetErrorText", &r, &reply) == VIX_OK) text = wire_get_str(&reply.in);
  agent_done(&reply);
  return text ? text : strdup(local_text(err));
}

static void a_FreeErrorText(char *text) { free(text); }

void agent_backend(ShimBackend *b) {
  static char where[300];
  const char *given = getenv("VDDKC_SHIM_AGENT");
  snprintf(where, sizeof where, "agent:%s", given && *given ? given : "private");
  *b = (ShimBackend){
      .mode = "simulated", .library = where, .InitEx = a_InitEx, .Exit = a_Exit,
      .ListTransportModes = a_ListTransportModes, .AllocateConnectParams = a_AllocateConnectParams,
      .FreeConnectParams = a_FreeConnectParams, .ConnectEx = a_ConnectEx, .Disconnect = a_Disconnect,
      .PrepareForAccess = a_PrepareForAccess, .EndAccess = a_EndAccess, .Cleanup = a_Cleanup, .Open = a_Open,
      .Close = a_Close, .GetInfo = a_GetInfo, .FreeInfo = a_FreeInfo, .GetTransportMode = a_GetTransportMode,
      .Read = a_Read, .Write = a_Write, .ReadAsync = a_ReadAsync, .WriteAsync = a_WriteAsync, .Wait = a_Wait,
      .Flush = a_Flush, .QueryAllocatedBlocks = a_QueryAllocatedBlocks, .FreeBlockList = a_FreeBlockList,
      .Attach = a_Attach, .GetErrorText = a_GetErrorText, .FreeErrorText = a_FreeErrorText,
  };
}
