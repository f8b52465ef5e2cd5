/* trace.c - the call trace writer (see trace.h). One write(2) per line on an O_APPEND file, so the lines of
   several threads and processes never interleave. */
#define _GNU_SOURCE
#include "trace.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static int trace_fd = -1;
static pid_t trace_pid = 0; /* the process that opened trace_fd (a forked child reopens) */
static pid_t started_pid = 0;
static atomic_uint_fast64_t trace_seq;

uint64_t shim_tid(void) { return (uint64_t)syscall(SYS_gettid); }

static atomic_int trace_state = -1; /* -1 not read yet, 0 off, 1 on */
static char trace_path[4096];

void trace_refresh(void) {
  const char *path = getenv("VDDKC_TRACE");
  pthread_mutex_lock(&trace_lock);
  if (!path || !*path || strlen(path) >= sizeof trace_path) {
    atomic_store(&trace_state, 0);
  } else {
    if (strcmp(path, trace_path) != 0 && trace_fd >= 0 && trace_pid == getpid()) {
      close(trace_fd);
      trace_fd = -1;
      started_pid = 0;
    }
    strcpy(trace_path, path);
    atomic_store(&trace_state, 1);
  }
  pthread_mutex_unlock(&trace_lock);
}

int trace_enabled(void) {
  int state = atomic_load(&trace_state);
  if (state < 0) {
    trace_refresh();
    state = atomic_load(&trace_state);
  }
  return state == 1;
}

