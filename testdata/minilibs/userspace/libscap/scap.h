/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * libscap (minilibs): open one of the three drivers and receive its events.
 *
 *   scap_t *h = scap_open(&opts, err, sizeof(err), &rc);
 *   while (...) scap_poll(h, 100, on_event, ctx);
 *   scap_get_stats(h, &st);
 *   scap_close(h);
 */
#ifndef MINILIBS_SCAP_H
#define MINILIBS_SCAP_H

#include <stddef.h>
#include <stdint.h>

#include "scap_event.h"

/* drivers_test (C++) links this C library. */
#ifdef __cplusplus
extern "C" {
#endif

/* Result codes. SCAP_NOT_SUPPORTED is also scap-open's exit code for "skip". */
#define SCAP_SUCCESS 0
#define SCAP_FAILURE 1
#define SCAP_NOT_SUPPORTED 95

/* Driver kinds. */
enum scap_source {
	SCAP_SOURCE_KMOD,
	SCAP_SOURCE_BPF,
	SCAP_SOURCE_MODERN_BPF,
};

/* What to open. */
struct scap_open_opts {
	enum scap_source source;
	const char *bpf_probe; /* SCAP_SOURCE_BPF: path of probe.o */
	const char *device;    /* SCAP_SOURCE_KMOD: NULL for /dev/scap0 */
};

/* Counters reported by the driver itself. */
struct scap_stats {
	uint64_t seen;    /* events the driver saw in the kernel */
	uint64_t dropped; /* events lost between kernel and userspace */
};

typedef struct scap scap_t;

/* Called once per event received. */
typedef void (*scap_event_cb)(void *ctx, const struct minilibs_event *ev);

/*
 * Opens and starts the driver. On failure returns NULL, sets *rc to
 * SCAP_FAILURE or SCAP_NOT_SUPPORTED and writes the reason into err.
 */
scap_t *scap_open(const struct scap_open_opts *opts, char *err, size_t errlen, int *rc);

/*
 * Delivers the events available now, waiting up to timeout_ms when there are
 * none. Returns the number delivered (0 on timeout) or -1 on error.
 */
int scap_poll(scap_t *h, int timeout_ms, scap_event_cb cb, void *ctx);

/* Reads the driver's counters. Returns SCAP_SUCCESS or SCAP_FAILURE. */
int scap_get_stats(scap_t *h, struct scap_stats *st);

/* Stops the driver and frees h. */
void scap_close(scap_t *h);

/* Running kernel release as major/minor; returns 0 on success. */
int scap_kernel_version(int *major, int *minor, char *release, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* MINILIBS_SCAP_H */
