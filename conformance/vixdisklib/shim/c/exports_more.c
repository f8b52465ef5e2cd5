/*
 * exports_more.c - the rest of the VixDiskLib 7.0 API a product may link against (exports.c has the backup
 * path): the deprecated Init and Connect, GetConnectParams, and the hosted-disk and maintenance calls (Create,
 * CreateChild, metadata, Unlink, Grow, Shrink, Defragment, Rename, Clone, IsAttachPossible,
 * SpaceNeededForClone, CheckRepair). Each is traced like the others (one line per call).
 *
 * Forward mode (the tracing library): each call goes unchanged to the real library's function of the same name
 * (forward_symbol); a function the real library lacks answers VIX_E_NOT_SUPPORTED. As in exports.c nothing is
 * checked on the way: what the real library does with a NULL argument is what the product would see with it.
 *
 * Simulated mode answers as a real build does for a remote (vSphere) connection. A NULL argument the call
 * needs is VIX_E_INVALID_ARG (before the library is even asked, as for the other calls); then, as for every
 * call, VIX_E_DISK_NOINIT outside InitEx..Exit and VIX_E_FAIL in a forked child (agent_ready); then a
 * connection this process has not open, or a disk handle the agent does not know, is VIX_E_INVALID_ARG. After
 * that:
 *   Init        InitEx with configFile NULL; Connect: ConnectEx(params, readOnly 0, NULL, NULL).
 *   GetConnectParams  a library-allocated copy of the parameters the connection was made with (strings
 *               duplicated); FreeConnectParams frees it with its strings (params_free below).
 *   Create, CreateChild, Unlink, Grow, Shrink, Defragment, Rename: VIX_E_NOT_SUPPORTED. VMware documents them
 *               for hosted (local) disks only: Create/Grow/Unlink/Defragment in the programming guide's
 *               "Capabilities of Library Calls", Shrink as "local disk", CreateChild as a child of a hosted
 *               disk, and Rename works on files with no connection at all.
 *   ReadMetadata, WriteMetadata, GetMetadataKeys: VIX_E_NOT_SUPPORTED for now. A real build reads the disk's
 *               descriptor (ddb.* keys) over a remote connection too; the agent has no operation for it yet.
 *   Clone, IsAttachPossible, SpaceNeededForClone, CheckRepair: VIX_E_NOT_SUPPORTED. A real build may do them
 *               for a remote connection (Clone over NFC); the harness's simulated library does not model them,
 *               and the agent has no operation for them, so the product is told so rather than told a guess.
 * Every VIX_E_NOT_SUPPORTED goes with one warning line saying which of the two it is.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "shim.h"
#include "trace.h"

#define B shim_backend()
#define BEGIN TraceClock clock_ = {0, 0}; (void)shim_take_error_text(); if (trace_enabled()) trace_clock(&clock_)
#define TRACING trace_enabled()

/* The real library's function `name` in `fn` (a function pointer of its prototype), NULL when absent. */
#define REAL(fn, name)                         \
  do {                                         \
    void *symbol_ = forward_symbol(name);      \
    memcpy(&(fn), &symbol_, sizeof symbol_);   \
  } while (0)

static int forwarding(void) { return strcmp(B->mode, "forward") == 0; }

static const char HOSTED[] = "supported for hosted (local) disks only, not on a vSphere connection";
static const char NOT_SIMULATED[] = "not simulated: the harness's simulated library does not implement it";

/* ---- connect parameters the library hands out, and those of each open connection ---- */

#define PARAM_STRINGS 10

/* A struct the library allocated: `strings` are the ones it duplicated into it (none for AllocateConnectParams,
   whose strings are the caller's). Recorded as allocated, so that a caller's later change of a field neither
   frees the caller's string nor leaks the library's. */
typedef struct Owned {
  struct Owned *next;
  VixDiskLibConnectParams *params;
  char *strings[PARAM_STRINGS];
} Owned;

