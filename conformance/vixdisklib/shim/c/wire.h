/* wire.h - the frames of conformance/vixdisklib/shim/wire.py (its docstring is the contract). */
#ifndef VDDKC_WIRE_H
#define VDDKC_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
  OP_HELLO = 1, OP_INIT, OP_EXIT, OP_LIST_MODES, OP_CONNECT, OP_DISCONNECT, OP_OPEN, OP_CLOSE, OP_GET_INFO,
  OP_TRANSPORT, OP_READ, OP_WRITE, OP_READ_ASYNC, OP_WRITE_ASYNC, OP_WAIT, OP_FLUSH, OP_QUERY_BLOCKS,
  OP_ATTACH, OP_PREPARE, OP_END_ACCESS, OP_CLEANUP, OP_ERROR_TEXT,
};
#define WIRE_NULL_STRING 0xFFFFFFFFu
#define WIRE_MAX_FRAME (96u * 1024u * 1024u)

/* A frame being built: 4 bytes of length, then tagged values. `failed` is set when memory ran out. */
typedef struct { uint8_t *data; size_t len, cap; int failed; } WireOut;
void wire_start(WireOut *out);
void wire_u64(WireOut *out, uint64_t value);
void wire_str(WireOut *out, const char *value); /* NULL is sent as the null string */
void wire_bytes(WireOut *out, const void *data, size_t len);
void wire_free(WireOut *out);

/* A received frame body being read. A read past the end or of the wrong tag sets `bad`. */
typedef struct { const uint8_t *data; size_t len, at; int bad; } WireIn;
uint64_t wire_get_u64(WireIn *in);
/* A string: points into a copy owned by the caller (free it), or NULL for the null string. */
char *wire_get_str(WireIn *in);
/* Sector data: points into the frame (valid while the frame is). */
const uint8_t *wire_get_bytes(WireIn *in, size_t *len);

/* Send a frame (fills in its length) / receive one into a malloc'd body. 0 on success, -1 on failure. */
int wire_send(int fd, WireOut *out);
int wire_receive(int fd, uint8_t **body, size_t *len);

#endif
