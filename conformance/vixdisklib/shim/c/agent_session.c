/*
 * agent_session.c - the simulated backend's link to its agent (conformance/vixdisklib/shim/agent.py):
 * one Unix-socket connection per product thread, joined to this process's session by its token.
 *
 * The agent is VDDKC_SHIM_AGENT (a socket `vddk-conformance sim serve` prints), or a private one this
 * library starts at InitEx and stops at Exit: `<python> -m conformance.vixdisklib.shim.agent --once
 * --parent-pid <pid>`, playing VDDKC_SIM_BUILD (default: the build of the library's major version),
 * VDDKC_SIM_PROXY_VM, VDDKC_SIM_PHYSICAL_PROXY, VDDKC_SIM_FIXED and VDDKC_SIM_FAULTS. It exits with this
 * process, so nothing is left running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#ifndef VDDKC_DEFAULT_PYTHON
#define VDDKC_DEFAULT_PYTHON "python3"
#endif
#ifndef VDDKC_PACKAGE_ROOT
#define VDDKC_PACKAGE_ROOT ""
#endif
#define MAX_CONNECTIONS 1024

extern char **environ;

static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  int open;
  pid_t owner;
  uint64_t generation;
  char token[128];
  char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char private_dir[PATH_MAX];
  pid_t agent;
  int fds[MAX_CONNECTIONS];
  int nfds;
} S;
static __thread int thread_fd = -1;
static __thread uint64_t thread_generation;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long env_seconds(const char *name, long fallback) {
  const char *value = getenv(name);
  long seconds = value && *value ? strtol(value, NULL, 10) : 0;
  return seconds > 0 ? seconds : fallback;
}

static int connect_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  snprintf(address.sun_path, sizeof address.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    close(fd);
    return -1;
  }
  struct timeval timeout = {env_seconds("VDDKC_SHIM_TIMEOUT", 600), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return fd;
}

static const char *default_build(void) {
  return VDDKC_ABI_MAJOR == 6 ? "6.7.3" : VDDKC_ABI_MAJOR == 7 ? "7.0.3" : NULL;
}

/* Start the private agent and wait until its socket answers; 0 on success. Caller holds session_lock. */
static int spawn_agent(void) {
  const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  /* a Unix socket path holds at most 107 bytes: a deep TMPDIR falls back to /tmp */
  if (strlen(tmp) + sizeof "/vddkc-shim-4294967295-XXXXXX/agent.sock" > sizeof S.socket_path) tmp = "/tmp";
  snprintf(S.private_dir, sizeof S.private_dir, "%s/vddkc-shim-%d-XXXXXX", tmp, (int)getpid());
  if (!mkdtemp(S.private_dir)) {
    shim_log(1, "cannot create a folder for the simulated library's agent under %s: %s", tmp, strerror(errno));
    S.private_dir[0] = '\0';
    return -1;
  }
  if ((size_t)snprintf(S.socket_path, sizeof S.socket_path, "%s/agent.sock", S.private_dir) >= sizeof S.socket_path) {
    shim_log(1, "TMPDIR %s is too long for a Unix socket path", tmp);
    return -1;
  }
  const char *build = getenv("VDDKC_SIM_BUILD") && *getenv("VDDKC_SIM_BUILD") ? getenv("VDDKC_SIM_BUILD")
                                                                                : default_build();
  if (!build) {
    shim_log(1, "no simulated VDDK build of major version %d: set VDDKC_SIM_BUILD (e.g. 7.0.3)", VDDKC_ABI_MAJOR);
    return -1;
  }
  const char *python = getenv("VDDKC_SHIM_PYTHON") && *getenv("VDDKC_SHIM_PYTHON") ? getenv("VDDKC_SHIM_PYTHON")
                                                                                    : VDDKC_DEFAULT_PYTHON;
  char parent[32];
  snprintf(parent, sizeof parent, "%d", (int)getpid());
  /* the agent's own log stays out of the product's stderr (VDDK logs through the product's callbacks) */
  const char *level = getenv("VDDKC_SHIM_AGENT_LOG_LEVEL") && *getenv("VDDKC_SHIM_AGENT_LOG_LEVEL")
                          ? getenv("VDDKC_SHIM_AGENT_LOG_LEVEL") : "WARNING";
  const char *argv[26] = {python, "-m", "conformance.vixdisklib.shim.agent", "--socket", S.socket_path,
                          "--parent-pid", parent, "--once", "--build", build, "--log-level", level};
  int argc = 12;
  static const char *const options[][2] = {{"VDDKC_SIM_PROXY_VM", "--proxy-vm"},
                                           {"VDDKC_SIM_PHYSICAL_PROXY", "--physical-proxy"},
                                           {"VDDKC_SIM_FIXED", "--sim-fixed"},
                                           {"VDDKC_SIM_FAULTS", "--sim-fault"}};
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    const char *value = getenv(options[i][0]);
    if (value && *value) {
      argv[argc++] = options[i][1];
      argv[argc++] = value;
    }
  }
  argv[argc] = NULL;
  /* the package on the agent's path: the folder the library was built from, before any PYTHONPATH */
  size_t count = 0;
  while (environ[count]) count++;
  char **envp = calloc(count + 2, sizeof *envp);
  char *pythonpath = NULL;
  if (!envp) return -1;
  size_t n = 0;
  const char *old = getenv("PYTHONPATH");
  if (VDDKC_PACKAGE_ROOT[0] && asprintf(&pythonpath, "PYTHONPATH=%s%s%s", VDDKC_PACKAGE_ROOT, old ? ":" : "",
                                        old ? old : "") > 0)
    envp[n++] = pythonpath;
  for (size_t i = 0; i < count; i++)
    if (!pythonpath || strncmp(environ[i], "PYTHONPATH=", 11) != 0) envp[n++] = environ[i];
  envp[n] = NULL;
  int rc = posix_spawnp(&S.agent, python, NULL, NULL, (char *const *)argv, envp);
  free(pythonpath);
  free(envp);
  if (rc != 0) {
    shim_log(1, "cannot start the simulated library's agent with %s: %s (set VDDKC_SHIM_PYTHON to a Python "
                "that has vddk-conformance installed)", python, strerror(rc));
    S.agent = 0;
    return -1;
  }
  long deadline_ms = env_seconds("VDDKC_SHIM_START_TIMEOUT", 60) * 1000;
  for (long waited = 0; waited < deadline_ms; waited += 20) {
    int status;
    if (waitpid(S.agent, &status, WNOHANG) == S.agent) {
      shim_log(1, "the simulated library's agent exited at start (status %d); its error is on stderr", status);
      S.agent = 0;
      return -1;
    }
    int fd = connect_socket(S.socket_path);
    if (fd >= 0) {
      close(fd);
      return 0;
    }
    sleep_ms(20);
  }
  shim_log(1, "the simulated library's agent did not listen within %ld s", deadline_ms / 1000);
  return -1;
}