/* The parameters an open connection of the simulated backend was made with (its own deep copy). */
typedef struct Kept {
  struct Kept *next;
  VixDiskLibConnection connection;
  Owned copy;
} Kept;

static pthread_mutex_t params_lock = PTHREAD_MUTEX_INITIALIZER;
static Owned *handed_out;
static Kept *kept;

static void drop_strings(char **strings) {
  for (int i = 0; i < PARAM_STRINGS; i++) {
    if (strings[i]) explicit_bzero(strings[i], strlen(strings[i])); /* passwords, cookies and keys */
    free(strings[i]);
    strings[i] = NULL;
  }
}

/* `*to` = strdup(from), remembered in `strings`; 0 on success (NULL stays NULL). */
static int dup_into(char **to, const char *from, char **strings, int *n) {
  *to = NULL;
  if (!from) return 0;
  if (!(*to = strdup(from))) return -1;
  strings[(*n)++] = *to;
  return 0;
}

/* A deep copy of `from` into `out` (allocated); 0 on success, -1 when memory ran out (nothing is left). */
static int copy_params(const VixDiskLibConnectParams *from, Owned *out) {
  VixDiskLibConnectParams *to = calloc(1, sizeof *to);
  memset(out->strings, 0, sizeof out->strings);
  out->params = to;
  if (!to) return -1;
  int n = 0, bad = 0;
  to->privateUse = from->privateUse;
  to->credType = from->credType;
  to->port = from->port;
  to->nfcHostPort = from->nfcHostPort;
  to->specType = from->specType;
  bad |= dup_into(&to->vmxSpec, from->vmxSpec, out->strings, &n);
  bad |= dup_into(&to->serverName, from->serverName, out->strings, &n);
  bad |= dup_into(&to->thumbPrint, from->thumbPrint, out->strings, &n);
  bad |= dup_into(&to->vimApiVer, from->vimApiVer, out->strings, &n);
  if (from->credType == VIXDISKLIB_CRED_UID) {
    bad |= dup_into(&to->creds.uid.userName, from->creds.uid.userName, out->strings, &n);
    bad |= dup_into(&to->creds.uid.password, from->creds.uid.password, out->strings, &n);
  } else if (from->credType == VIXDISKLIB_CRED_SESSIONID) {
    bad |= dup_into(&to->creds.sessionId.cookie, from->creds.sessionId.cookie, out->strings, &n);
    bad |= dup_into(&to->creds.sessionId.userName, from->creds.sessionId.userName, out->strings, &n);
    bad |= dup_into(&to->creds.sessionId.key, from->creds.sessionId.key, out->strings, &n);
  } /* a ticket (TICKETID) is the library's internal state: not handed on */
  if (from->specType == VIXDISKLIB_SPEC_VSTORAGE_OBJECT) {
    bad |= dup_into(&to->spec.vStorageObjSpec.id, from->spec.vStorageObjSpec.id, out->strings, &n);
    bad |= dup_into(&to->spec.vStorageObjSpec.datastoreMoRef, from->spec.vStorageObjSpec.datastoreMoRef,
                    out->strings, &n);
    bad |= dup_into(&to->spec.vStorageObjSpec.ssId, from->spec.vStorageObjSpec.ssId, out->strings, &n);
  }
  if (bad) {
    drop_strings(out->strings);
    free(to);
    out->params = NULL;
    return -1;
  }
  return 0;
}

static Owned *hand_out(VixDiskLibConnectParams *params, char **strings) {
  Owned *owned = calloc(1, sizeof *owned);
  if (!owned) return NULL;
  owned->params = params;
  if (strings) memcpy(owned->strings, strings, sizeof owned->strings);
  pthread_mutex_lock(&params_lock);
  owned->next = handed_out;
  handed_out = owned;
  pthread_mutex_unlock(&params_lock);
  return owned;
}

