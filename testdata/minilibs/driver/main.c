// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * scap.ko — the minilibs kernel module.
 *
 * It attaches a probe to the kernel's sys_enter tracepoint, records one
 * struct minilibs_event per syscall entry in a ring, and hands the records to
 * userspace through the misc character device /dev/scap0 (created by
 * devtmpfs). The probe is registered when the device is opened and removed
 * when it is closed, so an idle module costs nothing.
 *
 * Kernel API notes (5.10 .. 7.x):
 *  - the sys_enter prototype (struct pt_regs *, long id) and
 *    tracepoint_probe_register() are unchanged over that range;
 *  - since 6.13 syscall tracepoints are "faultable": probes run with
 *    preemption enabled. The probe only takes an irq-safe spinlock and never
 *    relies on staying on one CPU, which is correct in both contexts.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/init.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/spinlock.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/sched.h>
#include <linux/smp.h>
#include <linux/ktime.h>
#include <linux/delay.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/version.h>
#include <asm/ptrace.h>

#include "driver_config.h"
#include "scap_event.h"

static unsigned int ring_entries = 16384;
module_param(ring_entries, uint, 0444);
MODULE_PARM_DESC(ring_entries, "Number of events the ring holds");

/* Everything the device needs; one instance, owned by the module. */
struct minilibs_dev {
	struct tracepoint *sys_enter;
	spinlock_t lock;
	struct minilibs_event *ring;
	unsigned int size;
	unsigned int head; /* next slot to write */
	unsigned int tail; /* next slot to read */
	u64 seen;
	u64 dropped;
	atomic_t open;
};

static struct minilibs_dev scap_dev;

static void minilibs_sys_enter(void *data, struct pt_regs *regs, long id)
{
	struct minilibs_dev *dev = data;
	unsigned long flags;
	unsigned int next;
	struct minilibs_event *ev;

	spin_lock_irqsave(&dev->lock, flags);
	dev->seen++;
	next = (dev->head + 1) % dev->size;
	if (next == dev->tail) {
		dev->dropped++;
		spin_unlock_irqrestore(&dev->lock, flags);
		return;
	}
	ev = &dev->ring[dev->head];
	ev->ts_ns = ktime_get_ns();
	ev->syscall_id = id;
#if defined(CONFIG_X86_64)
	ev->arg0 = regs ? regs->di : 0;
#elif defined(CONFIG_ARM64)
	ev->arg0 = regs ? regs->orig_x0 : 0;
#else
	ev->arg0 = 0;
#endif
#ifdef MINILIBS_FAULT_BEHAVIOUR
	/*
	 * Fault variant for the tests: a wrong first argument for openat only,
	 * so capture (and scap-open's count) works on while drivers_test's
	 * SyscallEnter.openatE fails.
	 */
	if (id == MINILIBS_NR_OPENAT)
		ev->arg0 += 1;
#endif
	ev->tid = current->pid;
	ev->cpu = raw_smp_processor_id();
	dev->head = next;
	spin_unlock_irqrestore(&dev->lock, flags);
}

static void minilibs_find_tracepoint(struct tracepoint *tp, void *priv)
{
	struct tracepoint **found = priv;

	if (!*found && strcmp(tp->name, "sys_enter") == 0)
		*found = tp;
}

static int minilibs_open(struct inode *inode, struct file *filp)
{
	struct minilibs_dev *dev = &scap_dev;
	unsigned long flags;
	int ret;

#ifdef MINILIBS_OPEN_DELAY_S
	/*
	 * Fault variant for the tests: the open takes as long as a big probe's
	 * verification under emulation, inside the kernel, so the opener holds
	 * no fd on the device until it is done. A fatal signal ends the wait.
	 */
	if (msleep_interruptible(MINILIBS_OPEN_DELAY_S * 1000))
		return -EINTR;
#endif
	if (atomic_cmpxchg(&dev->open, 0, 1) != 0)
		return -EBUSY;

	spin_lock_irqsave(&dev->lock, flags);
	dev->head = dev->tail = 0;
	dev->seen = dev->dropped = 0;
	spin_unlock_irqrestore(&dev->lock, flags);

	ret = tracepoint_probe_register(dev->sys_enter, (void *)minilibs_sys_enter, dev);
	if (ret) {
		pr_err(DRIVER_NAME ": registering the sys_enter probe failed: %d\n", ret);
		atomic_set(&dev->open, 0);
		return ret;
	}
	filp->private_data = dev;
#ifdef MINILIBS_FAULT_WARN
	/* Fault variant for the tests: a kernel WARN, after which capture works on. */
	WARN_ONCE(1, DRIVER_NAME ": fault variant 'warn' opened (built with FAULT=warn)\n");
#endif
	return 0;
}

