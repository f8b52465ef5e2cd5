/*
 * calls.c - time N calls of VixDiskLib_Read (one sector) and of VixDiskLib_GetTransportMode through whatever
 * libvixDiskLib.so.7 the loader finds (LD_LIBRARY_PATH): the harness's C double directly, or the tracing
 * library forwarding to it. Prints one JSON line. Used by bench/shim_bench.py.
 *
 * usage: calls <absolute disk path> <N>
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vddkc_vixdisklib.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: calls <disk> <N>\n"); return 2; }
  long n = strtol(argv[2], NULL, 10);
  VixDiskLibConnection connection;
  VixDiskLibHandle disk;
  static uint8_t sector[512];
  if (VixDiskLib_InitEx(7, 0, NULL, NULL, NULL, NULL, NULL) != VIX_OK) return 1;
  if (VixDiskLib_ConnectEx(NULL, 1, NULL, NULL, &connection) != VIX_OK) return 1;
  if (VixDiskLib_Open(connection, argv[1], VIXDISKLIB_FLAG_OPEN_READ_ONLY, &disk) != VIX_OK) return 1;
  double started = now();
  for (long i = 0; i < n; i++)
    if (VixDiskLib_Read(disk, (VixDiskLibSectorType)(i % 1024), 1, sector) != VIX_OK) return 1;
  double read_ns = (now() - started) / (double)n;
  started = now();
  for (long i = 0; i < n; i++)
    if (!VixDiskLib_GetTransportMode(disk)) return 1;
  double mode_ns = (now() - started) / (double)n;
  VixDiskLib_Close(disk);
  VixDiskLib_Disconnect(connection);
  VixDiskLib_Exit();
  printf("{\"calls\":%ld,\"read_ns\":%.1f,\"get_transport_mode_ns\":%.1f}\n", n, read_ns, mode_ns);
  return 0;
}
