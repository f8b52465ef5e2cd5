/*
 * vddkc_vixdisklib.h - the public C ABI of VixDiskLib as vddk-conformance knows it, written here from the
 * team's reference notes (function list, struct layouts and error numbers gathered from public sources).
 * It is not VMware's header: it declares only what a backup product calls, with the layouts of Linux x86-64.
 *
 * VDDKC_ABI_MAJOR selects the struct layouts of a major version (6, 7 or 8; default 7):
 *   VixDiskLibInfo is 56 bytes up to 6.x, 64 bytes from 7.0 (logical/physical sector sizes appended);
 *   VixDiskLibConnectParams is 128 bytes from 6.7 on.
 */
#ifndef VDDKC_VIXDISKLIB_H
#define VDDKC_VIXDISKLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifndef VDDKC_ABI_MAJOR
#define VDDKC_ABI_MAJOR 7
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t VixError;
typedef uint64_t VixDiskLibSectorType;
typedef char Bool;
typedef void VixDiskLibGenericLogFunc(const char *fmt, va_list args);
typedef void (*VixDiskLibCompletionCB)(void *cbData, VixError result);
typedef Bool (*VixDiskLibProgressFunc)(void *progressData, int percentCompleted);
typedef struct VixDiskLibConnectParam *VixDiskLibConnection;
typedef struct VixDiskLibHandleStruct *VixDiskLibHandle;

#define VIX_ERROR_CODE(err) ((err) & 0xFFFF)
#define VIX_SUCCEEDED(err) ((err) == VIX_OK)
#define VIX_FAILED(err) ((err) != VIX_OK)

enum {
  VIX_OK = 0,
  VIX_E_FAIL = 1,
  VIX_E_OUT_OF_MEMORY = 2,
  VIX_E_INVALID_ARG = 3,
  VIX_E_FILE_NOT_FOUND = 4,
  VIX_E_OBJECT_IS_BUSY = 5,
  VIX_E_NOT_SUPPORTED = 6,
  VIX_E_FILE_ERROR = 7,
  VIX_E_DISK_FULL = 8,
  VIX_E_FILE_READ_ONLY = 11,
  VIX_E_FILE_ACCESS_ERROR = 13,
  VIX_E_BUFFER_TOOSMALL = 24,
  VIX_E_HOST_NOT_CONNECTED = 26,
  VIX_E_HOST_CONNECTION_LOST = 36,
  VIX_E_INVALID_HANDLE = 1000,
  VIX_E_HOST_TCP_CONN_LOST = 14011,
  VIX_E_DISK_INVAL = 16000,
  VIX_E_DISK_NOINIT = 16001,
  VIX_E_DISK_OUTOFRANGE = 16007,
  VIX_E_DISK_KEY_NOTFOUND = 16052,
  VIX_ASYNC = 25000,
};

#define VIXDISKLIB_SECTOR_SIZE 512
#define VIXDISKLIB_MIN_CHUNK_SIZE 128
#define VIXDISKLIB_MAX_CHUNK_SIZE 131072
#define VIXDISKLIB_MAX_CHUNK_NUMBER 524288

#define VIXDISKLIB_FLAG_OPEN_UNBUFFERED 1
#define VIXDISKLIB_FLAG_OPEN_SINGLE_LINK 2
#define VIXDISKLIB_FLAG_OPEN_READ_ONLY 4

typedef enum {
  VIXDISKLIB_CRED_UID = 1,
  VIXDISKLIB_CRED_SESSIONID = 2,
  VIXDISKLIB_CRED_TICKETID = 3,
  VIXDISKLIB_CRED_SSPI = 4,
  VIXDISKLIB_CRED_UNKNOWN = 256
} VixDiskLibCredType;

typedef enum { VIXDISKLIB_SPEC_VMX = 0, VIXDISKLIB_SPEC_VSTORAGE_OBJECT = 1, VIXDISKLIB_SPEC_UNKNOWN = 256 } VixDiskLibSpecType;

typedef struct {
  char *vmxSpec;
  char *serverName;
  char *thumbPrint;
  long privateUse;
  VixDiskLibCredType credType;
  union {
    struct { char *userName; char *password; } uid;
    struct { char *cookie; char *userName; char *key; } sessionId;
    void *ticketId;
  } creds;
  uint32_t port;
  uint32_t nfcHostPort;
  char *vimApiVer;
  char reserved[8];
  void *state;
  union { struct { char *id; char *datastoreMoRef; char *ssId; } vStorageObjSpec; } spec;
  VixDiskLibSpecType specType;
} VixDiskLibConnectParams;

typedef struct { uint32_t cylinders, heads, sectors; } VixDiskLibGeometry;

