// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/* kmod engine: reads struct minilibs_event records from /dev/scap0. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "scap_engine.h"

#define KMOD_BATCH 512

struct kmod_state {
	int fd;
	struct minilibs_event buf[KMOD_BATCH];
};

static void *kmod_open(const struct scap_open_opts *opts, char *err, size_t errlen, int *rc)
{
	const char *dev = opts->device ? opts->device : "/dev/" MINILIBS_DEVICE_NAME;
	struct kmod_state *s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return scap_errorf(err, errlen, "out of memory");
	s->fd = open(dev, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (s->fd < 0) {
		int e = errno;

		free(s);
		if (e == ENOENT)
			return scap_errorf(err, errlen, "cannot open %s: %s (is the kernel module loaded? insmod scap.ko)",
					   dev, strerror(e));
		return scap_errorf(err, errlen, "cannot open %s: %s", dev, strerror(e));
	}
	return s;
}

static int kmod_poll(void *state, int timeout_ms, scap_event_cb cb, void *ctx)
{
	struct kmod_state *s = state;
	ssize_t n;
	int i, count;

	n = read(s->fd, s->buf, sizeof(s->buf));
	if (n < 0 && errno == EAGAIN) {
		usleep((useconds_t)timeout_ms * 1000);
		n = read(s->fd, s->buf, sizeof(s->buf));
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return -1;
	}
	count = (int)(n / sizeof(s->buf[0]));
	for (i = 0; i < count; i++)
		cb(ctx, &s->buf[i]);
	return count;
}

static int kmod_stats(void *state, struct scap_stats *st)
{
	struct kmod_state *s = state;
	struct minilibs_stats ks;

	if (ioctl(s->fd, MINILIBS_IOCTL_STATS, &ks) != 0)
		return SCAP_FAILURE;
	st->seen = ks.seen;
	st->dropped = ks.dropped;
	return SCAP_SUCCESS;
}

static void kmod_close(void *state)
{
	struct kmod_state *s = state;

	close(s->fd);
	free(s);
}

const struct scap_engine scap_engine_kmod = {
	.name = "kmod",
	.open = kmod_open,
	.poll = kmod_poll,
	.stats = kmod_stats,
	.close = kmod_close,
};
