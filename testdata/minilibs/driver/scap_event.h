/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Event record shared by the three minilibs drivers (kernel module, legacy
 * eBPF probe, modern eBPF probe) and scap-open. Only fixed-size __u64/__u32
 * fields, so the layout is identical in the kernel, in BPF and in userspace.
 */
#ifndef MINILIBS_SCAP_EVENT_H
#define MINILIBS_SCAP_EVENT_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* One sys_enter occurrence. */
struct minilibs_event {
	__u64 ts_ns;      /* kernel monotonic time of the syscall entry */
	__s64 syscall_id; /* syscall number as passed to the sys_enter tracepoint */
	__u64 arg0;       /* first syscall argument (x86_64: regs->di, arm64: regs->orig_x0) */
	__u32 tid;        /* thread id of the caller */
	__u32 cpu;        /* CPU that recorded the event */
};

/* Counters the kernel module reports through MINILIBS_IOCTL_STATS. */
struct minilibs_stats {
	__u64 seen;    /* events the probe saw */
	__u64 dropped; /* events lost because the ring was full */
};

/* Name of the character device the kernel module creates (/dev/scap0). */
#define MINILIBS_DEVICE_NAME "scap0"

/* ioctl on /dev/scap0 that fills a struct minilibs_stats. */
#define MINILIBS_IOCTL_STATS _IOR('m', 1, struct minilibs_stats)

/*
 * openat's number on the drivers' architecture. The "behaviour" fault
 * variant records a wrong arg0 for this syscall only; one constant serves
 * the module and both probes, whatever headers each is built with
 * (drivers_test checks it against __NR_openat). Each build says its target
 * its own way: the kernel's config, the compiler, or the eBPF probes'
 * -D__TARGET_ARCH_<arch>.
 */
#if defined(CONFIG_ARM64) || defined(__aarch64__) || defined(__TARGET_ARCH_arm64)
#define MINILIBS_NR_OPENAT 56
#else
#define MINILIBS_NR_OPENAT 257
#endif

/* Index of the counters in the eBPF probes' "counters" array map. */
#define MINILIBS_COUNTER_SEEN 0
#define MINILIBS_COUNTER_DROPPED 1
#define MINILIBS_COUNTERS 2

#endif /* MINILIBS_SCAP_EVENT_H */