typedef enum { VIXDISKLIB_ADAPTER_IDE = 1, VIXDISKLIB_ADAPTER_SCSI_BUSLOGIC = 2, VIXDISKLIB_ADAPTER_SCSI_LSILOGIC = 3, VIXDISKLIB_ADAPTER_UNKNOWN = 256 } VixDiskLibAdapterType;

typedef struct {
  VixDiskLibGeometry biosGeo;
  VixDiskLibGeometry physGeo;
  VixDiskLibSectorType capacity;
  VixDiskLibAdapterType adapterType;
  int numLinks;
  char *parentFileNameHint;
  char *uuid;
#if VDDKC_ABI_MAJOR >= 7
  uint32_t logicalSectorSize;
  uint32_t physicalSectorSize;
#endif
} VixDiskLibInfo;

typedef enum {
  VIXDISKLIB_DISK_MONOLITHIC_SPARSE = 1,
  VIXDISKLIB_DISK_MONOLITHIC_FLAT = 2,
  VIXDISKLIB_DISK_SPLIT_SPARSE = 3,
  VIXDISKLIB_DISK_SPLIT_FLAT = 4,
  VIXDISKLIB_DISK_VMFS_FLAT = 5,
  VIXDISKLIB_DISK_STREAM_OPTIMIZED = 6,
  VIXDISKLIB_DISK_VMFS_THIN = 7,
  VIXDISKLIB_DISK_VMFS_SPARSE = 8,
  VIXDISKLIB_DISK_UNKNOWN = 256
} VixDiskLibDiskType;

/* Create/Clone parameters: 24 bytes up to 6.x, 32 from 7.0 (sector sizes appended; 0 means 512). */
typedef struct {
  VixDiskLibDiskType diskType;
  VixDiskLibAdapterType adapterType;
  uint16_t hwVersion;
  VixDiskLibSectorType capacity;
#if VDDKC_ABI_MAJOR >= 7
  uint32_t logicalSectorSize;
  uint32_t physicalSectorSize;
#endif
} VixDiskLibCreateParams;

typedef struct { VixDiskLibSectorType offset; VixDiskLibSectorType length; } VixDiskLibBlock;
typedef struct { uint32_t numBlocks; VixDiskLibBlock blocks[1]; } VixDiskLibBlockList;

_Static_assert(sizeof(VixDiskLibConnectParams) == 128, "6.7+ ConnectParams is 128 bytes on LP64");
_Static_assert(offsetof(VixDiskLibBlockList, blocks) == 8, "blocks start at 8 on LP64");
#if VDDKC_ABI_MAJOR >= 7
_Static_assert(sizeof(VixDiskLibInfo) == 64, "7.0+ Info is 64 bytes");
_Static_assert(sizeof(VixDiskLibCreateParams) == 32, "7.0+ CreateParams is 32 bytes");
#else
_Static_assert(sizeof(VixDiskLibInfo) == 56, "pre-7.0 Info is 56 bytes");
_Static_assert(sizeof(VixDiskLibCreateParams) == 24, "pre-7.0 CreateParams is 24 bytes");
#endif
_Static_assert(offsetof(VixDiskLibCreateParams, capacity) == 16, "capacity at 16 on LP64");

VixError VixDiskLib_InitEx(uint32_t majorVersion, uint32_t minorVersion, VixDiskLibGenericLogFunc *log,
                           VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic, const char *libDir,
                           const char *configFile);
void VixDiskLib_Exit(void);
const char *VixDiskLib_ListTransportModes(void);
VixDiskLibConnectParams *VixDiskLib_AllocateConnectParams(void);
void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *params);
VixError VixDiskLib_ConnectEx(const VixDiskLibConnectParams *params, Bool readOnly, const char *snapshotRef,
                              const char *transportModes, VixDiskLibConnection *connection);
VixError VixDiskLib_Disconnect(VixDiskLibConnection connection);
VixError VixDiskLib_PrepareForAccess(const VixDiskLibConnectParams *params, const char *identity);
VixError VixDiskLib_EndAccess(const VixDiskLibConnectParams *params, const char *identity);
VixError VixDiskLib_Cleanup(const VixDiskLibConnectParams *params, uint32_t *numCleanedUp, uint32_t *numRemaining);
VixError VixDiskLib_Open(VixDiskLibConnection connection, const char *path, uint32_t flags, VixDiskLibHandle *handle);
VixError VixDiskLib_Close(VixDiskLibHandle handle);
VixError VixDiskLib_GetInfo(VixDiskLibHandle handle, VixDiskLibInfo **info);
void VixDiskLib_FreeInfo(VixDiskLibInfo *info);
const char *VixDiskLib_GetTransportMode(VixDiskLibHandle handle);
VixError VixDiskLib_Read(VixDiskLibHandle handle, VixDiskLibSectorType startSector, VixDiskLibSectorType numSectors,
                         uint8_t *readBuffer);