VixDiskLibConnectParams *params_allocate(void) {
  VixDiskLibConnectParams *params = calloc(1, sizeof *params);
  if (params && !hand_out(params, NULL)) {
    free(params);
    return NULL;
  }
  return params;
}

void params_free(VixDiskLibConnectParams *params) {
  if (!params) return;
  Owned *found = NULL;
  pthread_mutex_lock(&params_lock);
  for (Owned **at = &handed_out; *at; at = &(*at)->next)
    if ((*at)->params == params) {
      found = *at;
      *at = found->next;
      break;
    }
  pthread_mutex_unlock(&params_lock);
  if (!found) {
    /* a caller's own struct (or one freed already): freeing it could crash the product, so it is left alone */
    shim_log(1, "VixDiskLib_FreeConnectParams: %p was not allocated by VixDiskLib_AllocateConnectParams or "
                "VixDiskLib_GetConnectParams (or was freed already): left alone", (void *)params);
    return;
  }
  drop_strings(found->strings);
  free(found->params);
  free(found);
}

void params_connected(VixDiskLibConnection connection, const VixDiskLibConnectParams *params) {
  static const VixDiskLibConnectParams local; /* NULL params: a local (hosted) connection */
  Kept *entry = calloc(1, sizeof *entry);
  if (!entry) return;
  if (copy_params(params ? params : &local, &entry->copy) != 0) {
    free(entry);
    return; /* GetConnectParams will say VIX_E_INVALID_ARG for this one: memory ran out */
  }
  entry->connection = connection;
  pthread_mutex_lock(&params_lock);
  entry->next = kept;
  kept = entry;
  pthread_mutex_unlock(&params_lock);
}

static void drop_kept(Kept *entry) {
  drop_strings(entry->copy.strings);
  free(entry->copy.params);
  free(entry);
}

void params_disconnected(VixDiskLibConnection connection) {
  Kept *found = NULL;
  pthread_mutex_lock(&params_lock);
  for (Kept **at = &kept; *at; at = &(*at)->next)
    if ((*at)->connection == connection) {
      found = *at;
      *at = found->next;
      break;
    }
  pthread_mutex_unlock(&params_lock);
  if (found) drop_kept(found);
}

void params_forget_all(void) {
  pthread_mutex_lock(&params_lock);
  Kept *all = kept;
  kept = NULL;
  pthread_mutex_unlock(&params_lock);
  while (all) {
    Kept *next = all->next;
    drop_kept(all);
    all = next;
  }
}

static int connection_open(VixDiskLibConnection connection) {
  int open = 0;
  pthread_mutex_lock(&params_lock);
  for (Kept *k = kept; k && !open; k = k->next) open = k->connection == connection;
  pthread_mutex_unlock(&params_lock);
  return open;
}

/* A library-allocated copy of an open connection's parameters, or an error. Caller checked `out`. */
static VixError sim_get_connect_params(VixDiskLibConnection connection, VixDiskLibConnectParams **out) {
  Owned copy;
  int found = 0, failed = 0;
  pthread_mutex_lock(&params_lock);
  for (Kept *k = kept; k && !found; k = k->next)
    if (k->connection == connection) {
      found = 1;
      failed = copy_params(k->copy.params, &copy) != 0;
    }
  pthread_mutex_unlock(&params_lock);
  if (!found) {
    shim_log(1, "VixDiskLib_GetConnectParams: connection %p is not open (disconnected or never made)",
             (void *)connection);
    return VIX_E_INVALID_ARG;
  }
  if (failed || !hand_out(copy.params, copy.strings)) {
    if (!failed) {
      drop_strings(copy.strings);
      free(copy.params);
    }
    return VIX_E_OUT_OF_MEMORY;
  }
  *out = copy.params;
  return VIX_OK;
}

/* ---- simulated answers ---- */