static void stop_private_agent(void) {
  if (S.agent > 0) {
    int status;
    for (int waited = 0; waited < 10000 && waitpid(S.agent, &status, WNOHANG) == 0; waited += 20) {
      if (waited == 5000) kill(S.agent, SIGTERM);
      sleep_ms(20);
    }
    if (waitpid(S.agent, &status, WNOHANG) == 0) {
      kill(S.agent, SIGKILL);
      waitpid(S.agent, &status, 0);
    }
    S.agent = 0;
  }
  if (S.private_dir[0]) {
    unlink(S.socket_path);
    rmdir(S.private_dir);
    S.private_dir[0] = '\0';
  }
}

static void close_connections(void) {
  for (int i = 0; i < S.nfds; i++) close(S.fds[i]);
  S.nfds = 0;
  S.generation++;
}

/* Read a reply's header and hand its log lines to the product. */
static VixError read_reply(const char *call, int fd, AgentReply *reply) {
  size_t len;
  if (wire_receive(fd, &reply->body, &len) != 0) return AGENT_LOST;
  reply->in = (WireIn){reply->body, len, 0, 0};
  reply->error = wire_get_u64(&reply->in);
  char *text = wire_get_str(&reply->in);
  uint64_t logs = wire_get_u64(&reply->in);
  for (uint64_t i = 0; i < logs && !reply->in.bad; i++) {
    char *line = wire_get_str(&reply->in);
    if (line) shim_log(line[0] == 'W', "%s", line[0] && line[1] == ' ' ? line + 2 : line);
    free(line);
  }
  if (reply->in.bad) {
    free(text);
    shim_log(2, "%s: malformed reply from the simulated library's agent", call);
    return VIX_E_FAIL;
  }
  if (reply->error != VIX_OK && reply->error != VIX_ASYNC && text) shim_log(1, "%s", text); /* it names the call */
  free(text);
  return reply->error;
}

/* This thread's connection (HELLO on first use); -1 when none can be made. */
static int connection(const char *call, const char *token) {
  pthread_mutex_lock(&session_lock);
  if (thread_fd >= 0 && thread_generation == S.generation) {
    pthread_mutex_unlock(&session_lock);
    return thread_fd;
  }
  thread_fd = -1; /* a connection of an earlier session was closed by Exit */
  int fd = S.nfds < MAX_CONNECTIONS ? connect_socket(S.socket_path) : -1;
  if (fd < 0) {
    pthread_mutex_unlock(&session_lock);
    shim_log(1, "%s: cannot reach the simulated library's agent at %s", call, S.socket_path);
    return -1;
  }
  S.fds[S.nfds++] = fd;
  thread_fd = fd;
  thread_generation = S.generation;
  pthread_mutex_unlock(&session_lock);
  WireOut hello;
  wire_start(&hello);
  wire_u64(&hello, OP_HELLO);
  wire_u64(&hello, (uint64_t)getpid());
  wire_u64(&hello, shim_tid());
  wire_str(&hello, token);
  wire_u64(&hello, VDDKC_ABI_MAJOR);
  int sent = wire_send(fd, &hello);
  wire_free(&hello);
  AgentReply reply = {0};
  VixError err = sent == 0 ? read_reply(call, fd, &reply) : AGENT_LOST;
  char *given = err == VIX_OK ? wire_get_str(&reply.in) : NULL;
  if (given && !token) snprintf(S.token, sizeof S.token, "%s", given);
  free(given);
  agent_done(&reply);
  if (err != VIX_OK) {
    thread_fd = -1;
    return -1;
  }
  return fd;
}

