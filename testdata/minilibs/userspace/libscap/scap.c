// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <bpf/libbpf.h>

#include "scap_engine.h"

struct scap {
	const struct scap_engine *engine;
	void *state;
};

void *scap_errorf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return NULL;
}

int scap_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

void scap_raise_memlock(void)
{
	struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};

	setrlimit(RLIMIT_MEMLOCK, &r);
}

void scap_open_delay(void)
{
#ifdef MINILIBS_OPEN_DELAY_S
	struct timespec left = {MINILIBS_OPEN_DELAY_S, 0};

	while (nanosleep(&left, &left) != 0 && errno == EINTR)
		;
#endif
}

int scap_kernel_version(int *major, int *minor, char *release, size_t len)
{
	struct utsname u;

	if (uname(&u) != 0)
		return -1;
	if (release)
		snprintf(release, len, "%s", u.release);
	if (sscanf(u.release, "%d.%d", major, minor) != 2)
		return -1;
	return 0;
}

scap_t *scap_open(const struct scap_open_opts *opts, char *err, size_t errlen, int *rc)
{
	const struct scap_engine *engine;
	scap_t *h;

	switch (opts->source) {
	case SCAP_SOURCE_KMOD:
		engine = &scap_engine_kmod;
		break;
	case SCAP_SOURCE_BPF:
		engine = &scap_engine_bpf;
		break;
	case SCAP_SOURCE_MODERN_BPF:
		engine = &scap_engine_modern_bpf;
		break;
	default:
		*rc = SCAP_FAILURE;
		return scap_errorf(err, errlen, "unknown source %d", (int)opts->source);
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		*rc = SCAP_FAILURE;
		return scap_errorf(err, errlen, "out of memory");
	}
	h->engine = engine;
	*rc = SCAP_SUCCESS;
	h->state = engine->open(opts, err, errlen, rc);
	if (!h->state) {
		if (*rc == SCAP_SUCCESS)
			*rc = SCAP_FAILURE;
		free(h);
		return NULL;
	}
	return h;
}

int scap_poll(scap_t *h, int timeout_ms, scap_event_cb cb, void *ctx)
{
	return h->engine->poll(h->state, timeout_ms, cb, ctx);
}

int scap_get_stats(scap_t *h, struct scap_stats *st)
{
	memset(st, 0, sizeof(*st));
	return h->engine->stats(h->state, st);
}

void scap_close(scap_t *h)
{
	if (!h)
		return;
	h->engine->close(h->state);
	free(h);
}