/* The session check every call makes (DISK_NOINIT / forked child), then the handles' validity. */
static VixError sim_connection(const char *call, VixDiskLibConnection connection) {
  VixError err = agent_ready(call);
  if (err == VIX_OK && !connection_open(connection)) {
    shim_log(1, "%s: connection %p is not open (disconnected or never made)", call, (void *)connection);
    err = VIX_E_INVALID_ARG;
  }
  return err;
}

/* A disk handle the agent knows (it answers VIX_E_INVALID_ARG for a closed or never-opened one). */
static VixError sim_disk(const char *call, VixDiskLibHandle handle) {
  VixError err = agent_ready(call);
  if (err != VIX_OK) return err;
  WireOut request;
  wire_start(&request);
  wire_u64(&request, OP_TRANSPORT);
  wire_u64(&request, (uint64_t)(uintptr_t)handle);
  AgentReply reply;
  err = agent_call(call, &request, &reply);
  agent_done(&reply);
  wire_free(&request);
  return err;
}

static VixError not_supported(const char *call, const char *why) {
  shim_log(1, "%s: %s", call, why);
  return VIX_E_NOT_SUPPORTED;
}

/* ---- tracing helpers ---- */

static void trace_disk_call(const char *call, const TraceClock *clock, VixDiskLibHandle handle, TraceArgs *args,
                            VixError err) {
  char name[64];
  trace_handle_name(name, sizeof name, "disk", handle);
  trace_call(call, clock, name, args, 1, err, NULL);
}

/* ---- Init and Connect ---- */

typedef VixError (*InitFn)(uint32_t, uint32_t, VixDiskLibGenericLogFunc *, VixDiskLibGenericLogFunc *,
                           VixDiskLibGenericLogFunc *, const char *);

SHIM_EXPORT VixError VixDiskLib_Init(uint32_t major, uint32_t minor, VixDiskLibGenericLogFunc *log,
                                     VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic,
                                     const char *libDir) {
  trace_refresh();
  BEGIN;
  TraceArgs args;
  if (TRACING) {
    targs_init(&args);
    targs_u64(&args, "major", major);
    targs_u64(&args, "minor", minor);
    targs_str(&args, "libDir", libDir);
    targs_other_threads(&args, "threads_before");
    trace_start(B->mode, B->library);
  }
  VixError err;
  if (forwarding()) {
    InitFn real = NULL;
    REAL(real, "VixDiskLib_Init");
    if (real) err = real(major, minor, log, warn, panic, libDir);
    else err = not_supported("VixDiskLib_Init", "not in the real library");
  } else {
    err = B->InitEx(major, minor, log, warn, panic, libDir, NULL);
  }
  if (TRACING) trace_call("VixDiskLib_Init", &clock_, NULL, &args, 1, err, NULL);
  return err;
}

typedef VixError (*ConnectFn)(const VixDiskLibConnectParams *, VixDiskLibConnection *);

SHIM_EXPORT VixError VixDiskLib_Connect(const VixDiskLibConnectParams *params, VixDiskLibConnection *connection) {
  BEGIN;
  VixError err;
  if (forwarding()) {
    ConnectFn real = NULL;
    REAL(real, "VixDiskLib_Connect");
    if (real) {
      err = real(params, connection);
    } else {
      if (connection) *connection = NULL;
      err = not_supported("VixDiskLib_Connect", "not in the real library");
    }
  } else {
    err = B->ConnectEx(params, 0, NULL, NULL, connection);
  }
  if (TRACING) {
    TraceArgs args;
    char handle[64] = "";
    targs_init(&args);
    targs_params(&args, "params", params);
    if (err == VIX_OK && connection) trace_handle_name(handle, sizeof handle, "conn", *connection);
    trace_call("VixDiskLib_Connect", &clock_, handle, &args, 1, err, NULL);
  }
  return err;
}

typedef VixError (*GetConnectParamsFn)(VixDiskLibConnection, VixDiskLibConnectParams **);

