/* log.c - messages of the library to the product's log, warning and panic callbacks (given at InitEx). */
#include <pthread.h>
#include <stdio.h>

#include "shim.h"
#include "trace.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static VixDiskLibGenericLogFunc *log_fn, *warn_fn, *panic_fn;

void shim_set_log(VixDiskLibGenericLogFunc *log, VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic) {
  pthread_mutex_lock(&log_lock);
  log_fn = log;
  warn_fn = warn;
  panic_fn = panic;
  pthread_mutex_unlock(&log_lock);
}

static void deliver(VixDiskLibGenericLogFunc *fn, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fn(fmt, args);
  va_end(args);
}

/* warning: 0 log, 1 warning, 2 panic (the product's panic callback, and a panic line in the trace; the
   library then fails the call instead of aborting the product). */
void shim_log(int warning, const char *fmt, ...) {
  char text[2048];
  va_list args;
  va_start(args, fmt);
  vsnprintf(text, sizeof text, fmt, args);
  va_end(args);
  pthread_mutex_lock(&log_lock);
  VixDiskLibGenericLogFunc *fn = warning == 2 ? panic_fn : warning ? warn_fn : log_fn;
  pthread_mutex_unlock(&log_lock);
  if (warning == 2) trace_panic(text);
  if (fn)
    deliver(fn, "%s\n", text);
  else if (warning)
    fprintf(stderr, "VixDiskLib: %s\n", text);
}
