// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * drivers_test: the behaviour tests of the minilibs drivers, with the command
 * line of libs' test/drivers (see usage). Setup removes a loaded scap module,
 * so the driver under test is the only one, then inserts and opens the module
 * (-k) or loads the modern probe (-m); teardown closes it and removes the
 * module. Exit status: googletest's (0 all passed, 1 otherwise); 1 also when
 * the command line or the setup fails, before any test runs.
 * --gtest_list_tests sets nothing up: listing needs no driver.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "driver_config.h"
#include "scap.h"

#define DEFAULT_KMOD_PATH "./driver/scap.ko"

#ifndef GTEST_FLAG_GET /* googletest < 1.12 */
#define GTEST_FLAG_GET(name) ::testing::GTEST_FLAG(name)
#endif

/* The driver under test, for the test suites. */
scap_t *g_engine;

static void banner(const char *phase)
{
	printf("\n======== drivers_test: %s ========\n\n", phase);
	fflush(stdout);
}

/* To stderr, after what is already on stdout. */
static void error(const std::string &msg)
{
	fflush(stdout);
	fprintf(stderr, "drivers_test: %s\n", msg.c_str());
}

/*
 * Removes the scap module if loaded. O_NONBLOCK: a module in use fails with
 * EWOULDBLOCK instead of blocking; its users get a few seconds to let go.
 * ENOSYS: the kernel cannot unload modules, so there is nothing to remove.
 */
static bool remove_kmod(std::string &err)
{
	int e = 0;

	for (int i = 0; i < 5; i++) {
		if (syscall(__NR_delete_module, DRIVER_NAME, O_NONBLOCK) == 0)
			return true;
		e = errno;
		if (e == ENOENT || e == ENOSYS)
			return true;
		if (e != EWOULDBLOCK)
			break;
		sleep(1);
	}
	err = "cannot remove kernel module '" DRIVER_NAME "': " + std::string(strerror(e));
	return false;
}

static bool insert_kmod(const std::string &path, std::string &err)
{
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && syscall(__NR_finit_module, fd, "", 0) == 0;

	if (!ok)
		err = (fd < 0 ? "cannot open kernel module " : "cannot insert kernel module ") + path + ": " +
		      strerror(errno);
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool setup(bool kmod, const std::string &kmod_path, std::string &err)
{
	struct scap_open_opts opts = {};
	char why[1024] = "";
	std::string ignored;
	int rc;

	/* Said plainly, rather than left to an EPERM (or ENOSYS) from the kernel. */
	if (geteuid() != 0) {
		err = "drivers_test must run as root: it removes and inserts kernel modules and loads eBPF programs";
		return false;
	}
	if (!remove_kmod(err) || (kmod && !insert_kmod(kmod_path, err)))
		return false;
	opts.source = kmod ? SCAP_SOURCE_KMOD : SCAP_SOURCE_MODERN_BPF;
	printf("* %s\n", kmod ? ("kernel module " + kmod_path + " inserted, events from /dev/" MINILIBS_DEVICE_NAME).c_str()
			      : "modern BPF probe");
	fflush(stdout);
	g_engine = scap_open(&opts, why, sizeof(why), &rc);
	if (!g_engine) {
		err = std::string("cannot open the engine: ") + why;
		remove_kmod(ignored);
	}
	return g_engine != NULL;
}

static const char usage[] =
	"usage: drivers_test [-k [PATH] | --kmod [PATH]] [-m | --modern-bpf] [googletest flags]\n"
	"  -k, --kmod [PATH]  insert the kernel module PATH (default " DEFAULT_KMOD_PATH ") and test it\n"
	"  -m, --modern-bpf   test the modern eBPF probe built into drivers_test\n"
	"exactly one of them; googletest's flags (--gtest_filter=, --gtest_output=xml:FILE,\n"
	"--gtest_list_tests, ...) work as usual\n";

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"kmod", optional_argument, NULL, 'k'},
		{"modern-bpf", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	std::string kmod_path, err;
	int engines = 0, opt, ret;
	bool kmod = false;

	/* Takes googletest's flags out of argv. */
	::testing::InitGoogleTest(&argc, argv);
	/* "+": no reordering, so the word after a bare -k can be its PATH. */
	while ((opt = getopt_long(argc, argv, "+k::mh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			kmod = true;
			engines++;
			if (optarg)
				kmod_path = optarg;
			else if (optind < argc && argv[optind][0] != '-')
				kmod_path = argv[optind++];
			else
				kmod_path = DEFAULT_KMOD_PATH;
			break;
		case 'm':
#ifndef MINILIBS_HAVE_MODERN_BPF
			error("Modern BPF engine is not supported in this build");
			return 1;
#endif
			engines++;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 1;
		}
	}
	if (optind != argc) {
		error(std::string("unexpected argument '") + argv[optind] + "'");
		return 1;
	}
	if (GTEST_FLAG_GET(list_tests))
		return RUN_ALL_TESTS();
	if (engines != 1) {
		error("choose exactly one engine: -k [PATH] or -m");
		return 1;
	}

	banner("setup (open the driver under test)");
	if (!setup(kmod, kmod_path, err)) {
		error("setup failed, no test ran: " + err);
		return 1;
	}
	banner("testing");
	ret = RUN_ALL_TESTS();
	banner("teardown (close the driver, remove the module)");
	scap_close(g_engine);
	if (!remove_kmod(err))
		error(err);
	return ret;
}
