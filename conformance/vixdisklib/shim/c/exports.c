/*
 * exports.c - the VixDiskLib C API a product links against. Every function records one trace line (when
 * VDDKC_TRACE is set) and calls the process's backend: the simulated agent or VMware's real library.
 * Nothing here changes what the backend does; the trace is what the usage-rule checker judges.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "trace.h"

static pthread_once_t backend_once = PTHREAD_ONCE_INIT;
static ShimBackend chosen;

static void choose_backend(void) {
  char why[512] = "";
  if (getenv("VDDKC_SHIM_FORWARD") && *getenv("VDDKC_SHIM_FORWARD")) {
    if (forward_backend(&chosen, why, sizeof why) == 0) return;
    shim_log(1, "tracing library: %s", why); /* forward_backend left a backend that fails every call */
    return;
  }
  agent_backend(&chosen);
}

const ShimBackend *shim_backend(void) {
  pthread_once(&backend_once, choose_backend);
  return &chosen;
}

#define B shim_backend()
#define BEGIN TraceClock clock_ = {0, 0}; (void)shim_take_error_text(); if (trace_enabled()) trace_clock(&clock_)
#define TRACING trace_enabled()

static void name_of(char *out, size_t size, const char *kind, const void *handle) {
  trace_handle_name(out, size, kind, handle);
}

SHIM_EXPORT VixError VixDiskLib_InitEx(uint32_t major, uint32_t minor, VixDiskLibGenericLogFunc *log,
                                       VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic,
                                       const char *libDir, const char *configFile) {
  trace_refresh();
  BEGIN;
  TraceArgs args;
  if (TRACING) {
    /* before the backend starts its own threads: which of the product's threads predate InitEx (R1) */
    targs_init(&args);
    targs_u64(&args, "major", major);
    targs_u64(&args, "minor", minor);
    targs_str(&args, "libDir", libDir);
    targs_str(&args, "configFile", configFile);
    targs_other_threads(&args, "threads_before");
    trace_start(B->mode, B->library);
  }
  VixError err = B->InitEx(major, minor, log, warn, panic, libDir, configFile);
  if (TRACING) trace_call("VixDiskLib_InitEx", &clock_, NULL, &args, 1, err, NULL);
  return err;
}

SHIM_EXPORT void VixDiskLib_Exit(void) {
  BEGIN;
  B->Exit();
  if (TRACING) trace_call("VixDiskLib_Exit", &clock_, NULL, NULL, 0, VIX_OK, NULL);
}

SHIM_EXPORT const char *VixDiskLib_ListTransportModes(void) {
  BEGIN;
  const char *modes = B->ListTransportModes();
  if (TRACING) trace_call("VixDiskLib_ListTransportModes", &clock_, NULL, NULL, 0, VIX_OK, modes);
  return modes;
}

SHIM_EXPORT VixDiskLibConnectParams *VixDiskLib_AllocateConnectParams(void) {
  BEGIN;
  VixDiskLibConnectParams *params = B->AllocateConnectParams();
  if (TRACING) trace_call("VixDiskLib_AllocateConnectParams", &clock_, NULL, NULL, 0, VIX_OK, NULL);
  return params;
}

SHIM_EXPORT void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *params) {
  BEGIN;
  B->FreeConnectParams(params);
  if (TRACING) trace_call("VixDiskLib_FreeConnectParams", &clock_, NULL, NULL, 0, VIX_OK, NULL);
}

