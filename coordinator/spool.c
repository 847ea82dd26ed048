/*
 * spool.c — append-only unlinked temporary file with buffered appends and a
 * read cache (see spool.h).
 *
 * Owns: the file descriptor, a SPOOL_BUF write buffer (the tail of the
 * file not yet written) and a SPOOL_BUF read cache (one window of the
 * written part).  Sequential readers that follow a writer hit the cache or
 * the write buffer almost always, so a row costs a memcpy, not a syscall.
 * Diagnostics: -1 with errno from the failing call.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPOOL_BUF (256u * 1024)

struct spool {
	int fd;
	unsigned char *wbuf, *rbuf;
	uint64_t wbase;                 /* file offset of wbuf[0] */
	size_t wlen;
	uint64_t rbase;                 /* file offset of rbuf[0] */
	size_t rlen;
};

struct spool *
spool_new(char *err, size_t errlen)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	struct spool *s;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/mxsift-spool-XXXXXX", dir);
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->wbuf = malloc(SPOOL_BUF)) == NULL ||
	    (s->rbuf = malloc(SPOOL_BUF)) == NULL) {
		snprintf(err, errlen, "out of memory");
		spool_free(s);
		return NULL;
	}
	if ((s->fd = mkostemp(path, O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "temporary file in %s: %s", dir, strerror(errno));
		free(s->wbuf);
		free(s->rbuf);
		free(s);
		return NULL;
	}
	unlink(path);
	return s;
}

static int
spool_pwrite_all(int fd, const unsigned char *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int
spool_flush(struct spool *s)
{
	if (s->wlen > 0 && spool_pwrite_all(s->fd, s->wbuf, s->wlen, s->wbase) != 0)
		return -1;
	s->wbase += s->wlen;
	s->wlen = 0;
	return 0;
}

int
spool_append(struct spool *s, const void *data, size_t len, uint64_t *off)
{
	if (off != NULL)
		*off = s->wbase + s->wlen;
	if (s->wlen + len > SPOOL_BUF && spool_flush(s) != 0)
		return -1;
	if (len > SPOOL_BUF) {
		if (spool_pwrite_all(s->fd, data, len, s->wbase) != 0)
			return -1;
		s->wbase += len;
		return 0;
	}
	memcpy(s->wbuf + s->wlen, data, len);
	s->wlen += len;
	return 0;
}

int
spool_read(struct spool *s, uint64_t off, void *buf, size_t len)
{
	unsigned char *out = buf;
	ssize_t r;
	size_t got;

	if (off + len > s->wbase + s->wlen) {
		errno = EINVAL;
		return -1;
	}
	if (off >= s->wbase) {
		memcpy(out, s->wbuf + (off - s->wbase), len);
		return 0;
	}
	if (off + len > s->wbase && spool_flush(s) != 0)
		return -1;
	if (off >= s->rbase && off + len <= s->rbase + s->rlen) {
		memcpy(out, s->rbuf + (off - s->rbase), len);
		return 0;
	}
	if (len > SPOOL_BUF) {
		for (got = 0; got < len; got += (size_t)r) {
			r = pread(s->fd, out + got, len - got, (off_t)(off + got));
			if (r < 0 && errno == EINTR) {
				r = 0;
				continue;
			}
			if (r <= 0)
				return -1;
		}
		return 0;
	}
	s->rbase = off;
	s->rlen = 0;
	while (s->rlen < len) {
		r = pread(s->fd, s->rbuf + s->rlen, SPOOL_BUF - s->rlen,
		    (off_t)(off + s->rlen));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		s->rlen += (size_t)r;
	}
	memcpy(out, s->rbuf, len);
	return 0;
}

uint64_t
spool_size(const struct spool *s)
{
	return s->wbase + s->wlen;
}

void
spool_free(struct spool *s)
{
	if (s == NULL)
		return;
	if (s->fd > 0)
		close(s->fd);
	free(s->wbuf);
	free(s->rbuf);
	free(s);
}
