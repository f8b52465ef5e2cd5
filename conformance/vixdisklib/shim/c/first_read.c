/*
 * first_read.c - a test hook of the harness's own simulated library (never of VMware's): the harness holds a
 * product at its first disk Read, as it holds its in-process library (R2 starts host maintenance there, D5
 * kills the backup there).
 *
 * Only with VDDKC_SHIM_FIRST_READ=<folder> in the product's environment, and only in simulated mode (the
 * tracing library, forward.c, never looks at it): the process's first Read or ReadAsync - exactly once per
 * process, whichever thread gets there first - writes <folder>/reached-<pid>.json (a temporary file renamed
 * into place) holding {"pid", "tid", "transport", "path"} (the disk's path as Open was given it, else null),
 * then waits until <folder>/go exists (checked every 20 ms) and performs the read normally. Any other Read or
 * ReadAsync arriving meanwhile waits too, so the product reads nothing while the harness acts.
 *
 * While it waits, a process whose parent is gone (getppid() is no longer the one of InitEx: the harness that
 * started it died or was killed) ends with _exit(137), as if killed: a product must not hang forever on a
 * harness that will never answer. Its private agent then stops too (it watches this process); what the backup
 * had set up on the server (a snapshot, hot-added disks) stays, as a killed product's would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "trace.h"

#define POLL_MS 20
#define EXIT_PARENT_GONE 137 /* what a shell reports for SIGKILL: the product ends as a killed one would */

enum { NOT_REACHED, WAITING, RELEASED };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released = PTHREAD_COND_INITIALIZER;
static int state = NOT_REACHED; /* once RELEASED, for the rest of the process */
static pid_t armed_pid, armed_parent;

void first_read_arm(void) {
  pthread_mutex_lock(&lock);
  armed_pid = getpid();
  armed_parent = getppid();
  pthread_mutex_unlock(&lock);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* <folder>/reached-<pid>.json, written whole under a temporary name first; 0 on success. */
static int write_report(const char *folder, const char *transport, const char *path) {
  TraceArgs args;
  targs_init(&args);
  targs_u64(&args, "pid", (uint64_t)getpid());
  targs_u64(&args, "tid", shim_tid());
  targs_str(&args, "transport", transport);
  targs_str(&args, "path", path);
  char partial[PATH_MAX], final[PATH_MAX];
  if ((size_t)snprintf(partial, sizeof partial, "%s/.reached-%d.tmp", folder, (int)getpid()) >= sizeof partial ||
      (size_t)snprintf(final, sizeof final, "%s/reached-%d.json", folder, (int)getpid()) >= sizeof final) {
    errno = ENAMETOOLONG;
    return -1;
  }
  FILE *out = fopen(partial, "we");
  if (!out) return -1;
  int failed = fprintf(out, "{%s}\n", args.text) < 0;
  failed |= fclose(out) != 0;
  if (failed || rename(partial, final) != 0) {
    int saved = errno;
    unlink(partial);
    errno = saved;
    return -1;
  }
  return 0;
}

/* Poll for <folder>/go; _exit(137) if the parent of InitEx is gone meanwhile. */
static void wait_for_go(const char *folder, pid_t parent) {
  char go[PATH_MAX];
  snprintf(go, sizeof go, "%s/go", folder);
  for (;;) {
    if (access(go, F_OK) == 0) return;
    if (getppid() != parent) {
      shim_log(1, "VDDKC_SHIM_FIRST_READ: the harness that started this process is gone: exiting with %d",
               EXIT_PARENT_GONE);
      _exit(EXIT_PARENT_GONE);
    }
    sleep_ms(POLL_MS);
  }
}

int first_read_pending(void) { return __atomic_load_n(&state, __ATOMIC_ACQUIRE) != RELEASED; }

void first_read(const char *transport, const char *path) {
  if (!first_read_pending()) return; /* the usual case: one load per read */
  pthread_mutex_lock(&lock);
  if (state == RELEASED || armed_pid != getpid()) {
    /* released, or no InitEx in this process (a forked child: its reads fail, the session is its parent's) */
    pthread_mutex_unlock(&lock);
    return;
  }
  const char *folder = getenv("VDDKC_SHIM_FIRST_READ");
  if (!folder || !*folder) { /* no hook asked for: never again looked at */
    __atomic_store_n(&state, RELEASED, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&lock);
    return;
  }
  if (state == WAITING) { /* another thread holds the first read: this one waits with it */
    while (state == WAITING) pthread_cond_wait(&released, &lock);
    pthread_mutex_unlock(&lock);
    return;
  }
  state = WAITING;
  pid_t parent = armed_parent;
  char where[PATH_MAX];
  snprintf(where, sizeof where, "%s", folder);
  pthread_mutex_unlock(&lock);

  if (write_report(where, transport, path) == 0) wait_for_go(where, parent);
  else shim_log(1, "VDDKC_SHIM_FIRST_READ: cannot write the first-read report in %s: %s", where, strerror(errno));

  pthread_mutex_lock(&lock);
  __atomic_store_n(&state, RELEASED, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&released);
  pthread_mutex_unlock(&lock);
}
