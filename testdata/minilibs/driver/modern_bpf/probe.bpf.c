// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * Modern (CO-RE) eBPF probe of minilibs, compiled once with
 * MODERN_CLANG_EXE -target bpf against uapi headers and libbpf's
 * bpf_helpers.h only (no kernel headers). struct pt_regs is described
 * locally with preserve_access_index, so libbpf relocates the field offset
 * against the running kernel's BTF at load time. Events go to userspace
 * through a BPF ring buffer (kernel >= 5.8).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "scap_event.h"

struct pt_regs {
#ifdef __TARGET_ARCH_arm64
	unsigned long orig_x0;
#else
	unsigned long di;
#endif
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} ringbuf SEC(".maps");

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

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tp_btf/sys_enter")
int minilibs_modern_sys_enter(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	struct minilibs_event *ev;
#ifdef MINILIBS_FAULT_VERIFIER
	{
		__u32 key = 0;
		__u64 *f = bpf_map_lookup_elem(&fault, &key);

		*f += 1;
	}
#endif

	count(MINILIBS_COUNTER_SEEN);
	ev = bpf_ringbuf_reserve(&ringbuf, sizeof(*ev), 0);
	if (!ev) {
		count(MINILIBS_COUNTER_DROPPED);
		return 0;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->syscall_id = (__s64)ctx[1];
	ev->arg0 = 0;
#ifdef __TARGET_ARCH_arm64
	bpf_probe_read_kernel(&ev->arg0, sizeof(ev->arg0), &regs->orig_x0);
#else
	bpf_probe_read_kernel(&ev->arg0, sizeof(ev->arg0), &regs->di);
#endif
#ifdef MINILIBS_FAULT_BEHAVIOUR
	/* Fault variant for the tests: a wrong first argument for openat only. */
	if (ev->syscall_id == MINILIBS_NR_OPENAT)
		ev->arg0 += 1;
#endif
	ev->tid = (__u32)bpf_get_current_pid_tgid();
	ev->cpu = bpf_get_smp_processor_id();
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

char _license[] SEC("license") = "Dual MIT/GPL";
