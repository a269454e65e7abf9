// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * Legacy eBPF probe of minilibs, compiled per kernel against that kernel's
 * headers. Attached to the sys_enter raw tracepoint, it counts every syscall
 * entry in the "counters" array map and forwards one struct minilibs_event
 * per entry to userspace through the "events" perf event array.
 *
 * Helpers are declared here from the kernel's uapi BPF_FUNC_* numbers, so
 * the probe needs nothing but the kernel headers (no libbpf headers).
 */
#include <linux/types.h>
#include <linux/ptrace.h>
#include <uapi/linux/bpf.h>

#include "scap_event.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) =
	(void *)BPF_FUNC_perf_event_output;
static long (*bpf_probe_read)(void *dst, __u32 size, const void *src) = (void *)BPF_FUNC_probe_read;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)BPF_FUNC_get_smp_processor_id;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MINILIBS_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#ifdef MINILIBS_FAULT_VERIFIER
/*
 * Fault variant for the negative tests: a hash map lookup may return NULL
 * whatever the key, and the program uses the result unchecked, which every
 * verifier rejects. (An array lookup with a constant key would not do: newer
 * verifiers prove it non-NULL.)
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} fault SEC(".maps");
#endif

static __attribute__((always_inline)) inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("raw_tracepoint/sys_enter")
int minilibs_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	struct minilibs_event ev = {};
#ifdef MINILIBS_FAULT_VERIFIER
	{
		__u32 key = 0;
		__u64 *f = bpf_map_lookup_elem(&fault, &key);

		*f += 1;
	}
#endif

	count(MINILIBS_COUNTER_SEEN);
	ev.ts_ns = bpf_ktime_get_ns();
	ev.syscall_id = (__s64)ctx->args[1];
#ifdef __TARGET_ARCH_arm64
	bpf_probe_read(&ev.arg0, sizeof(ev.arg0), &regs->orig_x0);
#else
	bpf_probe_read(&ev.arg0, sizeof(ev.arg0), &regs->di);
#endif
#ifdef MINILIBS_FAULT_BEHAVIOUR
	/* Fault variant for the tests: a wrong first argument for openat only. */
	if (ev.syscall_id == MINILIBS_NR_OPENAT)
		ev.arg0 += 1;
#endif
	ev.tid = (__u32)bpf_get_current_pid_tgid();
	ev.cpu = bpf_get_smp_processor_id();
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &ev, sizeof(ev)) != 0)
		count(MINILIBS_COUNTER_DROPPED);
	return 0;
}

char _license[] SEC("license") = "Dual MIT/GPL";
