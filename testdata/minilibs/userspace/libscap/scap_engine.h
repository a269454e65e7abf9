/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* Internal: the interface each capture engine implements. */
#ifndef MINILIBS_SCAP_ENGINE_H
#define MINILIBS_SCAP_ENGINE_H

#include <stdarg.h>
#include <bpf/libbpf.h>

#include "scap.h"

/* One capture engine (kmod, bpf or modern_bpf). */
struct scap_engine {
	const char *name;
	/* open returns engine state or NULL with *rc and err set. */
	void *(*open)(const struct scap_open_opts *opts, char *err, size_t errlen, int *rc);
	int (*poll)(void *state, int timeout_ms, scap_event_cb cb, void *ctx);
	int (*stats)(void *state, struct scap_stats *st);
	void (*close)(void *state);
};

extern const struct scap_engine scap_engine_kmod;
extern const struct scap_engine scap_engine_bpf;
extern const struct scap_engine scap_engine_modern_bpf;

/* snprintf into err; returns NULL so engines can `return scap_errorf(...)`. */
void *scap_errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* libbpf print callback: warnings (including verifier logs) to stderr. */
int scap_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args);

/* Lifts RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF maps against. */
void scap_raise_memlock(void);

/*
 * Fault variant slowopen: waits MINILIBS_OPEN_DELAY_S seconds between
 * loading a probe and attaching it, as long as a big probe's verification
 * under emulation; does nothing otherwise.
 */
void scap_open_delay(void);

#endif /* MINILIBS_SCAP_ENGINE_H */