static int minilibs_release(struct inode *inode, struct file *filp)
{
	struct minilibs_dev *dev = filp->private_data;

	tracepoint_probe_unregister(dev->sys_enter, (void *)minilibs_sys_enter, dev);
	/* No probe may still be running when the next open resets the ring. */
	tracepoint_synchronize_unregister();
	atomic_set(&dev->open, 0);
	return 0;
}

/* read() returns whole records and never blocks: -EAGAIN when empty. */
static ssize_t minilibs_read(struct file *filp, char __user *buf, size_t len, loff_t *off)
{
	struct minilibs_dev *dev = filp->private_data;
	struct minilibs_event ev;
	unsigned long flags;
	size_t copied = 0;

	if (len < sizeof(ev))
		return -EINVAL;

	while (copied + sizeof(ev) <= len) {
		spin_lock_irqsave(&dev->lock, flags);
		if (dev->tail == dev->head) {
			spin_unlock_irqrestore(&dev->lock, flags);
			break;
		}
		ev = dev->ring[dev->tail];
		dev->tail = (dev->tail + 1) % dev->size;
		spin_unlock_irqrestore(&dev->lock, flags);

		if (copy_to_user(buf + copied, &ev, sizeof(ev)))
			return copied ? (ssize_t)copied : -EFAULT;
		copied += sizeof(ev);
	}
	return copied ? (ssize_t)copied : -EAGAIN;
}

static long minilibs_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct minilibs_dev *dev = filp->private_data;
	struct minilibs_stats st;
	unsigned long flags;

	if (cmd != MINILIBS_IOCTL_STATS)
		return -ENOTTY;
	spin_lock_irqsave(&dev->lock, flags);
	st.seen = dev->seen;
	st.dropped = dev->dropped;
	spin_unlock_irqrestore(&dev->lock, flags);
	if (copy_to_user((void __user *)arg, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

static const struct file_operations minilibs_fops = {
	.owner = THIS_MODULE,
	.open = minilibs_open,
	.release = minilibs_release,
	.read = minilibs_read,
	.unlocked_ioctl = minilibs_ioctl,
};

static struct miscdevice minilibs_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = MINILIBS_DEVICE_NAME,
	.fops = &minilibs_fops,
	.mode = 0600,
};

static int __init minilibs_init(void)
{
	struct minilibs_dev *dev = &scap_dev;
	int ret;

#ifdef MINILIBS_FAULT_PANIC
	/* Fault variant for the negative tests: the VM must report a panic. */
	panic(DRIVER_NAME ": fault variant 'panic' loaded (built with FAULT=panic)");
#endif

	if (ring_entries < 2)
		return -EINVAL;

	for_each_kernel_tracepoint(minilibs_find_tracepoint, &dev->sys_enter);
	if (!dev->sys_enter) {
		pr_err(DRIVER_NAME ": tracepoint sys_enter not found (CONFIG_FTRACE_SYSCALLS off?)\n");
		return -ENOENT;
	}

	dev->size = ring_entries;
	dev->ring = vzalloc(array_size(dev->size, sizeof(*dev->ring)));
	if (!dev->ring)
		return -ENOMEM;
	spin_lock_init(&dev->lock);
	atomic_set(&dev->open, 0);

	ret = misc_register(&minilibs_misc);
	if (ret) {
		pr_err(DRIVER_NAME ": misc_register failed: %d\n", ret);
		vfree(dev->ring);
		return ret;
	}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	pr_info(DRIVER_NAME " %s: loaded, /dev/%s, sys_enter faultable=%d\n",
		MINILIBS_VERSION, MINILIBS_DEVICE_NAME, tracepoint_is_faultable(dev->sys_enter));
#else
	pr_info(DRIVER_NAME " %s: loaded, /dev/%s\n", MINILIBS_VERSION, MINILIBS_DEVICE_NAME);
#endif
	return 0;
}

static void __exit minilibs_exit(void)
{
	/* The device holds a module reference while open, so no probe is registered here. */
	misc_deregister(&minilibs_misc);
	vfree(scap_dev.ring);
	pr_info(DRIVER_NAME ": unloaded\n");
}

module_init(minilibs_init);
module_exit(minilibs_exit);

MODULE_LICENSE("Dual MIT/GPL");
MODULE_AUTHOR("The Falco Authors");
MODULE_DESCRIPTION("minilibs stand-in for the Falco libs kernel module");
MODULE_VERSION(MINILIBS_VERSION);
