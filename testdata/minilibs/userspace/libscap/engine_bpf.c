// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * bpf engine: loads the legacy probe.o with libbpf, attaches it to the
 * sys_enter raw tracepoint and reads its "events" perf event array through
 * one mmap'ed perf ring per CPU (read here directly, as libscap does,
 * rather than through libbpf's perf_buffer API, which changed over libbpf
 * versions).
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "scap_engine.h"

#ifndef EM_BPF
#define EM_BPF 247
#endif

#define RING_PAGES 16 /* data pages per CPU, a power of two */

struct perf_ring {
	int fd;
	void *base;
	size_t data_size;
};

struct bpf_state {
	struct bpf_object *obj;
	struct bpf_link *link;
	int counters_fd;
	int nrings;
	struct perf_ring *rings;
	size_t page;
	uint64_t lost;
	unsigned char scratch[4096];
};

static void bpf_close_state(void *state);

/* Rejects anything but a BPF ELF object with a clear message before libbpf sees it. */
static int check_bpf_elf(const char *path, char *err, size_t errlen)
{
	GElf_Ehdr eh;
	Elf *e;
	int fd, ret = -1;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		scap_errorf(err, errlen, "libelf: %s", elf_errmsg(-1));
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		scap_errorf(err, errlen, "cannot open BPF probe '%s': %s", path, strerror(errno));
		return -1;
	}
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh))
		scap_errorf(err, errlen, "BPF probe '%s' is not an ELF object", path);
	else if (eh.e_machine != EM_BPF)
		scap_errorf(err, errlen, "BPF probe '%s' is an ELF object for machine %d, not BPF (%d)", path,
			    eh.e_machine, EM_BPF);
	else
		ret = 0;
	if (e)
		elf_end(e);
	close(fd);
	return ret;
}