SHIM_EXPORT VixError VixDiskLib_GetConnectParams(VixDiskLibConnection connection, VixDiskLibConnectParams **params) {
  BEGIN;
  VixError err;
  if (forwarding()) {
    GetConnectParamsFn real = NULL;
    REAL(real, "VixDiskLib_GetConnectParams");
    if (real) {
      err = real(connection, params);
    } else {
      if (params) *params = NULL;
      err = not_supported("VixDiskLib_GetConnectParams", "not in the real library");
    }
  } else if (!params) {
    err = VIX_E_INVALID_ARG;
  } else {
    *params = NULL;
    err = !connection ? VIX_E_INVALID_ARG : agent_ready("VixDiskLib_GetConnectParams");
    if (err == VIX_OK) err = sim_get_connect_params(connection, params);
  }
  if (TRACING) { /* the parameters themselves are not traced: they hold the password */
    char handle[64];
    trace_handle_name(handle, sizeof handle, "conn", connection);
    trace_call("VixDiskLib_GetConnectParams", &clock_, handle, NULL, 1, err, NULL);
  }
  return err;
}

/* ---- disks: create, metadata, maintenance ---- */

typedef VixError (*CreateFn)(VixDiskLibConnection, const char *, const VixDiskLibCreateParams *,
                             VixDiskLibProgressFunc, void *);

SHIM_EXPORT VixError VixDiskLib_Create(VixDiskLibConnection connection, const char *path,
                                       const VixDiskLibCreateParams *createParams, VixDiskLibProgressFunc progress,
                                       void *progressData) {
  static const char call[] = "VixDiskLib_Create";
  BEGIN;
  VixError err;
  if (forwarding()) {
    CreateFn real = NULL;
    REAL(real, call);
    err = real ? real(connection, path, createParams, progress, progressData) : not_supported(call, "not in the real library");
  } else if (!connection || !path || !createParams) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_connection(call, connection)) == VIX_OK) {
    err = not_supported(call, HOSTED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_handle(&args, "connection", "conn", connection);
    targs_str(&args, "path", path);
    if (createParams) {
      targs_u64(&args, "diskType", (uint64_t)createParams->diskType);
      targs_u64(&args, "adapterType", (uint64_t)createParams->adapterType);
      targs_u64(&args, "hwVersion", createParams->hwVersion);
      targs_u64(&args, "capacity", createParams->capacity);
    }
    trace_call(call, &clock_, NULL, &args, 1, err, NULL);
  }
  return err;
}

typedef VixError (*CreateChildFn)(VixDiskLibHandle, const char *, VixDiskLibDiskType, VixDiskLibProgressFunc, void *);

SHIM_EXPORT VixError VixDiskLib_CreateChild(VixDiskLibHandle handle, const char *childPath, VixDiskLibDiskType diskType,
                                            VixDiskLibProgressFunc progress, void *progressData) {
  static const char call[] = "VixDiskLib_CreateChild";
  BEGIN;
  VixError err;
  if (forwarding()) {
    CreateChildFn real = NULL;
    REAL(real, call);
    err = real ? real(handle, childPath, diskType, progress, progressData) : not_supported(call, "not in the real library");
  } else if (!handle || !childPath) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_disk(call, handle)) == VIX_OK) {
    err = not_supported(call, HOSTED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_str(&args, "childPath", childPath);
    targs_u64(&args, "diskType", (uint64_t)diskType);
    trace_disk_call(call, &clock_, handle, &args, err);
  }
  return err;
}

/* The metadata calls' arguments are traced as "entry"/"entries": the trace reader takes any argument named
   like "key" for a secret. */
typedef VixError (*ReadMetadataFn)(VixDiskLibHandle, const char *, char *, size_t, size_t *);

