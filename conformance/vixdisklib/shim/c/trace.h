/*
 * trace.h - one JSON line per VixDiskLib call, appended to the file named by VDDKC_TRACE.
 * The format is the contract read by conformance/vixdisklib/trace_format.py (its docstring describes every field).
 */
#ifndef VDDKC_TRACE_H
#define VDDKC_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "vddkc_vixdisklib.h"

/* Arguments of one call as the members of a JSON object (secrets never enter: see targs_params). */
typedef struct { char text[6144]; size_t len; } TraceArgs;
typedef struct { double wall; uint64_t mono_ns; } TraceClock;

int trace_enabled(void); /* VDDKC_TRACE was set at the last InitEx (or at the first call) */
void trace_refresh(void); /* read VDDKC_TRACE again (every InitEx) */
void trace_clock(TraceClock *clock);
void targs_init(TraceArgs *args);
void targs_str(TraceArgs *args, const char *key, const char *value);
void targs_u64(TraceArgs *args, const char *key, uint64_t value);
void targs_handle(TraceArgs *args, const char *key, const char *kind, const void *handle);
void targs_params(TraceArgs *args, const char *key, const VixDiskLibConnectParams *params);
/* The Linux thread ids of this process other than the caller, as a JSON array member. */
void targs_other_threads(TraceArgs *args, const char *key);

/* `error`: the call's VixError; `has_error` 0 for void functions. VIX_OK and VIX_ASYNC are written as null.
   `result`: a string result (GetTransportMode, ListTransportModes) or NULL. */
void trace_call(const char *call, const TraceClock *started, const char *handle, const TraceArgs *args,
                int has_error, VixError error, const char *result);
/* The process's start line (once per process), and a panic line. */
void trace_start(const char *mode, const char *library);
void trace_panic(const char *message);
/* "disk-<hex>" / "conn-<hex>" for a handle, or "" for NULL. */
void trace_handle_name(char *out, size_t size, const char *kind, const void *handle);

#endif