VixError VixDiskLib_Write(VixDiskLibHandle handle, VixDiskLibSectorType startSector, VixDiskLibSectorType numSectors,
                          const uint8_t *writeBuffer);
VixError VixDiskLib_ReadAsync(VixDiskLibHandle handle, VixDiskLibSectorType startSector,
                              VixDiskLibSectorType numSectors, uint8_t *buffer, VixDiskLibCompletionCB callback,
                              void *callbackData);
VixError VixDiskLib_WriteAsync(VixDiskLibHandle handle, VixDiskLibSectorType startSector,
                               VixDiskLibSectorType numSectors, const uint8_t *buffer,
                               VixDiskLibCompletionCB callback, void *callbackData);
VixError VixDiskLib_Wait(VixDiskLibHandle handle);
VixError VixDiskLib_Flush(VixDiskLibHandle handle);
VixError VixDiskLib_QueryAllocatedBlocks(VixDiskLibHandle handle, VixDiskLibSectorType startSector,
                                         VixDiskLibSectorType numSectors, VixDiskLibSectorType chunkSize,
                                         VixDiskLibBlockList **blockList);
VixError VixDiskLib_FreeBlockList(VixDiskLibBlockList *blockList);
VixError VixDiskLib_Attach(VixDiskLibHandle parent, VixDiskLibHandle child);
char *VixDiskLib_GetErrorText(VixError err, const char *locale);
void VixDiskLib_FreeErrorText(char *text);

/* The rest of the 7.0 API (exports_more.c): deprecated, hosted-disk and maintenance calls. */
VixError VixDiskLib_Init(uint32_t majorVersion, uint32_t minorVersion, VixDiskLibGenericLogFunc *log,
                         VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic, const char *libDir);
VixError VixDiskLib_Connect(const VixDiskLibConnectParams *params, VixDiskLibConnection *connection);
VixError VixDiskLib_GetConnectParams(VixDiskLibConnection connection, VixDiskLibConnectParams **params);
VixError VixDiskLib_Create(VixDiskLibConnection connection, const char *path, const VixDiskLibCreateParams *createParams,
                           VixDiskLibProgressFunc progressFunc, void *progressCallbackData);
VixError VixDiskLib_CreateChild(VixDiskLibHandle diskHandle, const char *childPath, VixDiskLibDiskType diskType,
                                VixDiskLibProgressFunc progressFunc, void *progressCallbackData);
VixError VixDiskLib_ReadMetadata(VixDiskLibHandle diskHandle, const char *key, char *buf, size_t bufLen,
                                 size_t *requiredLen);
VixError VixDiskLib_WriteMetadata(VixDiskLibHandle diskHandle, const char *key, const char *val);
VixError VixDiskLib_GetMetadataKeys(VixDiskLibHandle diskHandle, char *keys, size_t maxLen, size_t *requiredLen);
VixError VixDiskLib_Unlink(VixDiskLibConnection connection, const char *path);
VixError VixDiskLib_Grow(VixDiskLibConnection connection, const char *path, VixDiskLibSectorType capacity,
                         Bool updateGeometry, VixDiskLibProgressFunc progressFunc, void *progressCallbackData);
VixError VixDiskLib_Shrink(VixDiskLibHandle diskHandle, VixDiskLibProgressFunc progressFunc,
                           void *progressCallbackData);
VixError VixDiskLib_Defragment(VixDiskLibHandle diskHandle, VixDiskLibProgressFunc progressFunc,
                               void *progressCallbackData);
VixError VixDiskLib_Rename(const char *srcFileName, const char *dstFileName);
VixError VixDiskLib_Clone(VixDiskLibConnection dstConnection, const char *dstPath, VixDiskLibConnection srcConnection,
                          const char *srcPath, const VixDiskLibCreateParams *createParams,
                          VixDiskLibProgressFunc progressFunc, void *progressCallbackData, Bool overWrite);
VixError VixDiskLib_IsAttachPossible(VixDiskLibHandle parent, VixDiskLibHandle child);
VixError VixDiskLib_SpaceNeededForClone(VixDiskLibHandle diskHandle, VixDiskLibDiskType cloneDiskType,
                                        uint64_t *spaceNeeded);
VixError VixDiskLib_CheckRepair(VixDiskLibConnection connection, const char *filename, Bool repair);

#ifdef __cplusplus
}
#endif
#endif