SHIM_EXPORT VixError VixDiskLib_ReadMetadata(VixDiskLibHandle handle, const char *key, char *buf, size_t bufLen,
                                             size_t *requiredLen) {
  static const char call[] = "VixDiskLib_ReadMetadata";
  BEGIN;
  VixError err;
  if (forwarding()) {
    ReadMetadataFn real = NULL;
    REAL(real, call);
    err = real ? real(handle, key, buf, bufLen, requiredLen) : not_supported(call, "not in the real library");
  } else if (!handle || !key) { /* buf may be NULL (to learn requiredLen); requiredLen is optional */
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_disk(call, handle)) == VIX_OK) {
    err = not_supported(call, NOT_SIMULATED); /* acceptable for now: see the head of this file */
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_str(&args, "entry", key);
    targs_u64(&args, "bufLen", bufLen);
    trace_disk_call(call, &clock_, handle, &args, err);
  }
  return err;
}

typedef VixError (*WriteMetadataFn)(VixDiskLibHandle, const char *, const char *);

SHIM_EXPORT VixError VixDiskLib_WriteMetadata(VixDiskLibHandle handle, const char *key, const char *val) {
  static const char call[] = "VixDiskLib_WriteMetadata";
  BEGIN;
  VixError err;
  if (forwarding()) {
    WriteMetadataFn real = NULL;
    REAL(real, call);
    err = real ? real(handle, key, val) : not_supported(call, "not in the real library");
  } else if (!handle || !key || !val) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_disk(call, handle)) == VIX_OK) {
    err = not_supported(call, NOT_SIMULATED); /* acceptable for now: see the head of this file */
  }
  if (TRACING) { /* the value is not traced: a product may keep anything there */
    TraceArgs args;
    targs_init(&args);
    targs_str(&args, "entry", key);
    trace_disk_call(call, &clock_, handle, &args, err);
  }
  return err;
}

typedef VixError (*GetMetadataKeysFn)(VixDiskLibHandle, char *, size_t, size_t *);

SHIM_EXPORT VixError VixDiskLib_GetMetadataKeys(VixDiskLibHandle handle, char *keys, size_t maxLen,
                                                size_t *requiredLen) {
  static const char call[] = "VixDiskLib_GetMetadataKeys";
  BEGIN;
  VixError err;
  if (forwarding()) {
    GetMetadataKeysFn real = NULL;
    REAL(real, call);
    err = real ? real(handle, keys, maxLen, requiredLen) : not_supported(call, "not in the real library");
  } else if (!handle) { /* keys may be NULL (to learn requiredLen); requiredLen is optional */
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_disk(call, handle)) == VIX_OK) {
    err = not_supported(call, NOT_SIMULATED); /* acceptable for now: see the head of this file */
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_u64(&args, "maxLen", maxLen);
    trace_disk_call(call, &clock_, handle, &args, err);
  }
  return err;
}

typedef VixError (*UnlinkFn)(VixDiskLibConnection, const char *);

SHIM_EXPORT VixError VixDiskLib_Unlink(VixDiskLibConnection connection, const char *path) {
  static const char call[] = "VixDiskLib_Unlink";
  BEGIN;
  VixError err;
  if (forwarding()) {
    UnlinkFn real = NULL;
    REAL(real, call);
    err = real ? real(connection, path) : not_supported(call, "not in the real library");
  } else if (!connection || !path) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_connection(call, connection)) == VIX_OK) {
    err = not_supported(call, HOSTED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_handle(&args, "connection", "conn", connection);
    targs_str(&args, "path", path);
    trace_call(call, &clock_, NULL, &args, 1, err, NULL);
  }
  return err;
}

typedef VixError (*GrowFn)(VixDiskLibConnection, const char *, VixDiskLibSectorType, Bool, VixDiskLibProgressFunc,
                           void *);

