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
  if (warning) shim_set_error_text(text);
  if (fn)
    deliver(fn, "%s\n", text);
  else if (warning)
    fprintf(stderr, "VixDiskLib: %s\n", text);
}

static __thread char error_text[1024];
static __thread size_t error_len;

/* Every warning of the current call is kept (joined with "; "): with the call's error it is the library's own
   account of the failure, for the trace. */
void shim_set_error_text(const char *text) {
  if (!text || !*text) return;
  int n = snprintf(error_text + error_len, sizeof error_text - error_len, "%s%s", error_len ? "; " : "", text);
  if (n > 0) error_len = error_len + (size_t)n < sizeof error_text ? error_len + (size_t)n : sizeof error_text - 1;
}

const char *shim_take_error_text(void) {
  if (!error_len) return NULL;
  error_len = 0;
  return error_text; /* valid until the thread's next warning */
}
