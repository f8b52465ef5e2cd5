/*
 * shim.h - what the parts of the simulated/tracing libvixDiskLib share.
 *
 * The library has one job per file: exports.c is the ABI (every exported function: trace, then the chosen
 * backend), trace.c writes the call trace, agent_client.c is the backend that forwards to the harness's
 * simulated library over a Unix socket (wire.c encodes), forward.c is the backend that forwards to VMware's
 * real library (the tracing library). The backend is chosen once per process: VDDKC_SHIM_FORWARD=<libdir>
 * selects forward, anything else the simulated agent.
 */
#ifndef VDDKC_SHIM_H
#define VDDKC_SHIM_H

#include "vddkc_vixdisklib.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/* The functions of one backend, with the C API's own signatures. */
typedef struct {
  const char *mode; /* "simulated" or "forward" */
  const char *library; /* what the backend reaches: the agent's socket or the real library's path */
  VixError (*InitEx)(uint32_t, uint32_t, VixDiskLibGenericLogFunc *, VixDiskLibGenericLogFunc *,
                     VixDiskLibGenericLogFunc *, const char *, const char *);
  void (*Exit)(void);
  const char *(*ListTransportModes)(void);
  VixDiskLibConnectParams *(*AllocateConnectParams)(void);
  void (*FreeConnectParams)(VixDiskLibConnectParams *);
  VixError (*ConnectEx)(const VixDiskLibConnectParams *, Bool, const char *, const char *, VixDiskLibConnection *);
  VixError (*Disconnect)(VixDiskLibConnection);
  VixError (*PrepareForAccess)(const VixDiskLibConnectParams *, const char *);
  VixError (*EndAccess)(const VixDiskLibConnectParams *, const char *);
  VixError (*Cleanup)(const VixDiskLibConnectParams *, uint32_t *, uint32_t *);
  VixError (*Open)(VixDiskLibConnection, const char *, uint32_t, VixDiskLibHandle *);
  VixError (*Close)(VixDiskLibHandle);
  VixError (*GetInfo)(VixDiskLibHandle, VixDiskLibInfo **);
  void (*FreeInfo)(VixDiskLibInfo *);
  const char *(*GetTransportMode)(VixDiskLibHandle);
  VixError (*Read)(VixDiskLibHandle, VixDiskLibSectorType, VixDiskLibSectorType, uint8_t *);
  VixError (*Write)(VixDiskLibHandle, VixDiskLibSectorType, VixDiskLibSectorType, const uint8_t *);
  VixError (*ReadAsync)(VixDiskLibHandle, VixDiskLibSectorType, VixDiskLibSectorType, uint8_t *,
                        VixDiskLibCompletionCB, void *);
  VixError (*WriteAsync)(VixDiskLibHandle, VixDiskLibSectorType, VixDiskLibSectorType, const uint8_t *,
                         VixDiskLibCompletionCB, void *);
  VixError (*Wait)(VixDiskLibHandle);
  VixError (*Flush)(VixDiskLibHandle);
  VixError (*QueryAllocatedBlocks)(VixDiskLibHandle, VixDiskLibSectorType, VixDiskLibSectorType,
                                   VixDiskLibSectorType, VixDiskLibBlockList **);
  VixError (*FreeBlockList)(VixDiskLibBlockList *);
  VixError (*Attach)(VixDiskLibHandle, VixDiskLibHandle);
  char *(*GetErrorText)(VixError, const char *);
  void (*FreeErrorText)(char *);
} ShimBackend;

/* The backend of this process (chosen on first use; never NULL). */
const ShimBackend *shim_backend(void);
/* Fill `backend` with the simulated agent's functions / the real library's (forward.c). 0 on success. */
void agent_backend(ShimBackend *backend);
int forward_backend(ShimBackend *backend, char *why, size_t why_len);

/* The real library's function `name` in forward mode (NULL when it lacks it, or when not forwarding). */
void *forward_symbol(const char *name);

/* Connect parameters the simulated backend hands out or keeps (exports_more.c):
   params_allocate/params_free back AllocateConnectParams/FreeConnectParams; a struct from GetConnectParams
   has library-owned strings, freed with it, a struct from AllocateConnectParams has the caller's, never freed.
   params_connected/params_disconnected/params_forget_all keep a copy of each open connection's parameters. */
VixDiskLibConnectParams *params_allocate(void);
void params_free(VixDiskLibConnectParams *params);
void params_connected(VixDiskLibConnection connection, const VixDiskLibConnectParams *params);
void params_disconnected(VixDiskLibConnection connection);
void params_forget_all(void);

/* Log through the product's callbacks given at InitEx (stderr before InitEx). */
void shim_log(int warning, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void shim_set_log(VixDiskLibGenericLogFunc *log, VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic);

/* The warnings the library logged on this thread since the call began (the agent's detail of a failure among
   them), for the call's trace line; taking them clears them. NULL when there are none. */
void shim_set_error_text(const char *text);
const char *shim_take_error_text(void);

/* The Linux thread id of the caller. */
uint64_t shim_tid(void);

#endif
