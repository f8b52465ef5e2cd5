/*
 * forward.c - the tracing library's backend: VMware's real libvixDiskLib.so.N from the folder in
 * VDDKC_SHIM_FORWARD (its lib64/ first, as the kit lays it out), every call passed through unchanged.
 *
 * The real library is opened with RTLD_DEEPBIND so its calls to its own functions stay inside it and never
 * reach these exports. A function the real library lacks answers VIX_E_NOT_SUPPORTED (NULL for the
 * functions that return pointers), as a product would see with that library; if the library cannot be
 * loaded at all, InitEx fails with the reason logged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

static char load_error[PATH_MAX + 600];
static char real_path[PATH_MAX];
static void *real_library; /* the real library once loaded (forward mode only) */

static VixError un_InitEx(uint32_t a, uint32_t b, VixDiskLibGenericLogFunc *log, VixDiskLibGenericLogFunc *warn,
                          VixDiskLibGenericLogFunc *panic, const char *d, const char *e) {
  (void)a; (void)b; (void)d; (void)e;
  shim_set_log(log, warn, panic);
  shim_log(1, "tracing library: %s", load_error[0] ? load_error : "VixDiskLib_InitEx is not in the real library");
  return VIX_E_FAIL;
}
static void un_Exit(void) {}
static const char *un_ListTransportModes(void) { return NULL; }
static VixDiskLibConnectParams *un_AllocateConnectParams(void) { return calloc(1, sizeof(VixDiskLibConnectParams)); }
static void un_FreeConnectParams(VixDiskLibConnectParams *p) { free(p); }
static VixError un_ConnectEx(const VixDiskLibConnectParams *p, Bool r, const char *s, const char *t,
                             VixDiskLibConnection *c) {
  (void)p; (void)r; (void)s; (void)t;
  if (c) *c = NULL;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_handle(void *h) { (void)h; return VIX_E_NOT_SUPPORTED; }
static VixError un_access(const VixDiskLibConnectParams *p, const char *i) { (void)p; (void)i; return VIX_E_NOT_SUPPORTED; }
static VixError un_Cleanup(const VixDiskLibConnectParams *p, uint32_t *a, uint32_t *b) {
  (void)p; (void)a; (void)b;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_Open(VixDiskLibConnection c, const char *p, uint32_t f, VixDiskLibHandle *h) {
  (void)c; (void)p; (void)f;
  if (h) *h = NULL;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_GetInfo(VixDiskLibHandle h, VixDiskLibInfo **i) { (void)h; if (i) *i = NULL; return VIX_E_NOT_SUPPORTED; }
static void un_FreeInfo(VixDiskLibInfo *i) { (void)i; }
static const char *un_GetTransportMode(VixDiskLibHandle h) { (void)h; return NULL; }
static VixError un_Read(VixDiskLibHandle h, VixDiskLibSectorType s, VixDiskLibSectorType n, uint8_t *b) {
  (void)h; (void)s; (void)n; (void)b;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_Write(VixDiskLibHandle h, VixDiskLibSectorType s, VixDiskLibSectorType n, const uint8_t *b) {
  (void)h; (void)s; (void)n; (void)b;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_ReadAsync(VixDiskLibHandle h, VixDiskLibSectorType s, VixDiskLibSectorType n, uint8_t *b,
                             VixDiskLibCompletionCB cb, void *d) {
  (void)h; (void)s; (void)n; (void)b; (void)cb; (void)d;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_WriteAsync(VixDiskLibHandle h, VixDiskLibSectorType s, VixDiskLibSectorType n, const uint8_t *b,
                              VixDiskLibCompletionCB cb, void *d) {
  (void)h; (void)s; (void)n; (void)b; (void)cb; (void)d;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_QueryAllocatedBlocks(VixDiskLibHandle h, VixDiskLibSectorType s, VixDiskLibSectorType n,
                                        VixDiskLibSectorType c, VixDiskLibBlockList **l) {
  (void)h; (void)s; (void)n; (void)c;
  if (l) *l = NULL;
  return VIX_E_NOT_SUPPORTED;
}
static VixError un_FreeBlockList(VixDiskLibBlockList *l) { (void)l; return VIX_E_NOT_SUPPORTED; }
static VixError un_Attach(VixDiskLibHandle p, VixDiskLibHandle c) { (void)p; (void)c; return VIX_E_NOT_SUPPORTED; }
static char *un_GetErrorText(VixError e, const char *l) { (void)e; (void)l; return NULL; }
static void un_FreeErrorText(char *t) { (void)t; }

static void unsupported(ShimBackend *b) {
  *b = (ShimBackend){
      .mode = "forward", .library = real_path, .InitEx = un_InitEx, .Exit = un_Exit,
      .ListTransportModes = un_ListTransportModes, .AllocateConnectParams = un_AllocateConnectParams,
      .FreeConnectParams = un_FreeConnectParams, .ConnectEx = un_ConnectEx, .Disconnect = (void *)un_handle,
      .PrepareForAccess = un_access, .EndAccess = un_access, .Cleanup = un_Cleanup, .Open = un_Open,
      .Close = (void *)un_handle, .GetInfo = un_GetInfo, .FreeInfo = un_FreeInfo,
      .GetTransportMode = un_GetTransportMode, .Read = un_Read, .Write = un_Write, .ReadAsync = un_ReadAsync,
      .WriteAsync = un_WriteAsync, .Wait = (void *)un_handle, .Flush = (void *)un_handle,
      .QueryAllocatedBlocks = un_QueryAllocatedBlocks, .FreeBlockList = un_FreeBlockList, .Attach = un_Attach,
      .GetErrorText = un_GetErrorText, .FreeErrorText = un_FreeErrorText,
  };
}

/* The real library's file under `dir`, or "" when there is none (or it is this library itself). */
static void find_real(const char *dir, char *out, size_t size) {
  char own[PATH_MAX] = "";
  Dl_info self;
  if (dladdr((void *)find_real, &self) && self.dli_fname) {
    if (!realpath(self.dli_fname, own)) own[0] = '\0';
  }
  static const char *const layouts[] = {"%s/lib64/libvixDiskLib.so.%d", "%s/libvixDiskLib.so.%d"};
  out[0] = '\0';
  for (size_t i = 0; i < 2; i++) {
    char candidate[PATH_MAX], resolved[PATH_MAX];
    snprintf(candidate, sizeof candidate, layouts[i], dir, VDDKC_ABI_MAJOR);
    if (access(candidate, R_OK) != 0 || !realpath(candidate, resolved)) continue;
    if (own[0] && strcmp(resolved, own) == 0) continue; /* never forward to ourselves */
    snprintf(out, size, "%s", resolved);
    return;
  }
}

#define BIND(name)                                           \
  do {                                                       \
    void *f = dlsym(real, "VixDiskLib_" #name);              \
    if (f) memcpy(&b->name, &f, sizeof f);                   \
  } while (0)

int forward_backend(ShimBackend *b, char *why, size_t why_len) {
  unsupported(b);
  const char *dir = getenv("VDDKC_SHIM_FORWARD");
  find_real(dir, real_path, sizeof real_path);
  if (!real_path[0]) {
    snprintf(load_error, sizeof load_error,
             "no libvixDiskLib.so.%d other than this tracing library under VDDKC_SHIM_FORWARD=%s (or its lib64/)",
             VDDKC_ABI_MAJOR, dir);
    snprintf(why, why_len, "%s", load_error);
    return -1;
  }
  void *real = dlopen(real_path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!real) {
    snprintf(load_error, sizeof load_error, "cannot load %s: %s", real_path, dlerror());
    snprintf(why, why_len, "%s", load_error);
    return -1;
  }
  BIND(InitEx); BIND(Exit); BIND(ListTransportModes); BIND(AllocateConnectParams); BIND(FreeConnectParams);
  BIND(ConnectEx); BIND(Disconnect); BIND(PrepareForAccess); BIND(EndAccess); BIND(Cleanup); BIND(Open);
  BIND(Close); BIND(GetInfo); BIND(FreeInfo); BIND(GetTransportMode); BIND(Read); BIND(Write); BIND(ReadAsync);
  BIND(WriteAsync); BIND(Wait); BIND(Flush); BIND(QueryAllocatedBlocks); BIND(FreeBlockList); BIND(Attach);
  BIND(GetErrorText); BIND(FreeErrorText);
  real_library = real;
  return 0;
}

void *forward_symbol(const char *name) {
  (void)shim_backend(); /* the backend is chosen (and the real library loaded) before the first look-up */
  if (!real_library || !name) return NULL;
  return dlsym(real_library, name);
}
