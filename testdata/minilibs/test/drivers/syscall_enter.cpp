// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * SyscallEnter: each test makes one syscall in the test thread and checks the
 * sys_enter event the driver recorded for it; named after libs' tests of the
 * same syscalls, so one --gtest_filter picks the same kind of tests in both.
 * The event is looked up by thread id, syscall number and a timestamp not
 * before the call (a driver that records them wrong fails the lookup); the
 * checks cover the rest: arg0, and a timestamp not after the call returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "scap.h"

static_assert(MINILIBS_NR_OPENAT == __NR_openat, "MINILIBS_NR_OPENAT must be this architecture's openat");

#define FIND_TIMEOUT_S 5
#define POLL_MS 50
/* A poll returns at least the poller's own syscalls: fewer than this, the ring is almost empty. */
#define DRAIN_FEW 64

extern scap_t *g_engine; /* start_tests.cpp */

/* CLOCK_MONOTONIC, the clock of the events' ts_ns. */
static uint64_t monotonic_ns()
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void discard(void *, const struct minilibs_event *)
{
}

/* Takes what the driver has buffered (for up to 1 s), so its ring has room for the test's events. */
static void drain_events()
{
	uint64_t deadline = monotonic_ns() + 1000000000ULL;

	while (monotonic_ns() < deadline && scap_poll(g_engine, 0, discard, NULL) >= DRAIN_FEW)
		;
}

/* What find_sys_enter looks for, and what it found. */
struct wanted {
	uint32_t tid;
	long nr;
	uint64_t since_ns;
	bool found;
	struct minilibs_event ev;
};

static void match(void *ctx, const struct minilibs_event *ev)
{
	struct wanted *w = (struct wanted *)ctx;

	if (!w->found && ev->tid == w->tid && ev->syscall_id == w->nr && ev->ts_ns >= w->since_ns) {
		w->ev = *ev;
		w->found = true;
	}
}

/* Polls for this thread's sys_enter event of syscall nr made at or after since_ns. */
static bool find_sys_enter(long nr, uint64_t since_ns, struct minilibs_event *ev)
{
	struct wanted w = {(uint32_t)syscall(SYS_gettid), nr, since_ns, false, {}};
	uint64_t deadline = monotonic_ns() + FIND_TIMEOUT_S * 1000000000ULL;

	while (!w.found && monotonic_ns() < deadline && scap_poll(g_engine, POLL_MS, match, &w) >= 0)
		;
	*ev = w.ev;
	return w.found;
}

/* Drains the driver, runs call (which makes syscall nr) and checks the event it records. */
template <typename Call> static void check_sys_enter(long nr, uint64_t expected_arg0, Call call)
{
	struct minilibs_event ev;
	uint64_t before, after;

	ASSERT_NE(g_engine, nullptr) << "no driver open";
	drain_events();
	before = monotonic_ns();
	call();
	after = monotonic_ns();
	ASSERT_TRUE(find_sys_enter(nr, before, &ev)) << "no sys_enter event of syscall " << nr << " from tid "
						     << syscall(SYS_gettid) << " within " << FIND_TIMEOUT_S << " s";
	EXPECT_EQ(expected_arg0, ev.arg0) << "arg0 (first argument) of syscall " << nr;
	EXPECT_LE(ev.ts_ns, after) << "ts_ns of syscall " << nr << " is later than its return";
}

#ifdef __NR_open /* arm64 has openat only */
TEST(SyscallEnter, openE)
{
	/* Missing: the open fails, and no writable directory is needed. */
	static const char path[] = "/minilibs-drivers-test/no-such-file";

	check_sys_enter(__NR_open, (uint64_t)(uintptr_t)path,
			[&] { EXPECT_EQ(-1, syscall(__NR_open, path, O_RDONLY)) << path << " exists"; });
}
#endif

TEST(SyscallEnter, openatE)
{
	static const char path[] = "minilibs-drivers-test-no-such-file";

	/* AT_FDCWD as a long: an int would reach the kernel without its upper 32 bits set. */
	check_sys_enter(__NR_openat, (uint64_t)(int64_t)AT_FDCWD,
			[&] { EXPECT_EQ(-1, syscall(__NR_openat, (long)AT_FDCWD, path, O_RDONLY)) << path << " exists"; });
}

TEST(SyscallEnter, connectE_INET_failure)
{
	struct sockaddr_in addr = {};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ASSERT_GE(fd, 0) << "socket: " << strerror(errno);
	/* Nothing listens on port 1: ECONNREFUSED (ENETUNREACH while lo is down). */
	addr.sin_family = AF_INET;
	addr.sin_port = htons(1);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	check_sys_enter(__NR_connect, (uint64_t)fd, [&] {
		EXPECT_EQ(-1, connect(fd, (struct sockaddr *)&addr, sizeof(addr))) << "connect to 127.0.0.1:1 succeeded";
	});
	close(fd);
}

TEST(SyscallEnter, dupE)
{
	int p[2];

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC)) << "pipe2: " << strerror(errno);
	check_sys_enter(__NR_dup, (uint64_t)p[0], [&] {
		int fd = dup(p[0]);

		EXPECT_GE(fd, 0) << "dup: " << strerror(errno);
		close(fd);
	});
	close(p[0]);
	close(p[1]);
}
