// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * modern_bpf engine: loads the CO-RE probe embedded in scap-open at build
 * time, attaches it to the sys_enter BTF tracepoint and reads its ring
 * buffer. Needs kernel >= 5.8 (BPF ring buffer) and kernel BTF.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "scap_engine.h"

#define VMLINUX_BTF "/sys/kernel/btf/vmlinux"

#ifdef MINILIBS_HAVE_MODERN_BPF
extern const unsigned char minilibs_modern_bpf_object[];
extern const unsigned long minilibs_modern_bpf_object_len;
#endif

struct modern_state {
	struct bpf_object *obj;
	struct bpf_link *link;
	struct ring_buffer *rb;
	int counters_fd;
	scap_event_cb cb;
	void *ctx;
	int n;
};

static void modern_close(void *state);

static int on_sample(void *ctx, void *data, size_t size)
{
	struct modern_state *s = ctx;
	struct minilibs_event ev;

	if (size < sizeof(ev))
		return 0;
	memcpy(&ev, data, sizeof(ev));
	s->cb(s->ctx, &ev);
	s->n++;
	return 0;
}

static void *modern_open(const struct scap_open_opts *opts, char *err, size_t errlen, int *rc)
{
#ifndef MINILIBS_HAVE_MODERN_BPF
	return scap_errorf(err, errlen, "scap-open was built without the modern BPF probe (BUILD_LIBSCAP_MODERN_BPF=OFF)");
#else
	DECLARE_LIBBPF_OPTS(bpf_object_open_opts, open_opts, .object_name = "minilibs_modern_bpf");
	struct bpf_program *prog;
	struct bpf_map *ringbuf, *counters;
	struct modern_state *s;
	int major, minor, ret;
	char release[128];

	if (scap_kernel_version(&major, &minor, release, sizeof(release)) != 0)
		return scap_errorf(err, errlen, "cannot read the kernel version: %s", strerror(errno));
	if (major < 5 || (major == 5 && minor < 8)) {
		*rc = SCAP_NOT_SUPPORTED;
		return scap_errorf(err, errlen, "modern BPF probe needs kernel >= 5.8 (BPF ring buffer), running %s",
				   release);
	}
	/* Without sysfs the guest is broken, not the kernel unsupported: fail, do not skip. */
	if (access("/sys/kernel", F_OK) != 0)
		return scap_errorf(err, errlen, "cannot check kernel BTF: /sys/kernel: %s (is sysfs mounted?)",
				   strerror(errno));
	if (access(VMLINUX_BTF, R_OK) != 0) {
		*rc = SCAP_NOT_SUPPORTED;
		return scap_errorf(err, errlen, "modern BPF probe needs kernel BTF (CONFIG_DEBUG_INFO_BTF): %s: %s",
				   VMLINUX_BTF, strerror(errno));
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return scap_errorf(err, errlen, "out of memory");
	scap_raise_memlock();
	libbpf_set_print(scap_libbpf_print);

	s->obj = bpf_object__open_mem(minilibs_modern_bpf_object, minilibs_modern_bpf_object_len, &open_opts);
	if (!s->obj || libbpf_get_error(s->obj)) {
		ret = s->obj ? (int)libbpf_get_error(s->obj) : -errno;
		s->obj = NULL;
		modern_close(s);
		return scap_errorf(err, errlen, "cannot open the modern BPF probe: %s", strerror(-ret));
	}
	ret = bpf_object__load(s->obj);
	if (ret) {
		modern_close(s);
		return scap_errorf(err, errlen, "cannot load the modern BPF probe: %s (libbpf's messages above)",
				   strerror(-ret));
	}
	prog = bpf_object__find_program_by_name(s->obj, "minilibs_modern_sys_enter");
	ringbuf = bpf_object__find_map_by_name(s->obj, "ringbuf");
	counters = bpf_object__find_map_by_name(s->obj, "counters");
	if (!prog || !ringbuf || !counters) {
		modern_close(s);
		return scap_errorf(err, errlen, "modern BPF probe lacks program or maps");
	}
	s->counters_fd = bpf_map__fd(counters);
	s->rb = ring_buffer__new(bpf_map__fd(ringbuf), on_sample, s, NULL);
	if (!s->rb || libbpf_get_error(s->rb)) {
		s->rb = NULL;
		modern_close(s);
		return scap_errorf(err, errlen, "cannot map the BPF ring buffer: %s", strerror(errno));
	}
	scap_open_delay();
	s->link = bpf_program__attach(prog);
	if (!s->link || libbpf_get_error(s->link)) {
		ret = s->link ? (int)libbpf_get_error(s->link) : -errno;
		s->link = NULL;
		modern_close(s);
		return scap_errorf(err, errlen, "cannot attach the modern BPF probe to tp_btf/sys_enter: %s",
				   strerror(-ret));
	}
	return s;
#endif
}

static int modern_poll(void *state, int timeout_ms, scap_event_cb cb, void *ctx)
{
	struct modern_state *s = state;
	int ret;

	s->cb = cb;
	s->ctx = ctx;
	s->n = 0;
	ret = ring_buffer__poll(s->rb, timeout_ms);
	if (ret < 0 && ret != -EINTR)
		return -1;
	return s->n;
}

static int modern_stats(void *state, struct scap_stats *st)
{
	struct modern_state *s = state;
	uint32_t seen_key = MINILIBS_COUNTER_SEEN, dropped_key = MINILIBS_COUNTER_DROPPED;
	uint64_t seen = 0, dropped = 0;

	if (bpf_map_lookup_elem(s->counters_fd, &seen_key, &seen) != 0 ||
	    bpf_map_lookup_elem(s->counters_fd, &dropped_key, &dropped) != 0)
		return SCAP_FAILURE;
	st->seen = seen;
	st->dropped = dropped;
	return SCAP_SUCCESS;
}

static void modern_close(void *state)
{
	struct modern_state *s = state;

	if (s->link)
		bpf_link__destroy(s->link);
	if (s->rb)
		ring_buffer__free(s->rb);
	if (s->obj)
		bpf_object__close(s->obj);
	free(s);
}

const struct scap_engine scap_engine_modern_bpf = {
	.name = "modern_bpf",
	.open = modern_open,
	.poll = modern_poll,
	.stats = modern_stats,
	.close = modern_close,
};
