/* wire.c - encoding and decoding of the agent's frames (see wire.h). */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void reserve(WireOut *out, size_t more) {
  if (out->failed || out->len + more <= out->cap) return;
  size_t cap = out->cap ? out->cap : 256;
  while (cap < out->len + more) cap *= 2;
  uint8_t *data = realloc(out->data, cap);
  if (!data) { out->failed = 1; return; }
  out->data = data;
  out->cap = cap;
}

static void put(WireOut *out, const void *data, size_t len) {
  reserve(out, len);
  if (out->failed) return;
  memcpy(out->data + out->len, data, len);
  out->len += len;
}

static void put_le(WireOut *out, uint64_t value, int size) {
  uint8_t raw[8];
  for (int i = 0; i < size; i++) raw[i] = (uint8_t)(value >> (8 * i));
  put(out, raw, (size_t)size);
}

void wire_start(WireOut *out) {
  memset(out, 0, sizeof *out);
  put_le(out, 0, 4);
}

void wire_u64(WireOut *out, uint64_t value) {
  put(out, "u", 1);
  put_le(out, value, 8);
}

void wire_str(WireOut *out, const char *value) {
  put(out, "s", 1);
  if (!value) { put_le(out, WIRE_NULL_STRING, 4); return; }
  size_t len = strlen(value);
  put_le(out, len, 4);
  put(out, value, len);
}

void wire_bytes(WireOut *out, const void *data, size_t len) {
  put(out, "b", 1);
  put_le(out, len, 4);
  if (len) put(out, data, len);
}

void wire_free(WireOut *out) {
  free(out->data);
  memset(out, 0, sizeof *out);
}

static uint64_t get_le(WireIn *in, int size) {
  if (in->bad || in->at + (size_t)size > in->len) { in->bad = 1; return 0; }
  uint64_t value = 0;
  for (int i = 0; i < size; i++) value |= (uint64_t)in->data[in->at + (size_t)i] << (8 * i);
  in->at += (size_t)size;
  return value;
}

static int tag(WireIn *in, char expected) {
  if (in->bad || in->at >= in->len || in->data[in->at] != (uint8_t)expected) { in->bad = 1; return 0; }
  in->at++;
  return 1;
}

uint64_t wire_get_u64(WireIn *in) {
  return tag(in, 'u') ? get_le(in, 8) : 0;
}

char *wire_get_str(WireIn *in) {
  if (!tag(in, 's')) return NULL;
  uint64_t len = get_le(in, 4);
  if (in->bad || len == WIRE_NULL_STRING) return NULL;
  if (in->at + len > in->len) { in->bad = 1; return NULL; }
  char *copy = malloc(len + 1);
  if (!copy) { in->bad = 1; return NULL; }
  memcpy(copy, in->data + in->at, len);
  copy[len] = '\0';
  in->at += len;
  return copy;
}

const uint8_t *wire_get_bytes(WireIn *in, size_t *len) {
  *len = 0;
  if (!tag(in, 'b')) return NULL;
  uint64_t n = get_le(in, 4);
  if (in->bad || in->at + n > in->len) { in->bad = 1; return NULL; }
  const uint8_t *data = in->data + in->at;
  in->at += n;
  *len = n;
  return data;
}

static int write_all(int fd, const uint8_t *data, size_t len) {
  while (len) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_all(int fd, uint8_t *data, size_t len) {
  while (len) {
    ssize_t n = recv(fd, data, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1; /* closed, timed out or failed */
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

int wire_send(int fd, WireOut *out) {
  if (out->failed || out->len < 4) return -1;
  size_t body = out->len - 4;
  for (int i = 0; i < 4; i++) out->data[i] = (uint8_t)(body >> (8 * i));
  return write_all(fd, out->data, out->len);
}

int wire_receive(int fd, uint8_t **body, size_t *len) {
  uint8_t head[4];
  *body = NULL;
  *len = 0;
  if (read_all(fd, head, 4)) return -1;
  uint32_t size = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 | (uint32_t)head[3] << 24;
  if (size > WIRE_MAX_FRAME) return -1;
  uint8_t *data = malloc(size ? size : 1);
  if (!data) return -1;
  if (read_all(fd, data, size)) { free(data); return -1; }
  *body = data;
  *len = size;
  return 0;
}
