/* buf.h — the one growable byte buffer shared by every protocol.
 *
 * A buf owns its memory; buf_free releases it. The content is always
 * followed by a NUL byte (not counted in len) so text can be handed to
 * string functions, but a buf may hold any bytes. */
#ifndef SS_BUF_H
#define SS_BUF_H

#include <stddef.h>

typedef struct ss_buf {
    char *data;  /* NULL until the first append */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated, excluding the trailing NUL */
} ss_buf;

#define SS_BUF_INIT {NULL, 0, 0}

/* Makes room for `extra` more bytes. 0 or SS_NOMEM (buf unchanged). */
int buf_reserve(ss_buf *b, size_t extra);
/* Appends bytes / a C string / printf-formatted text. 0 or SS_NOMEM. */
int buf_append(ss_buf *b, const void *data, size_t len);
int buf_append_str(ss_buf *b, const char *s);
int buf_printf(ss_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len), keeping the rest. */
void buf_consume(ss_buf *b, size_t n);
/* Empties the buffer, keeping its memory. */
void buf_reset(ss_buf *b);
/* Frees the memory; the buf is empty and reusable afterwards. */
void buf_free(ss_buf *b);
/* Hands the memory to the caller (who frees it with free()); the buf is
 * left empty. Returns NULL for an empty buffer that never allocated. */
char *buf_steal(ss_buf *b);

#endif