/* The trace file of this process, opened on first use. Caller holds trace_lock. */
static int trace_file(void) {
  if (trace_fd >= 0 && trace_pid == getpid()) return trace_fd;
  if (!trace_path[0]) return -1;
  trace_fd = open(trace_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  trace_pid = getpid();
  atomic_store(&trace_seq, 0);
  return trace_fd;
}

void trace_clock(TraceClock *clock) {
  struct timespec wall, mono;
  clock_gettime(CLOCK_REALTIME, &wall);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock->wall = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
  clock->mono_ns = (uint64_t)mono.tv_sec * 1000000000ull + (uint64_t)mono.tv_nsec;
}

static void append(TraceArgs *args, const char *text, size_t len) {
  if (args->len + len >= sizeof args->text) return; /* a member too long for the line is left out */
  memcpy(args->text + args->len, text, len);
  args->len += len;
  args->text[args->len] = '\0';
}

static void appendf(TraceArgs *args, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(TraceArgs *args, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) append(args, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if s does not start one. */
static int utf8_length(const unsigned char *s) {
  if (s[0] < 0x80) return 1;
  int n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
  for (int i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return n;
}

/* A JSON string (quoted); at most 1024 bytes of the value, invalid UTF-8 replaced by U+FFFD. */
static void append_json_string(TraceArgs *args, const char *value) {
  if (!value) { append(args, "null", 4); return; }
  append(args, "\"", 1);
  const unsigned char *s = (const unsigned char *)value;
  for (size_t used = 0; *s && used < 1024;) {
    if (*s == '"' || *s == '\\') { char esc[2] = {'\\', (char)*s}; append(args, esc, 2); s++; used++; continue; }
    if (*s < 0x20) { appendf(args, "\\u%04x", *s); s++; used++; continue; }
    int n = utf8_length(s);
    if (n == 0) { append(args, "\\ufffd", 6); s++; used++; continue; }
    append(args, (const char *)s, (size_t)n);
    s += n;
    used += (size_t)n;
  }
  append(args, "\"", 1);
}

static void key(TraceArgs *args, const char *name) {
  if (args->len > 0) append(args, ",", 1);
  append_json_string(args, name);
  append(args, ":", 1);
}

void targs_init(TraceArgs *args) {
  args->len = 0;
  args->text[0] = '\0';
}

void targs_str(TraceArgs *args, const char *name, const char *value) {
  key(args, name);
  append_json_string(args, value);
}

void targs_u64(TraceArgs *args, const char *name, uint64_t value) {
  key(args, name);
  appendf(args, "%llu", (unsigned long long)value);
}

void trace_handle_name(char *out, size_t size, const char *kind, const void *handle) {
  if (!handle) { if (size) out[0] = '\0'; return; }
  snprintf(out, size, "%s-%llx", kind, (unsigned long long)(uintptr_t)handle);
}

void targs_handle(TraceArgs *args, const char *name, const char *kind, const void *handle) {
  char text[64];
  trace_handle_name(text, sizeof text, kind, handle);
  targs_str(args, name, handle ? text : NULL);
}

void targs_params(TraceArgs *args, const char *name, const VixDiskLibConnectParams *p) {
  key(args, name);
  if (!p) { append(args, "null", 4); return; }
  TraceArgs inner;
  targs_init(&inner);
  const char *user = NULL, *password = NULL, *cookie = NULL, *secret_key = NULL;
  if (p->credType == VIXDISKLIB_CRED_UID) {
    user = p->creds.uid.userName;
    password = p->creds.uid.password;
  } else if (p->credType == VIXDISKLIB_CRED_SESSIONID) {
    user = p->creds.sessionId.userName;
    cookie = p->creds.sessionId.cookie;
    secret_key = p->creds.sessionId.key;
  }
  targs_str(&inner, "vmxSpec", p->vmxSpec);
  targs_str(&inner, "serverName", p->serverName);
  targs_str(&inner, "thumbPrint", p->thumbPrint);
  targs_u64(&inner, "credType", (uint64_t)p->credType);
  targs_str(&inner, "userName", user);
  targs_u64(&inner, "port", p->port);
  targs_u64(&inner, "nfcHostPort", p->nfcHostPort);
  /* secrets: only whether one was given */
  targs_str(&inner, "password", password ? "<redacted>" : NULL);
  targs_str(&inner, "cookie", cookie ? "<redacted>" : NULL);
  targs_str(&inner, "key", secret_key ? "<redacted>" : NULL);
  if (p->specType == VIXDISKLIB_SPEC_VSTORAGE_OBJECT) targs_str(&inner, "fcdId", p->spec.vStorageObjSpec.id);
  append(args, "{", 1);
  append(args, inner.text, inner.len);
  append(args, "}", 1);
}

void targs_other_threads(TraceArgs *args, const char *name) {
  key(args, name);
  append(args, "[", 1);
  DIR *dir = opendir("/proc/self/task");
  uint64_t self = shim_tid();
  int first = 1;
  struct dirent *entry;
  while (dir && (entry = readdir(dir))) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    uint64_t tid = strtoull(entry->d_name, NULL, 10);
    if (tid == self) continue;
    appendf(args, first ? "%llu" : ",%llu", (unsigned long long)tid);
    first = 0;
  }
  if (dir) closedir(dir);
  append(args, "]", 1);
}

static void write_line(TraceArgs *line) {
  append(line, "}\n", 2);
  if (line->len < 2 || line->text[line->len - 1] != '\n') return; /* never write a cut line */
  pthread_mutex_lock(&trace_lock);
  int fd = trace_file();
  if (fd >= 0 && write(fd, line->text, line->len) < 0) { /* a full disk loses the trace, not the backup */ }
  pthread_mutex_unlock(&trace_lock);
}

/* The library's own words for a failure: the agent's detail, or what the real library's GetErrorText says. */
static void append_error_text(TraceArgs *line, VixError error) {
  const char *detail = shim_take_error_text();
  char *text = NULL;
  if (!detail && strcmp(shim_backend()->mode, "forward") == 0) detail = text = shim_backend()->GetErrorText(error, NULL);
  if (detail) {
    append(line, ",\"error_text\":", 14);
    append_json_string(line, detail);
  }
  if (text) shim_backend()->FreeErrorText(text);
}

void trace_call(const char *call, const TraceClock *started, const char *handle, const TraceArgs *args,
                int has_error, VixError error, const char *result) {
  if (!trace_enabled()) return;
  TraceClock now;
  trace_clock(&now);
  pthread_mutex_lock(&trace_lock); /* open (or reopen after a fork) before numbering: opening resets the count */
  trace_file();
  pthread_mutex_unlock(&trace_lock);
  TraceArgs line;
  targs_init(&line);
  appendf(&line, "{\"v\":1,\"kind\":\"call\",\"pid\":%d,\"seq\":%llu,\"call\":", (int)getpid(),
          (unsigned long long)atomic_fetch_add(&trace_seq, 1) + 1);
  append_json_string(&line, call);
  appendf(&line, ",\"tid\":%llu,\"start\":%.6f,\"duration_ns\":%llu,\"args\":{", (unsigned long long)shim_tid(),
          started->wall, (unsigned long long)(now.mono_ns - started->mono_ns));
  append(&line, args ? args->text : "", args ? args->len : 0);
  append(&line, "},\"handle\":", 11);
  append_json_string(&line, handle && *handle ? handle : NULL);
  if (has_error && error != VIX_OK && error != VIX_ASYNC) {
    appendf(&line, ",\"error\":%llu", (unsigned long long)error);
    append_error_text(&line, error);
  } else
    append(&line, ",\"error\":null", 13);
  if (result) {
    append(&line, ",\"result\":", 10);
    append_json_string(&line, result);
  }
  write_line(&line);
}

void trace_start(const char *mode, const char *library) {
  if (!trace_enabled() || started_pid == getpid()) return;
  started_pid = getpid();
  TraceClock now;
  trace_clock(&now);
  TraceArgs line;
  targs_init(&line);
  appendf(&line, "{\"v\":1,\"kind\":\"start\",\"pid\":%d,\"time\":%.6f,\"mode\":", (int)getpid(), now.wall);
  append_json_string(&line, mode);
  append(&line, ",\"library\":", 11);
  append_json_string(&line, library);
  write_line(&line);
}

void trace_panic(const char *message) {
  if (!trace_enabled()) return;
  TraceClock now;
  trace_clock(&now);
  TraceArgs line;
  targs_init(&line);
  appendf(&line, "{\"v\":1,\"kind\":\"panic\",\"pid\":%d,\"tid\":%llu,\"time\":%.6f,\"message\":", (int)getpid(),
          (unsigned long long)shim_tid(), now.wall);
  append_json_string(&line, message);
  write_line(&line);
}