SHIM_EXPORT VixError VixDiskLib_ConnectEx(const VixDiskLibConnectParams *params, Bool readOnly,
                                          const char *snapshotRef, const char *transportModes,
                                          VixDiskLibConnection *connection) {
  BEGIN;
  VixError err = B->ConnectEx(params, readOnly, snapshotRef, transportModes, connection);
  if (TRACING) {
    TraceArgs args;
    char handle[64] = "";
    targs_init(&args);
    targs_params(&args, "params", params);
    targs_u64(&args, "readOnly", (uint64_t)(readOnly != 0));
    targs_str(&args, "snapshotRef", snapshotRef);
    targs_str(&args, "transportModes", transportModes);
    if (err == VIX_OK && connection) name_of(handle, sizeof handle, "conn", *connection);
    trace_call("VixDiskLib_ConnectEx", &clock_, handle, &args, 1, err, NULL);
  }
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Disconnect(VixDiskLibConnection connection) {
  BEGIN;
  VixError err = B->Disconnect(connection);
  if (TRACING) {
    char handle[64];
    name_of(handle, sizeof handle, "conn", connection);
    trace_call("VixDiskLib_Disconnect", &clock_, handle, NULL, 1, err, NULL);
  }
  return err;
}

static void trace_access(const char *call, const TraceClock *clock, const VixDiskLibConnectParams *params,
                         const char *identity, VixError err) {
  TraceArgs args;
  targs_init(&args);
  targs_params(&args, "params", params);
  targs_str(&args, "identity", identity);
  trace_call(call, clock, NULL, &args, 1, err, NULL);
}

SHIM_EXPORT VixError VixDiskLib_PrepareForAccess(const VixDiskLibConnectParams *params, const char *identity) {
  BEGIN;
  VixError err = B->PrepareForAccess(params, identity);
  if (TRACING) trace_access("VixDiskLib_PrepareForAccess", &clock_, params, identity, err);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_EndAccess(const VixDiskLibConnectParams *params, const char *identity) {
  BEGIN;
  VixError err = B->EndAccess(params, identity);
  if (TRACING) trace_access("VixDiskLib_EndAccess", &clock_, params, identity, err);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Cleanup(const VixDiskLibConnectParams *params, uint32_t *numCleanedUp,
                                        uint32_t *numRemaining) {
  BEGIN;
  uint32_t cleaned = 0, remaining = 0;
  VixError err = B->Cleanup(params, &cleaned, &remaining);
  if (numCleanedUp) *numCleanedUp = cleaned;
  if (numRemaining) *numRemaining = remaining;
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_params(&args, "params", params);
    targs_u64(&args, "numCleanedUp", cleaned);
    targs_u64(&args, "numRemaining", remaining);
    trace_call("VixDiskLib_Cleanup", &clock_, NULL, &args, 1, err, NULL);
  }
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Open(VixDiskLibConnection connection, const char *path, uint32_t flags,
                                     VixDiskLibHandle *handle) {
  BEGIN;
  VixError err = B->Open(connection, path, flags, handle);
  if (TRACING) {
    TraceArgs args;
    char name[64] = "";
    targs_init(&args);
    targs_handle(&args, "connection", "conn", connection);
    targs_str(&args, "path", path);
    targs_u64(&args, "flags", flags);
    if (err == VIX_OK && handle && *handle) {
      name_of(name, sizeof name, "disk", *handle);
      targs_str(&args, "transport", B->GetTransportMode(*handle));
    }
    trace_call("VixDiskLib_Open", &clock_, name, &args, 1, err, NULL);
  }
  return err;
}

/* A call on one disk handle with no other argument. */
static void trace_disk(const char *call, const TraceClock *clock, VixDiskLibHandle handle, VixError err,
                       int has_error, const char *result) {
  char name[64];
  name_of(name, sizeof name, "disk", handle);
  trace_call(call, clock, name, NULL, has_error, err, result);
}

SHIM_EXPORT VixError VixDiskLib_Close(VixDiskLibHandle handle) {
  BEGIN;
  VixError err = B->Close(handle);
  if (TRACING) trace_disk("VixDiskLib_Close", &clock_, handle, err, 1, NULL);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_GetInfo(VixDiskLibHandle handle, VixDiskLibInfo **info) {
  BEGIN;
  VixError err = B->GetInfo(handle, info);
  if (TRACING) trace_disk("VixDiskLib_GetInfo", &clock_, handle, err, 1, NULL);
  return err;
}

SHIM_EXPORT void VixDiskLib_FreeInfo(VixDiskLibInfo *info) {
  BEGIN;
  B->FreeInfo(info);
  if (TRACING) trace_call("VixDiskLib_FreeInfo", &clock_, NULL, NULL, 0, VIX_OK, NULL);
}

SHIM_EXPORT const char *VixDiskLib_GetTransportMode(VixDiskLibHandle handle) {
  BEGIN;
  const char *mode = B->GetTransportMode(handle);
  if (TRACING) trace_disk("VixDiskLib_GetTransportMode", &clock_, handle, VIX_OK, 0, mode);
  return mode;
}

static void trace_io(const char *call, const TraceClock *clock, VixDiskLibHandle handle, VixDiskLibSectorType start,
                     VixDiskLibSectorType count, VixError err) {
  TraceArgs args;
  char name[64];
  targs_init(&args);
  targs_u64(&args, "startSector", start);
  targs_u64(&args, "numSectors", count);
  name_of(name, sizeof name, "disk", handle);
  trace_call(call, clock, name, &args, 1, err, NULL);
}

SHIM_EXPORT VixError VixDiskLib_Read(VixDiskLibHandle handle, VixDiskLibSectorType start, VixDiskLibSectorType count,
                                     uint8_t *buffer) {
  BEGIN;
  VixError err = B->Read(handle, start, count, buffer);
  if (TRACING) trace_io("VixDiskLib_Read", &clock_, handle, start, count, err);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Write(VixDiskLibHandle handle, VixDiskLibSectorType start,
                                      VixDiskLibSectorType count, const uint8_t *buffer) {
  BEGIN;
  VixError err = B->Write(handle, start, count, buffer);
  if (TRACING) trace_io("VixDiskLib_Write", &clock_, handle, start, count, err);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_ReadAsync(VixDiskLibHandle handle, VixDiskLibSectorType start,
                                          VixDiskLibSectorType count, uint8_t *buffer,
                                          VixDiskLibCompletionCB callback, void *data) {
  BEGIN;
  VixError err = B->ReadAsync(handle, start, count, buffer, callback, data);
  if (TRACING) trace_io("VixDiskLib_ReadAsync", &clock_, handle, start, count, err);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_WriteAsync(VixDiskLibHandle handle, VixDiskLibSectorType start,
                                           VixDiskLibSectorType count, const uint8_t *buffer,
                                           VixDiskLibCompletionCB callback, void *data) {
  BEGIN;
  VixError err = B->WriteAsync(handle, start, count, buffer, callback, data);
  if (TRACING) trace_io("VixDiskLib_WriteAsync", &clock_, handle, start, count, err);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Wait(VixDiskLibHandle handle) {
  BEGIN;
  VixError err = B->Wait(handle);
  if (TRACING) trace_disk("VixDiskLib_Wait", &clock_, handle, err, 1, NULL);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Flush(VixDiskLibHandle handle) {
  BEGIN;
  VixError err = B->Flush(handle);
  if (TRACING) trace_disk("VixDiskLib_Flush", &clock_, handle, err, 1, NULL);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_QueryAllocatedBlocks(VixDiskLibHandle handle, VixDiskLibSectorType start,
                                                     VixDiskLibSectorType count, VixDiskLibSectorType chunk,
                                                     VixDiskLibBlockList **list) {
  BEGIN;
  VixError err = B->QueryAllocatedBlocks(handle, start, count, chunk, list);
  if (TRACING) {
    TraceArgs args;
    char name[64];
    targs_init(&args);
    targs_u64(&args, "startSector", start);
    targs_u64(&args, "numSectors", count);
    targs_u64(&args, "chunkSize", chunk);
    if (err == VIX_OK && list && *list) targs_u64(&args, "numBlocks", (*list)->numBlocks);
    name_of(name, sizeof name, "disk", handle);
    trace_call("VixDiskLib_QueryAllocatedBlocks", &clock_, name, &args, 1, err, NULL);
  }
  return err;
}

SHIM_EXPORT VixError VixDiskLib_FreeBlockList(VixDiskLibBlockList *list) {
  BEGIN;
  VixError err = B->FreeBlockList(list);
  if (TRACING) trace_call("VixDiskLib_FreeBlockList", &clock_, NULL, NULL, 1, err, NULL);
  return err;
}

SHIM_EXPORT VixError VixDiskLib_Attach(VixDiskLibHandle parent, VixDiskLibHandle child) {
  BEGIN;
  VixError err = B->Attach(parent, child);
  if (TRACING) {
    TraceArgs args;
    char name[64];
    targs_init(&args);
    targs_handle(&args, "parent", "disk", parent);
    name_of(name, sizeof name, "disk", child);
    trace_call("VixDiskLib_Attach", &clock_, name, &args, 1, err, NULL);
  }
  return err;
}

SHIM_EXPORT char *VixDiskLib_GetErrorText(VixError err, const char *locale) {
  BEGIN;
  char *text = B->GetErrorText(err, locale);
  if (TRACING) {
    TraceArgs args;
    targs_init(&args);
    targs_u64(&args, "err", err);
    trace_call("VixDiskLib_GetErrorText", &clock_, NULL, &args, 0, VIX_OK, NULL);
  }
  return text;
}

SHIM_EXPORT void VixDiskLib_FreeErrorText(char *text) {
  BEGIN;
  B->FreeErrorText(text);
  if (TRACING) trace_call("VixDiskLib_FreeErrorText", &clock_, NULL, NULL, 0, VIX_OK, NULL);
}