VixError agent_ready(const char *call) {
  pthread_mutex_lock(&session_lock);
  int open = S.open;
  pid_t owner = S.owner;
  pthread_mutex_unlock(&session_lock);
  if (!open) return VIX_E_DISK_NOINIT;
  if (owner != getpid()) {
    shim_log(2, "%s called in a forked child: VixDiskLib belongs to the process that called InitEx", call);
    return VIX_E_FAIL;
  }
  return VIX_OK;
}

VixError agent_call(const char *call, WireOut *request, AgentReply *reply) {
  memset(reply, 0, sizeof *reply);
  if (request->failed) return VIX_E_OUT_OF_MEMORY;
  int fd = connection(call, S.token);
  if (fd < 0) return AGENT_LOST;
  VixError err = wire_send(fd, request) == 0 ? read_reply(call, fd, reply) : AGENT_LOST;
  if (err == AGENT_LOST && !reply->body) {
    shim_log(1, "%s: the simulated library's agent went away (it died or did not answer)", call);
    pthread_mutex_lock(&session_lock);
    for (int i = 0; i < S.nfds; i++)
      if (S.fds[i] == fd) S.fds[i] = S.fds[--S.nfds];
    close(fd);
    thread_fd = -1;
    pthread_mutex_unlock(&session_lock);
  }
  return err;
}

void agent_done(AgentReply *reply) {
  free(reply->body);
  reply->body = NULL;
}

VixError agent_start(uint32_t major, uint32_t minor, const char *libDir, const char *configFile, char *modes,
                     size_t modes_size) {
  pthread_mutex_lock(&session_lock);
  if (S.open && S.owner == getpid()) {
    pthread_mutex_unlock(&session_lock);
    shim_log(1, "VixDiskLib_InitEx called twice without VixDiskLib_Exit");
    return VIX_E_FAIL;
  }
  memset(&S.token, 0, sizeof S.token);
  S.nfds = 0; /* a forked child's copies of the parent's connections are not its own */
  S.generation++;
  S.agent = 0;
  S.private_dir[0] = '\0';
  const char *given = getenv("VDDKC_SHIM_AGENT");
  int ok = 0;
  if (given && *given) {
    ok = strlen(given) < sizeof S.socket_path;
    if (ok) snprintf(S.socket_path, sizeof S.socket_path, "%s", given);
    else shim_log(1, "VDDKC_SHIM_AGENT is longer than a Unix socket path may be");
  } else {
    ok = spawn_agent() == 0;
  }
  S.open = ok;
  S.owner = getpid();
  if (!ok) stop_private_agent();
  pthread_mutex_unlock(&session_lock);
  if (!ok) return VIX_E_FAIL;
  if (connection("VixDiskLib_InitEx", NULL) < 0) {
    agent_stop();
    return AGENT_LOST;
  }
  WireOut request;
  wire_start(&request);
  wire_u64(&request, OP_INIT);
  wire_u64(&request, major);
  wire_u64(&request, minor);
  wire_str(&request, libDir);
  wire_str(&request, configFile);
  AgentReply reply;
  VixError err = agent_call("VixDiskLib_InitEx", &request, &reply);
  wire_free(&request);
  if (err == VIX_OK) {
    char *list = wire_get_str(&reply.in);
    snprintf(modes, modes_size, "%s", list ? list : "");
    free(list);
  }
  agent_done(&reply);
  if (err == VIX_OK && async_start() != 0) err = VIX_E_OUT_OF_MEMORY;
  if (err != VIX_OK) agent_stop();
  return err;
}

void agent_stop(void) {
  pthread_mutex_lock(&session_lock);
  int mine = S.open && S.owner == getpid();
  pthread_mutex_unlock(&session_lock);
  if (!mine) return; /* never initialised, or a forked child: the parent's session is not ours to end */
  async_stop();
  WireOut request;
  wire_start(&request);
  wire_u64(&request, OP_EXIT);
  AgentReply reply;
  agent_call("VixDiskLib_Exit", &request, &reply);
  agent_done(&reply);
  wire_free(&request);
  pthread_mutex_lock(&session_lock);
  close_connections();
  S.open = 0;
  stop_private_agent();
  pthread_mutex_unlock(&session_lock);
}