SHIM_EXPORT VixError VixDiskLib_Grow(VixDiskLibConnection connection, const char *path, VixDiskLibSectorType capacity,
                                     Bool updateGeometry, VixDiskLibProgressFunc progress, void *progressData) {
  static const char call[] = "VixDiskLib_Grow";
  BEGIN;
  VixError err;
  if (forwarding()) {
    GrowFn real = NULL;
    REAL(real, call);
    err = real ? real(connection, path, capacity, updateGeometry, progress, progressData)
               : not_supported(call, "not in the real library");
  } else if (!connection || !path) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_connection(call, connection)) == VIX_OK) {
    err = not_supported(call, HOSTED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_handle(&args, "connection", "conn", connection);
    targs_str(&args, "path", path);
    targs_u64(&args, "capacity", capacity);
    targs_u64(&args, "updateGeometry", (uint64_t)(updateGeometry != 0));
    trace_call(call, &clock_, NULL, &args, 1, err, NULL);
  }
  return err;
}

typedef VixError (*ProgressOnlyFn)(VixDiskLibHandle, VixDiskLibProgressFunc, void *);

/* Shrink and Defragment: a disk handle and a progress callback; hosted disks only. */
static VixError progress_only(const char *call, VixDiskLibHandle handle,
                              VixDiskLibProgressFunc progress, void *progressData) {
  BEGIN;
  VixError err;
  if (forwarding()) {
    ProgressOnlyFn real = NULL;
    REAL(real, call);
    err = real ? real(handle, progress, progressData) : not_supported(call, "not in the real library");
  } else if (!handle) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_disk(call, handle)) == VIX_OK) {
    err = not_supported(call, HOSTED);
  }
  if (TRACING) trace_disk_call(call, &clock_, handle, NULL, err);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Shrink(VixDiskLibHandle handle, VixDiskLibProgressFunc progress, void *progressData) {
  return progress_only("VixDiskLib_Shrink", handle, progress, progressData);
}

SHIM_EXPORT VixError VixDiskLib_Defragment(VixDiskLibHandle handle, VixDiskLibProgressFunc progress,
                                           void *progressData) {
  return progress_only("VixDiskLib_Defragment", handle, progress, progressData);
}

typedef VixError (*RenameFn)(const char *, const char *);

SHIM_EXPORT VixError VixDiskLib_Rename(const char *srcFileName, const char *dstFileName) {
  static const char call[] = "VixDiskLib_Rename";
  BEGIN;
  VixError err;
  if (forwarding()) {
    RenameFn real = NULL;
    REAL(real, call);
    err = real ? real(srcFileName, dstFileName) : not_supported(call, "not in the real library");
  } else if (!srcFileName || !dstFileName) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = agent_ready(call)) == VIX_OK) {
    err = not_supported(call, HOSTED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_str(&args, "srcFileName", srcFileName);
    targs_str(&args, "dstFileName", dstFileName);
    trace_call(call, &clock_, NULL, &args, 1, err, NULL);
  }
  return err;
}

typedef VixError (*CloneFn)(VixDiskLibConnection, const char *, VixDiskLibConnection, const char *,
                            const VixDiskLibCreateParams *, VixDiskLibProgressFunc, void *, Bool);

