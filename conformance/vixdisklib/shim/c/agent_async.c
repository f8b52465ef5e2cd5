/*
 * agent_async.c - completion callbacks of ReadAsync/WriteAsync, run on the library's own completion thread
 * (as VDDK runs them on its threads), and Wait's "every callback of this disk has run".
 */
#include <pthread.h>
#include <stdlib.h>

#include "agent.h"

typedef struct Done {
  struct Done *next;
  uint64_t disk;
  VixDiskLibCompletionCB callback;
  void *data;
  VixError result;
} Done;

typedef struct Pending { struct Pending *next; uint64_t disk; long count; } Pending;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static Done *head, *tail;
static Pending *pending;
static int running, stopping;
static pthread_t worker;

static Pending *pending_of(uint64_t disk, int create) {
  for (Pending *p = pending; p; p = p->next)
    if (p->disk == disk) return p;
  if (!create) return NULL;
  Pending *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->disk = disk;
  p->next = pending;
  pending = p;
  return p;
}

static void *complete_loop(void *unused) {
  (void)unused;
  pthread_mutex_lock(&lock);
  for (;;) {
    while (!head && !stopping) pthread_cond_wait(&changed, &lock);
    if (!head) break;
    Done *done = head;
    head = done->next;
    if (!head) tail = NULL;
    pthread_mutex_unlock(&lock);
    done->callback(done->data, done->result);
    pthread_mutex_lock(&lock);
    Pending *p = pending_of(done->disk, 0);
    if (p) p->count--;
    free(done);
    pthread_cond_broadcast(&changed);
  }
  pthread_mutex_unlock(&lock);
  return NULL;
}

int async_start(void) {
  pthread_mutex_lock(&lock);
  stopping = 0;
  int rc = running ? 0 : pthread_create(&worker, NULL, complete_loop, NULL);
  if (rc == 0) running = 1;
  pthread_mutex_unlock(&lock);
  return rc;
}

void async_stop(void) {
  pthread_mutex_lock(&lock);
  if (!running) { pthread_mutex_unlock(&lock); return; }
  stopping = 1; /* the loop runs every queued callback before it ends */
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
  pthread_join(worker, NULL);
  pthread_mutex_lock(&lock);
  running = 0;
  while (pending) { Pending *next = pending->next; free(pending); pending = next; }
  pthread_mutex_unlock(&lock);
}

void async_complete(uint64_t disk, VixDiskLibCompletionCB callback, void *data, VixError result) {
  Done *done = calloc(1, sizeof *done);
  if (!done) { callback(data, VIX_E_OUT_OF_MEMORY); return; }
  *done = (Done){NULL, disk, callback, data, result};
  pthread_mutex_lock(&lock);
  Pending *p = pending_of(disk, 1);
  if (p) p->count++;
  if (tail) tail->next = done; else head = done;
  tail = done;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

void async_wait(uint64_t disk) {
  pthread_mutex_lock(&lock);
  for (Pending *p; (p = pending_of(disk, 0)) && p->count > 0 && running;) pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
}
