// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * scap-open: opens one driver (--kmod, --bpf FILE or --modern_bpf), counts
 * the events it delivers and prints a summary whose line
 * "Events correctly captured (SCAP_SUCCESS): N" test tooling reads.
 *
 * Exit codes: 0 capture ran (whatever the count), 1 the driver could not be
 * opened/loaded/attached, 2 usage error, 95 the driver is not supported on
 * this kernel (a skip, not a failure).
 *
 * By default a helper thread calls getpid() about every millisecond while
 * capturing, so a count is reached even on an otherwise idle machine;
 * --no_helper turns it off.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "scap.h"

#ifdef MINILIBS_FAULT_SCAP_OPEN
#error "scap-open: fault variant 'scap-open' (MINILIBS_FAULT=scap-open) does not compile"
#endif

#define DEFAULT_TIMEOUT_S 20
#define POLL_MS 20

static volatile sig_atomic_t stop_requested;

struct capture {
	uint64_t captured;
	uint64_t limit;
	uLong crc;
	int have_first;
	struct minilibs_event first;
};

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_event(void *ctx, const struct minilibs_event *ev)
{
	struct capture *c = ctx;

	if (c->captured >= c->limit)
		return;
	if (!c->have_first) {
		c->first = *ev;
		c->have_first = 1;
	}
	c->captured++;
	c->crc = crc32(c->crc, (const Bytef *)ev, sizeof(*ev));
}