SHIM_EXPORT VixError VixDiskLib_Clone(VixDiskLibConnection dstConnection, const char *dstPath,
                                      VixDiskLibConnection srcConnection, const char *srcPath,
                                      const VixDiskLibCreateParams *createParams, VixDiskLibProgressFunc progress,
                                      void *progressData, Bool overWrite) {
  static const char call[] = "VixDiskLib_Clone";
  BEGIN;
  VixError err;
  if (forwarding()) {
    CloneFn real = NULL;
    REAL(real, call);
    err = real ? real(dstConnection, dstPath, srcConnection, srcPath, createParams, progress, progressData, overWrite)
               : not_supported(call, "not in the real library");
  } else if (!dstConnection || !dstPath || !srcConnection || !srcPath) {
    err = VIX_E_INVALID_ARG; /* createParams may be NULL: a remote destination ignores them */
  } else if ((err = sim_connection(call, dstConnection)) == VIX_OK &&
             (err = sim_connection(call, srcConnection)) == VIX_OK) {
    err = not_supported(call, NOT_SIMULATED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_handle(&args, "dstConnection", "conn", dstConnection);
    targs_str(&args, "dstPath", dstPath);
    targs_handle(&args, "srcConnection", "conn", srcConnection);
    targs_str(&args, "srcPath", srcPath);
    if (createParams) targs_u64(&args, "diskType", (uint64_t)createParams->diskType);
    targs_u64(&args, "overWrite", (uint64_t)(overWrite != 0));
    trace_call(call, &clock_, NULL, &args, 1, err, NULL);
  }
  return err;
}

typedef VixError (*IsAttachPossibleFn)(VixDiskLibHandle, VixDiskLibHandle);

SHIM_EXPORT VixError VixDiskLib_IsAttachPossible(VixDiskLibHandle parent, VixDiskLibHandle child) {
  static const char call[] = "VixDiskLib_IsAttachPossible";
  BEGIN;
  VixError err;
  if (forwarding()) {
    IsAttachPossibleFn real = NULL;
    REAL(real, call);
    err = real ? real(parent, child) : not_supported(call, "not in the real library");
  } else if (!parent || !child) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_disk(call, parent)) == VIX_OK && (err = sim_disk(call, child)) == VIX_OK) {
    err = not_supported(call, NOT_SIMULATED);
  }
  if (TRACING) { /* as Attach: the parent in args, the child as the handle */
    TraceArgs args;
    targs_init(&args);
    targs_handle(&args, "parent", "disk", parent);
    trace_disk_call(call, &clock_, child, &args, err);
  }
  return err;
}

typedef VixError (*SpaceNeededFn)(VixDiskLibHandle, VixDiskLibDiskType, uint64_t *);

SHIM_EXPORT VixError VixDiskLib_SpaceNeededForClone(VixDiskLibHandle handle, VixDiskLibDiskType cloneDiskType,
                                                    uint64_t *spaceNeeded) {
  static const char call[] = "VixDiskLib_SpaceNeededForClone";
  BEGIN;
  VixError err;
  if (forwarding()) {
    SpaceNeededFn real = NULL;
    REAL(real, call);
    err = real ? real(handle, cloneDiskType, spaceNeeded) : not_supported(call, "not in the real library");
  } else if (!handle || !spaceNeeded) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_disk(call, handle)) == VIX_OK) {
    err = not_supported(call, NOT_SIMULATED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_u64(&args, "cloneDiskType", (uint64_t)cloneDiskType);
    if (err == VIX_OK && spaceNeeded) targs_u64(&args, "spaceNeeded", *spaceNeeded);
    trace_disk_call(call, &clock_, handle, &args, err);
  }
  return err;
}

typedef VixError (*CheckRepairFn)(VixDiskLibConnection, const char *, Bool);

SHIM_EXPORT VixError VixDiskLib_CheckRepair(VixDiskLibConnection connection, const char *filename, Bool repair) {
  static const char call[] = "VixDiskLib_CheckRepair";
  BEGIN;
  VixError err;
  if (forwarding()) {
    CheckRepairFn real = NULL;
    REAL(real, call);
    err = real ? real(connection, filename, repair) : not_supported(call, "not in the real library");
  } else if (!connection || !filename) {
    err = VIX_E_INVALID_ARG;
  } else if ((err = sim_connection(call, connection)) == VIX_OK) {
    err = not_supported(call, NOT_SIMULATED);
  }
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_handle(&args, "connection", "conn", connection);
    targs_str(&args, "filename", filename);
    targs_u64(&args, "repair", (uint64_t)(repair != 0));
    trace_call(call, &clock_, NULL, &args, 1, err, NULL);
  }
  return err;
}
