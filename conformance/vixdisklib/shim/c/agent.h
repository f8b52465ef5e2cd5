/* agent.h - the simulated backend's session with its agent process (agent_session.c) and its async
   completions (agent_async.c), used by the API functions of agent_calls.c. */
#ifndef VDDKC_AGENT_H
#define VDDKC_AGENT_H

#include "shim.h"
#include "wire.h"

/* What the library returns when the agent is gone (it died, or stopped answering within VDDKC_SHIM_TIMEOUT). */
#define AGENT_LOST VIX_E_HOST_CONNECTION_LOST

/* A decoded response: its error and, when the call succeeded, its results in `in`. Free with agent_done. */
typedef struct { uint8_t *body; WireIn in; VixError error; } AgentReply;

/* Start a session: connect (spawning a private agent unless VDDKC_SHIM_AGENT names one), HELLO, INIT. */
VixError agent_start(uint32_t major, uint32_t minor, const char *libDir, const char *configFile, char *modes,
                     size_t modes_size);
/* EXIT, close every connection, stop a private agent. Safe to call when no session is open. */
void agent_stop(void);
/* VIX_OK when this process may call now (a session is open and this is not a forked child). */
VixError agent_ready(const char *call);
/* Send `request` (started with wire_start and the op) on this thread's connection; read the reply. */
VixError agent_call(const char *call, WireOut *request, AgentReply *reply);
void agent_done(AgentReply *reply);

/* Async completions: run `callback` on the completion thread; wait for a disk's outstanding ones. */
int async_start(void);
void async_stop(void);
void async_complete(uint64_t disk, VixDiskLibCompletionCB callback, void *data, VixError result);
void async_wait(uint64_t disk);

/* The first-read hook (first_read.c), a test hook of the harness, active only with VDDKC_SHIM_FIRST_READ=<folder>
   and only in simulated mode: first_read_arm at every successful InitEx (this process, its parent); before a Read
   or ReadAsync is sent, first_read(transport, path) - which returns at once unless first_read_pending() - holds
   the process's first read until the harness creates <folder>/go (it _exit(137)s if its parent is gone). */
void first_read_arm(void);
int first_read_pending(void);
void first_read(const char *transport, const char *path);

#endif