static int open_rings(struct bpf_state *s, int map_fd, char *err, size_t errlen)
{
	int ncpus = libbpf_num_possible_cpus();
	int cpu;

	if (ncpus <= 0) {
		scap_errorf(err, errlen, "cannot count possible CPUs: %d", ncpus);
		return -1;
	}
	s->page = (size_t)sysconf(_SC_PAGESIZE);
	s->rings = calloc((size_t)ncpus, sizeof(*s->rings));
	if (!s->rings) {
		scap_errorf(err, errlen, "out of memory");
		return -1;
	}
	for (cpu = 0; cpu < ncpus; cpu++) {
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE,
			.size = sizeof(attr),
			.config = PERF_COUNT_SW_BPF_OUTPUT,
			.sample_type = PERF_SAMPLE_RAW,
			.sample_period = 1,
			.wakeup_events = 1,
		};
		struct perf_ring *r = &s->rings[s->nrings];
		size_t len = s->page * (RING_PAGES + 1);
		int fd;

		fd = (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV) /* possible but offline CPU */
				continue;
			scap_errorf(err, errlen, "perf_event_open on CPU %d: %s", cpu, strerror(errno));
			return -1;
		}
		r->fd = fd;
		r->base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (r->base == MAP_FAILED) {
			r->base = NULL;
			close(fd);
			scap_errorf(err, errlen, "mmap perf ring of CPU %d: %s", cpu, strerror(errno));
			return -1;
		}
		r->data_size = s->page * RING_PAGES;
		s->nrings++;
		if (bpf_map_update_elem(map_fd, &cpu, &fd, BPF_ANY) != 0) {
			scap_errorf(err, errlen, "attach perf ring of CPU %d to map 'events': %s", cpu, strerror(errno));
			return -1;
		}
		if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0) {
			scap_errorf(err, errlen, "enable perf ring of CPU %d: %s", cpu, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void *bpf_open(const struct scap_open_opts *opts, char *err, size_t errlen, int *rc)
{
	struct bpf_program *prog;
	struct bpf_map *events, *counters;
	struct bpf_state *s;
	int major, minor, ret;
	char release[128];

	if (!opts->bpf_probe)
		return scap_errorf(err, errlen, "no BPF probe given");
	if (scap_kernel_version(&major, &minor, release, sizeof(release)) == 0 &&
	    (major < 4 || (major == 4 && minor < 17))) {
		*rc = SCAP_NOT_SUPPORTED;
		return scap_errorf(err, errlen, "BPF probe needs raw tracepoints (kernel >= 4.17), running %s", release);
	}
	if (check_bpf_elf(opts->bpf_probe, err, errlen) != 0)
		return NULL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return scap_errorf(err, errlen, "out of memory");
	s->counters_fd = -1;
	scap_raise_memlock();
	libbpf_set_print(scap_libbpf_print);

	s->obj = bpf_object__open_file(opts->bpf_probe, NULL);
	if (!s->obj || libbpf_get_error(s->obj)) {
		ret = s->obj ? (int)libbpf_get_error(s->obj) : -errno;
		s->obj = NULL;
		bpf_close_state(s);
		return scap_errorf(err, errlen, "cannot open BPF probe '%s': %s", opts->bpf_probe, strerror(-ret));
	}
	ret = bpf_object__load(s->obj);
	if (ret) {
		bpf_close_state(s);
		return scap_errorf(err, errlen, "cannot load BPF probe '%s': %s (libbpf's messages above)", opts->bpf_probe,
				   strerror(-ret));
	}
	prog = bpf_object__find_program_by_name(s->obj, "minilibs_sys_enter");
	events = bpf_object__find_map_by_name(s->obj, "events");
	counters = bpf_object__find_map_by_name(s->obj, "counters");
	if (!prog || !events || !counters) {
		bpf_close_state(s);
		return scap_errorf(err, errlen,
				   "BPF probe '%s' lacks program minilibs_sys_enter or maps events/counters",
				   opts->bpf_probe);
	}
	s->counters_fd = bpf_map__fd(counters);
	if (open_rings(s, bpf_map__fd(events), err, errlen) != 0) {
		bpf_close_state(s);
		return NULL;
	}
	scap_open_delay();
	s->link = bpf_program__attach(prog);
	if (!s->link || libbpf_get_error(s->link)) {
		ret = s->link ? (int)libbpf_get_error(s->link) : -errno;
		s->link = NULL;
		bpf_close_state(s);
		return scap_errorf(err, errlen, "cannot attach BPF probe to raw tracepoint sys_enter: %s", strerror(-ret));
	}
	return s;
}

static int read_ring(struct bpf_state *s, struct perf_ring *r, scap_event_cb cb, void *ctx)
{
	struct perf_event_mmap_page *meta = r->base;
	unsigned char *data = (unsigned char *)r->base + s->page;
	uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = meta->data_tail;
	int n = 0;

	while (tail < head) {
		size_t off = (size_t)(tail % r->data_size);
		struct perf_event_header *hdr = (struct perf_event_header *)(data + off);
		size_t size = hdr->size;
		unsigned char *rec = data + off;

		if (size == 0 || size > sizeof(s->scratch))
			break; /* corrupt ring: stop rather than loop */
		if (off + size > r->data_size) {
			size_t first = r->data_size - off;

			memcpy(s->scratch, rec, first);
			memcpy(s->scratch + first, data, size - first);
			rec = s->scratch;
		}
		hdr = (struct perf_event_header *)rec;
		if (hdr->type == PERF_RECORD_SAMPLE) {
			uint32_t raw_size;
			struct minilibs_event ev;

			memcpy(&raw_size, rec + sizeof(*hdr), sizeof(raw_size));
			if (raw_size >= sizeof(ev)) {
				memcpy(&ev, rec + sizeof(*hdr) + sizeof(raw_size), sizeof(ev));
				cb(ctx, &ev);
				n++;
			}
		} else if (hdr->type == PERF_RECORD_LOST) {
			uint64_t lost;

			memcpy(&lost, rec + sizeof(*hdr) + sizeof(uint64_t), sizeof(lost));
			s->lost += lost;
		}
		tail += size;
	}
	__atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
	return n;
}

static int bpf_poll(void *state, int timeout_ms, scap_event_cb cb, void *ctx)
{
	struct bpf_state *s = state;
	int i, n = 0;

	for (i = 0; i < s->nrings; i++)
		n += read_ring(s, &s->rings[i], cb, ctx);
	if (n == 0) {
		usleep((useconds_t)timeout_ms * 1000);
		for (i = 0; i < s->nrings; i++)
			n += read_ring(s, &s->rings[i], cb, ctx);
	}
	return n;
}

static int bpf_stats(void *state, struct scap_stats *st)
{
	struct bpf_state *s = state;
	uint32_t seen_key = MINILIBS_COUNTER_SEEN, dropped_key = MINILIBS_COUNTER_DROPPED;
	uint64_t seen = 0, dropped = 0;

	if (bpf_map_lookup_elem(s->counters_fd, &seen_key, &seen) != 0 ||
	    bpf_map_lookup_elem(s->counters_fd, &dropped_key, &dropped) != 0)
		return SCAP_FAILURE;
	st->seen = seen;
	st->dropped = dropped + s->lost;
	return SCAP_SUCCESS;
}

static void bpf_close_state(void *state)
{
	struct bpf_state *s = state;
	int i;

	if (s->link)
		bpf_link__destroy(s->link);
	for (i = 0; i < s->nrings; i++) {
		munmap(s->rings[i].base, s->page * (RING_PAGES + 1));
		close(s->rings[i].fd);
	}
	free(s->rings);
	if (s->obj)
		bpf_object__close(s->obj);
	free(s);
}

const struct scap_engine scap_engine_bpf = {
	.name = "bpf",
	.open = bpf_open,
	.poll = bpf_poll,
	.stats = bpf_stats,
	.close = bpf_close_state,
};