static void *syscall_helper(void *arg)
{
	volatile int *stop = arg;
	struct timespec ms = {0, 1000000};

	while (!*stop) {
		syscall(SYS_getpid);
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s (--kmod | --bpf FILE | --modern_bpf) [--num_events N] [--timeout SECONDS] [--no_helper]\n"
		"  --kmod             read events from the kernel module (/dev/%s)\n"
		"  --bpf FILE         load the legacy eBPF probe FILE (probe.o)\n"
		"  --modern_bpf       load the modern eBPF probe built into scap-open\n"
		"  --num_events N     stop after N events (default: no limit)\n"
		"  --timeout SECONDS  stop after SECONDS (default %d)\n"
		"  --no_helper        do not run the getpid() helper thread while capturing\n"
		"exit: 0 ran, 1 driver open/load failure, 2 usage, 95 driver not supported on this kernel\n",
		prog, MINILIBS_DEVICE_NAME, DEFAULT_TIMEOUT_S);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"kmod", no_argument, NULL, 'k'},
		{"bpf", required_argument, NULL, 'b'},
		{"modern_bpf", no_argument, NULL, 'm'},
		{"num_events", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"no_helper", no_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct scap_open_opts opts = {0};
	struct capture cap = {0};
	struct scap_stats st = {0};
	uint64_t timeout_s = DEFAULT_TIMEOUT_S, timeouts = 0;
	int nsources = 0, helper = 1, rc, opt;
	volatile int helper_stop = 0;
	pthread_t helper_thread;
	char err[1024] = "", limit[32];
	double start, elapsed;
	scap_t *h;

	cap.limit = UINT64_MAX;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			opts.source = SCAP_SOURCE_KMOD;
			nsources++;
			break;
		case 'b':
			opts.source = SCAP_SOURCE_BPF;
			opts.bpf_probe = optarg;
			nsources++;
			break;
		case 'm':
			opts.source = SCAP_SOURCE_MODERN_BPF;
			nsources++;
			break;
		case 'n':
			if (parse_u64(optarg, &cap.limit) != 0 || cap.limit == 0) {
				fprintf(stderr, "scap-open: --num_events %s: want a positive integer\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (parse_u64(optarg, &timeout_s) != 0 || timeout_s == 0) {
				fprintf(stderr, "scap-open: --timeout %s: want a positive number of seconds\n", optarg);
				return 2;
			}
			break;
		case 'H':
			helper = 0;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (nsources != 1 || optind != argc) {
		fprintf(stderr, "scap-open: choose exactly one of --kmod, --bpf FILE, --modern_bpf\n");
		usage(stderr, argv[0]);
		return 2;
	}

	printf("\n[SCAP-OPEN]: Hello!\n");
	printf("---------------------- SCAP SOURCE ----------------------\n");
	switch (opts.source) {
	case SCAP_SOURCE_KMOD:
		printf("* kernel module (/dev/%s)\n", MINILIBS_DEVICE_NAME);
		break;
	case SCAP_SOURCE_BPF:
		printf("* BPF probe: '%s'\n", opts.bpf_probe);
		break;
	case SCAP_SOURCE_MODERN_BPF:
		printf("* modern BPF probe\n");
		break;
	}
	/*
	 * No fflush: like libs' scap-open, nothing tells a reader of a pipe
	 * that the driver is open (stdout to a pipe is block-buffered); tools
	 * must look at the kernel side.
	 */
	printf("---------------------------------------------------------\n");

	h = scap_open(&opts, err, sizeof(err), &rc);
	if (!h) {
		if (rc == SCAP_NOT_SUPPORTED) {
			fprintf(stderr, "scap-open: not supported on this kernel: %s\n", err);
			return SCAP_NOT_SUPPORTED;
		}
		fprintf(stderr, "scap-open: cannot open the driver: %s\n", err);
		return 1;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (helper && pthread_create(&helper_thread, NULL, syscall_helper, (void *)&helper_stop) != 0) {
		fprintf(stderr, "scap-open: cannot start the syscall helper thread; continuing without it\n");
		helper = 0;
	}
	if (cap.limit == UINT64_MAX)
		snprintf(limit, sizeof(limit), "unlimited");
	else
		snprintf(limit, sizeof(limit), "%" PRIu64, cap.limit);
	printf("[SCAP-OPEN]: capturing (num_events %s, timeout %" PRIu64 " s, syscall helper %s)\n", limit, timeout_s,
	       helper ? "on" : "off");

	cap.crc = crc32(0L, Z_NULL, 0);
	start = now_s();
	rc = 0;
	while (!stop_requested && cap.captured < cap.limit && now_s() - start < (double)timeout_s) {
		int n = scap_poll(h, POLL_MS, on_event, &cap);

		if (n < 0) {
			fprintf(stderr, "scap-open: reading events failed: %s\n", strerror(errno));
			rc = 1;
			break;
		}
		if (n == 0)
			timeouts++;
	}
	elapsed = now_s() - start;
	if (helper) {
		helper_stop = 1;
		pthread_join(helper_thread, NULL);
	}
	if (scap_get_stats(h, &st) != SCAP_SUCCESS)
		fprintf(stderr, "scap-open: cannot read the driver's counters\n");
	scap_close(h);

	printf("\n---------------------- STATS -----------------------\n");
	if (cap.have_first)
		printf("First event: tid %u, cpu %u, syscall %" PRId64 "\n", cap.first.tid, cap.first.cpu,
		       (int64_t)cap.first.syscall_id);
	printf("Events correctly captured (SCAP_SUCCESS): %" PRIu64 "\n", cap.captured);
	printf("Events seen by the driver: %" PRIu64 "\n", (uint64_t)st.seen);
	printf("Number of dropped events: %" PRIu64 "\n", (uint64_t)st.dropped);
	printf("Number of timeouts: %" PRIu64 "\n", timeouts);
	printf("Number of events per second: %.0f\n", elapsed > 0 ? (double)cap.captured / elapsed : 0.0);
	printf("Events checksum (zlib %s crc32): 0x%08lx\n", zlibVersion(), (unsigned long)cap.crc);
	printf("Time elapsed: %.3f s\n", elapsed);
	printf("-----------------------------------------------------\n");
	printf("\n[SCAP-OPEN]: Bye!\n");
	return rc;
}
