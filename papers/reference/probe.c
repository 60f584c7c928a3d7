/*
 * probe.c: the C reference probe for barrierlab.
 *
 * Measures the raw costs that the paper sets beside barrierlab's per-fault and per-store
 * costs: first touch of anonymous pages, a null system call, thread wake-up round trips
 * through pipes, mprotect + SIGSEGV, userfaultfd write protection (synchronous with a
 * service thread, with SIGBUS, and asynchronous with PAGEMAP_SCAN) and card-marking
 * stores. Every kernel quantity is measured on one 64 MiB anonymous mapping (16,384
 * pages of 4 KiB) with MADV_NOHUGEPAGE, repeated (9 repetitions after 2 warm-ups by
 * default) and printed as
 *
 *     key  min  median  max  unit  what
 *
 * over the repetitions. A probe whose kernel feature is missing prints
 * "key skipped: reason" instead.
 *
 * Build: make -C papers/reference probe      Run: papers/reference/probe [-q] [section...]
 * Sections: basic mprotect uffdwp sigbus async stores (default: all). -q: 3 repetitions
 * after 1 warm-up, for a quick check.
 *
 * Written from the man pages (userfaultfd(2), ioctl_userfaultfd(2), PAGEMAP_SCAN(2const))
 * and the kernel's userfaultfd documentation. The system headers may predate the kernel
 * (WP_ASYNC is Linux 6.7, PAGEMAP_SCAN 6.7), so the newer constants are defined here; the
 * running kernel decides whether they work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---- constants newer than the system headers -------------------------------------- */

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_SIGBUS
#define UFFD_FEATURE_SIGBUS (1 << 7)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* PAGEMAP_SCAN (ioctl on /proc/PID/pagemap, Linux 6.7). Own names, so that newer
 * system headers that define the same structures do not clash. */
struct probe_page_region {
	uint64_t start, end, categories;
};
struct probe_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PROBE_PAGEMAP_SCAN _IOWR('f', 16, struct probe_pm_scan_arg)
#define PROBE_PM_SCAN_WP_MATCHING (1ULL << 0)
#define PROBE_PM_SCAN_CHECK_WPASYNC (1ULL << 1)
#define PROBE_PAGE_IS_WRITTEN (1ULL << 1)

/* ---- parameters -------------------------------------------------------------------- */

#define NPAGES 16384             /* 64 MiB of 4 KiB pages */
#define STORES (8u << 20)        /* 8 Mi stores per repetition */
#define DRAM_HEAP (64u << 20)    /* heap for the DRAM store probes */
#define L2_HEAP (256u << 10)     /* heap for the L2 store probes */
#define CARD_SHIFT 9             /* one card byte per 512 heap bytes */
#define SYSCALLS 200000          /* getppid calls per repetition */
#define PINGPONGS 5000           /* pipe round trips per repetition */
#define MAXREPS 64

static int reps = 9, warm = 2;
static size_t pg;                /* page size */
static size_t region_len;        /* NPAGES * pg */
static int cpu_a = -1, cpu_b = -1; /* the first two CPUs this process may run on */
static cpu_set_t orig_affinity;
static uint64_t uffd_features;   /* what the kernel offers (0 if userfaultfd fails) */
static char uffd_why[160];       /* why userfaultfd is unusable, if it is */

/* ---- helpers ----------------------------------------------------------------------- */

static uint64_t clock_ns(clockid_t c)
{
	struct timespec t;
	if (clock_gettime(c, &t) != 0) {
		perror("probe: clock_gettime");
		exit(1);
	}
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Wall time: for the probes that measure waiting for another thread (pipe ping-pong,
 * the uffd service thread), and for the whole run. */
static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* The thread's CPU time, for every probe that one thread runs by itself (faults, system
 * calls and stores all count there, in the kernel or not). On a shared machine it leaves
 * out the time the thread waits for a CPU, which wall time would add to the cost (a store
 * repetition lasts a few milliseconds, about a time slice). Wall time if the clock is
 * missing; the header says which. */
static clockid_t cpu_clock = CLOCK_THREAD_CPUTIME_ID;

static uint64_t cpu_ns(void)
{
	return clock_ns(cpu_clock);
}

static char why[256];            /* reason for the current failure */

/* Record "what: strerror(errno)" as the reason and return -1. */
static int fail(const char *what)
{
	snprintf(why, sizeof why, "%s: %s", what, strerror(errno));
	return -1;
}

static int failmsg(const char *msg)
{
	snprintf(why, sizeof why, "%s", msg);
	return -1;
}

/* The keys of the current section: report() marks a key printed; skip_rest() prints
 * "skipped" for the keys not printed yet. */
static const char *const *sec_keys;
static int sec_n;
static unsigned char sec_done[32];

static void section(const char *const *keys, int n)
{
	sec_keys = keys;
	sec_n = n;
	memset(sec_done, 0, sizeof sec_done);
}

static void mark(const char *key)
{
	for (int i = 0; i < sec_n; i++)
		if (strcmp(sec_keys[i], key) == 0)
			sec_done[i] = 1;
}

static void skip_key(const char *key, const char *reason)
{
	printf("%-38s skipped: %s\n", key, reason);
	mark(key);
	fflush(stdout);
}

static void skip_rest(const char *reason)
{
	for (int i = 0; i < sec_n; i++)
		if (!sec_done[i])
			skip_key(sec_keys[i], reason);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *key, const double *v, int n, const char *unit, const char *what)
{
	double s[MAXREPS];
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	double med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	printf("%-38s %10.2f %10.2f %10.2f  %-13s %s\n", key, s[0], med, s[n - 1], unit, what);
	mark(key);
	fflush(stdout);
}

static int pin_self(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return sched_setaffinity(0, sizeof s, &s);
}

static void unpin_self(void)
{
	if (sched_setaffinity(0, sizeof orig_affinity, &orig_affinity) != 0)
		fprintf(stderr, "probe: restoring the CPU affinity failed: %s\n", strerror(errno));
}

/* A fresh anonymous region of NPAGES pages, without transparent huge pages. */
static char *map_region(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fail("mmap");
		return NULL;
	}
	if (madvise(p, len, MADV_NOHUGEPAGE) != 0) {
		fail("madvise(MADV_NOHUGEPAGE)");
		munmap(p, len);
		return NULL;
	}
	return p;
}

static void unmap(char *p, size_t len)
{
	if (p && munmap(p, len) != 0)
		fprintf(stderr, "probe: munmap: %s\n", strerror(errno));
}

/* One byte per page; noinline so that the loop is the same code in every probe. */
static __attribute__((noinline)) uint64_t timed_touch(volatile char *p, size_t n, char v,
                                                      int wall)
{
	uint64_t t0 = wall ? now_ns() : cpu_ns();
	for (size_t i = 0; i < n; i++)
		p[i * pg] = v;
	return (wall ? now_ns() : cpu_ns()) - t0;
}

static void read_line(const char *path, char *buf, size_t len)
{
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(buf, len, "(%s: %s)", path, strerror(errno));
		return;
	}
	if (!fgets(buf, (int)len, f))
		snprintf(buf, len, "(%s: empty)", path);
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

/* Total steal ticks over all CPUs, from /proc/stat (-1 if unreadable). */
static long long steal_ticks(void)
{
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return -1;
	long long v[8] = {0};
	int n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2],
	               &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	return n == 8 ? v[7] : -1;
}

/* ---- userfaultfd helpers ----------------------------------------------------------- */

/* Without privilege (vm.unprivileged_userfaultfd = 0), UFFD_USER_MODE_ONLY still gives a
 * userfaultfd for faults taken in user mode, which are the only ones measured here. */
static int uffd_open(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | flags);
	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY | flags);
	return fd;
}

/* A userfaultfd with the given features enabled, or -1 (reason in why). */
static int uffd_with(uint64_t features, int flags)
{
	if ((uffd_features & features) != features) {
		if (uffd_why[0])
			return failmsg(uffd_why);
		snprintf(why, sizeof why, "kernel lacks uffd feature bits 0x%llx (offers 0x%llx)",
		         (unsigned long long)(features & ~uffd_features),
		         (unsigned long long)uffd_features);
		return -1;
	}
	int fd = uffd_open(flags);
	if (fd < 0)
		return fail("userfaultfd");
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	if (ioctl(fd, UFFDIO_API, &api) != 0) {
		fail("UFFDIO_API");
		close(fd);
		return -1;
	}
	return fd;
}

static int uffd_register_wp(int fd, char *p, size_t len)
{
	struct uffdio_register r = {.range = {.start = (uintptr_t)p, .len = len},
	                            .mode = UFFDIO_REGISTER_MODE_WP};
	if (ioctl(fd, UFFDIO_REGISTER, &r) != 0)
		return fail("UFFDIO_REGISTER(MODE_WP)");
	if (!(r.ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT)))
		return failmsg("UFFDIO_WRITEPROTECT not offered for the registered range");
	return 0;
}

/* mode UFFDIO_WRITEPROTECT_MODE_WP protects; 0 unprotects and wakes the waiters. */
static int uffd_wp(int fd, void *p, size_t len, uint64_t mode)
{
	struct uffdio_writeprotect w = {.range = {.start = (uintptr_t)p, .len = len}, .mode = mode};
	return ioctl(fd, UFFDIO_WRITEPROTECT, &w);
}

/* ---- signal handlers (mprotect and uffd SIGBUS) ------------------------------------ */

static sigjmp_buf fault_jmp;
static char *volatile fault_base;
static volatile size_t fault_len;
static volatile int fault_uffd = -1;
static volatile int fault_errno;
static volatile long fault_count;

static int in_region(void *a)
{
	char *c = a;
	return c >= fault_base && c < fault_base + fault_len;
}

static void give_up_signal(int sig)
{
	/* Not our fault: let the default action happen when the access is retried. */
	signal(sig, SIG_DFL);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!in_region(si->si_addr)) {
		give_up_signal(sig);
		return;
	}
	char *page = (char *)((uintptr_t)si->si_addr & ~(uintptr_t)(pg - 1));
	if (mprotect(page, pg, PROT_READ | PROT_WRITE) != 0) {
		fault_errno = errno;
		siglongjmp(fault_jmp, 1);
	}
	fault_count++;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!in_region(si->si_addr)) {
		give_up_signal(sig);
		return;
	}
	char *page = (char *)((uintptr_t)si->si_addr & ~(uintptr_t)(pg - 1));
	if (uffd_wp(fault_uffd, page, pg, 0) != 0) {
		fault_errno = errno;
		siglongjmp(fault_jmp, 1);
	}
	fault_count++;
}

static int install(int sig, void (*h)(int, siginfo_t *, void *), struct sigaction *old)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = h;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, old) != 0)
		return fail("sigaction");
	return 0;
}

/* Touch every page under a handler that may fail: -1 (reason in why) if it did. */
static int touch_guarded(char *p, char v, uint64_t *ns, const char *what)
{
	if (sigsetjmp(fault_jmp, 1)) {
		errno = fault_errno;
		return fail(what);
	}
	*ns = timed_touch(p, NPAGES, v, 0);
	return 0;
}

/* ---- section: basic (first touch, null syscall, pipe ping-pong) -------------------- */

struct pingpong {
	int to_peer[2], from_peer[2];
	int cpu;
	long rounds;
	int err;
};

static void *pingpong_peer(void *arg)
{
	struct pingpong *pp = arg;
	char c;
	if (pin_self(pp->cpu) != 0)
		pp->err = errno;
	for (long i = 0; i < pp->rounds && !pp->err; i++) {
		if (read(pp->to_peer[0], &c, 1) != 1 || write(pp->from_peer[1], &c, 1) != 1)
			pp->err = errno ? errno : EIO;
	}
	/* On an error the closed pipe ends the main thread's read with 0. */
	close(pp->from_peer[1]);
	return NULL;
}

static int pipe_pingpong(const char *key, int peer_cpu, const char *what)
{
	struct pingpong pp = {.to_peer = {-1, -1}, .from_peer = {-1, -1}, .cpu = peer_cpu};
	pp.rounds = (long)(warm + reps) * PINGPONGS;
	double v[MAXREPS];
	int ret = -1, started = 0;
	if (pipe(pp.to_peer) != 0 || pipe(pp.from_peer) != 0) {
		fail("pipe");
		goto out;
	}
	if (pin_self(cpu_a) != 0) {
		fail("sched_setaffinity");
		goto out;
	}
	pthread_t t;
	int e = pthread_create(&t, NULL, pingpong_peer, &pp);
	if (e) {
		errno = e;
		fail("pthread_create");
		goto out;
	}
	started = 1;
	char c = 'x';
	for (int r = -warm; r < reps; r++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < PINGPONGS; i++) {
			if (write(pp.to_peer[1], &c, 1) != 1) {
				fail("write(pipe)");
				goto out;
			}
			ssize_t n = read(pp.from_peer[0], &c, 1);
			if (n != 1) {
				if (n == 0)
					errno = pp.err;
				fail("read(pipe)");
				goto out;
			}
		}
		if (r >= 0)
			v[r] = (double)(now_ns() - t0) / PINGPONGS;
	}
	ret = 0;
out:
	if (started) {
		close(pp.to_peer[1]); /* ends the peer's read if it is still waiting */
		pp.to_peer[1] = -1;
		pthread_join(t, NULL);
		pp.from_peer[1] = -1; /* closed by the peer */
	}
	for (int i = 0; i < 2; i++) {
		if (pp.to_peer[i] >= 0)
			close(pp.to_peer[i]);
		if (pp.from_peer[i] >= 0)
			close(pp.from_peer[i]);
	}
	unpin_self();
	if (ret == 0)
		report(key, v, reps, "ns/roundtrip", what);
	else
		skip_key(key, why);
	return ret;
}

static void sec_basic(void)
{
	static const char *const keys[] = {"firsttouch_write", "firsttouch_read", "null_syscall",
	                                   "pipe_pingpong_same_cpu", "pipe_pingpong_cross_cpu"};
	section(keys, 5);
	double v[MAXREPS];

	for (int kind = 0; kind < 2; kind++) {
		const char *key = kind ? "firsttouch_read" : "firsttouch_write";
		int ok = 1;
		for (int r = -warm; r < reps && ok; r++) {
			char *p = map_region(region_len);
			if (!p) {
				ok = 0;
				break;
			}
			volatile char *vp = p;
			uint64_t t0 = cpu_ns();
			if (kind == 0) {
				for (size_t i = 0; i < NPAGES; i++)
					vp[i * pg] = 1;
			} else {
				char sink = 0;
				for (size_t i = 0; i < NPAGES; i++)
					sink ^= vp[i * pg];
				if (sink)
					fprintf(stderr, "probe: fresh page not zero\n");
			}
			uint64_t dt = cpu_ns() - t0;
			unmap(p, region_len);
			if (r >= 0)
				v[r] = (double)dt / NPAGES;
		}
		if (!ok)
			skip_key(key, why);
		else if (kind == 0)
			report(key, v, reps, "ns/page",
			       "minor fault: first write to a fresh anonymous page (allocate + zero)");
		else
			report(key, v, reps, "ns/page",
			       "minor fault: first read of a fresh anonymous page (maps the zero page)");
	}

	{
		int ok = 1;
		for (int r = -warm; r < reps; r++) {
			uint64_t t0 = cpu_ns();
			for (int i = 0; i < SYSCALLS; i++)
				if (syscall(SYS_getppid) < 0)
					ok = 0;
			if (r >= 0)
				v[r] = (double)(cpu_ns() - t0) / SYSCALLS;
		}
		if (ok)
			report("null_syscall", v, reps, "ns/call", "syscall(SYS_getppid)");
		else
			skip_key("null_syscall", "getppid failed");
	}

	if (cpu_a < 0)
		skip_key("pipe_pingpong_same_cpu", "no CPU in the affinity mask");
	else
		pipe_pingpong("pipe_pingpong_same_cpu", cpu_a,
		              "thread wake-up round trip through two pipes, both threads on one CPU");
	if (cpu_b < 0)
		skip_key("pipe_pingpong_cross_cpu", "fewer than 2 CPUs in the affinity mask");
	else
		pipe_pingpong("pipe_pingpong_cross_cpu", cpu_b,
		              "thread wake-up round trip through two pipes, threads on two CPUs");
}

/* ---- section: mprotect + SIGSEGV --------------------------------------------------- */

static void sec_mprotect(void)
{
	static const char *const keys[] = {"write_writable_page", "mprotect_protect_all",
	                                   "mprotect_fault_unprotect", "mprotect_unprotect_page"};
	section(keys, 4);
	double v_base[MAXREPS], v_prot[MAXREPS], v_fault[MAXREPS], v_one[MAXREPS];
	struct sigaction old;
	int installed = 0;
	char *p = map_region(region_len);
	if (!p)
		goto fail;
	timed_touch(p, NPAGES, 1, 0); /* populate */
	for (int r = -warm; r < reps; r++) {
		uint64_t dt = timed_touch(p, NPAGES, (char)r, 0);
		if (r >= 0)
			v_base[r] = (double)dt / NPAGES;
	}
	report("write_writable_page", v_base, reps, "ns/page",
	       "baseline: one byte written to each writable, populated page");

	if (install(SIGSEGV, on_segv, &old) != 0)
		goto fail;
	installed = 1;
	fault_base = p;
	fault_len = region_len;
	for (int r = -warm; r < reps; r++) {
		uint64_t t0 = cpu_ns();
		if (mprotect(p, region_len, PROT_READ) != 0) {
			fail("mprotect(PROT_READ)");
			goto fail;
		}
		uint64_t dt = cpu_ns() - t0, ft;
		fault_count = 0;
		if (touch_guarded(p, (char)r, &ft, "mprotect(page, RW) in the SIGSEGV handler") != 0)
			goto fail;
		if (fault_count != NPAGES) {
			snprintf(why, sizeof why, "%ld SIGSEGV for %d pages", (long)fault_count, NPAGES);
			goto fail;
		}
		if (r >= 0) {
			v_prot[r] = (double)dt / NPAGES;
			v_fault[r] = (double)ft / NPAGES;
		}
	}
	report("mprotect_protect_all", v_prot, reps, "ns/page",
	       "mprotect(whole populated region, PROT_READ), per page");
	report("mprotect_fault_unprotect", v_fault, reps, "ns/page",
	       "write to each protected page in order; the SIGSEGV handler mprotects it RW");

	for (int r = -warm; r < reps; r++) {
		if (mprotect(p, region_len, PROT_READ) != 0) {
			fail("mprotect(PROT_READ)");
			goto fail;
		}
		uint64_t t0 = cpu_ns();
		for (size_t i = 0; i < NPAGES; i++)
			if (mprotect(p + i * pg, pg, PROT_READ | PROT_WRITE) != 0) {
				fail("mprotect(page, RW)");
				goto fail;
			}
		if (r >= 0)
			v_one[r] = (double)(cpu_ns() - t0) / NPAGES;
	}
	report("mprotect_unprotect_page", v_one, reps, "ns/call",
	       "mprotect(one page, RW) alone, pages in order, no fault");
	goto out;
fail:
	skip_rest(why);
out:
	if (installed && sigaction(SIGSEGV, &old, NULL) != 0)
		fprintf(stderr, "probe: restoring SIGSEGV: %s\n", strerror(errno));
	fault_base = NULL;
	fault_len = 0;
	unmap(p, region_len);
}

/* ---- section: uffd synchronous write protection ------------------------------------ */

struct service {
	int uffd, evfd, cpu, spin;
	atomic_int stop;
	long faults, reads, empty_reads;
	int err;
	const char *err_what;
	char *base;
	size_t len;
};

static void *service_main(void *arg)
{
	struct service *s = arg;
	struct uffd_msg m[16];
	if (pin_self(s->cpu) != 0) {
		s->err = errno;
		s->err_what = "sched_setaffinity (service thread)";
		goto broken;
	}
	for (;;) {
		if (s->spin) {
			if (atomic_load_explicit(&s->stop, memory_order_acquire))
				return NULL;
		} else {
			struct pollfd f[2] = {{.fd = s->uffd, .events = POLLIN},
			                      {.fd = s->evfd, .events = POLLIN}};
			if (poll(f, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				s->err = errno;
				s->err_what = "poll";
				goto broken;
			}
			if (f[1].revents)
				return NULL;
			if (!(f[0].revents & POLLIN))
				continue;
		}
		ssize_t n = read(s->uffd, m, sizeof m);
		if (n < 0) {
			if (errno == EAGAIN) {
				s->empty_reads++;
				continue;
			}
			s->err = errno;
			s->err_what = "read(userfaultfd)";
			goto broken;
		}
		s->reads++;
		for (size_t i = 0; i < (size_t)n / sizeof m[0]; i++) {
			if (m[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uintptr_t a = (uintptr_t)m[i].arg.pagefault.address & ~(uintptr_t)(pg - 1);
			if (uffd_wp(s->uffd, (void *)a, pg, 0) != 0) {
				s->err = errno;
				s->err_what = "UFFDIO_WRITEPROTECT(mode 0) in the service thread";
				goto broken;
			}
			s->faults++;
		}
	}
broken:
	/* Unregistering wakes a writer waiting in a fault, so that it does not hang. */
	{
		struct uffdio_range rg = {.start = (uintptr_t)s->base, .len = s->len};
		ioctl(s->uffd, UFFDIO_UNREGISTER, &rg);
	}
	return NULL;
}

/* One round-trip variant: the main thread writes (pinned to writer_cpu), a service
 * thread pinned to service_cpu resolves the faults. 0, or -1 with the reason in why. */
static int roundtrip(int uffd, char *p, int writer_cpu, int service_cpu, int spin, double *v,
                     char *info, size_t info_len)
{
	struct service s = {.uffd = uffd, .cpu = service_cpu, .spin = spin, .base = p,
	                    .len = region_len};
	atomic_init(&s.stop, 0);
	int ret = -1, started = 0;
	pthread_t t;
	s.evfd = eventfd(0, EFD_CLOEXEC);
	if (s.evfd < 0)
		return fail("eventfd");
	if (pin_self(writer_cpu) != 0) {
		fail("sched_setaffinity");
		goto out;
	}
	int e = pthread_create(&t, NULL, service_main, &s);
	if (e) {
		errno = e;
		fail("pthread_create");
		goto out;
	}
	started = 1;
	for (int r = -warm; r < reps; r++) {
		if (uffd_wp(uffd, p, region_len, UFFDIO_WRITEPROTECT_MODE_WP) != 0) {
			fail("UFFDIO_WRITEPROTECT(MODE_WP)");
			goto out;
		}
		uint64_t dt = timed_touch(p, NPAGES, (char)r, 1); /* includes the wait */
		if (s.err) {
			errno = s.err;
			fail(s.err_what);
			goto out;
		}
		if (r >= 0)
			v[r] = (double)dt / NPAGES;
	}
	ret = 0;
out:
	if (started) {
		atomic_store_explicit(&s.stop, 1, memory_order_release);
		uint64_t one = 1;
		if (write(s.evfd, &one, sizeof one) != sizeof one)
			fprintf(stderr, "probe: write(eventfd): %s\n", strerror(errno));
		pthread_join(t, NULL);
		long expect = (long)(warm + reps) * NPAGES;
		snprintf(info, info_len, "faults=%ld (expected %ld) reads=%ld empty_reads=%ld",
		         s.faults, expect, s.reads, s.empty_reads);
		if (ret == 0 && s.faults != expect) {
			snprintf(why, sizeof why, "service thread saw %ld faults, expected %ld", s.faults,
			         expect);
			ret = -1;
		}
	}
	close(s.evfd);
	unpin_self();
	return ret;
}

static void sec_uffdwp(void)
{
	static const char *const keys[] = {
	    "uffdwp_protect_all", "uffdwp_unprotect_page", "uffdwp_fault_roundtrip_thread",
	    "uffdwp_fault_roundtrip_thread_spin", "uffdwp_fault_roundtrip_thread_samecpu"};
	section(keys, 5);
	double v[MAXREPS];
	char *p = NULL;
	int uffd = uffd_with(UFFD_FEATURE_PAGEFAULT_FLAG_WP, O_NONBLOCK);
	if (uffd < 0)
		goto fail;
	p = map_region(region_len);
	if (!p)
		goto fail;
	timed_touch(p, NPAGES, 1, 0); /* populate: write protection applies to present pages */
	if (uffd_register_wp(uffd, p, region_len) != 0)
		goto fail;

	for (int r = -warm; r < reps; r++) {
		uint64_t t0 = cpu_ns();
		if (uffd_wp(uffd, p, region_len, UFFDIO_WRITEPROTECT_MODE_WP) != 0) {
			fail("UFFDIO_WRITEPROTECT(MODE_WP)");
			goto fail;
		}
		uint64_t dt = cpu_ns() - t0;
		if (uffd_wp(uffd, p, region_len, 0) != 0) {
			fail("UFFDIO_WRITEPROTECT(mode 0)");
			goto fail;
		}
		if (r >= 0)
			v[r] = (double)dt / NPAGES;
	}
	report("uffdwp_protect_all", v, reps, "ns/page",
	       "UFFDIO_WRITEPROTECT(MODE_WP) of the whole populated region, per page");

	for (int r = -warm; r < reps; r++) {
		if (uffd_wp(uffd, p, region_len, UFFDIO_WRITEPROTECT_MODE_WP) != 0) {
			fail("UFFDIO_WRITEPROTECT(MODE_WP)");
			goto fail;
		}
		uint64_t t0 = cpu_ns();
		for (size_t i = 0; i < NPAGES; i++)
			if (uffd_wp(uffd, p + i * pg, pg, 0) != 0) {
				fail("UFFDIO_WRITEPROTECT(mode 0, one page)");
				goto fail;
			}
		if (r >= 0)
			v[r] = (double)(cpu_ns() - t0) / NPAGES;
	}
	report("uffdwp_unprotect_page", v, reps, "ns/ioctl",
	       "UFFDIO_WRITEPROTECT(mode 0) of one page, no waiter, pages in order");

	struct {
		const char *key;
		int cross, spin;
		const char *what;
	} var[] = {
	    {"uffdwp_fault_roundtrip_thread", 1, 0,
	     "writer-side first write to a WP page; service thread on another CPU: poll+read, "
	     "unprotect (wakes)"},
	    {"uffdwp_fault_roundtrip_thread_spin", 1, 1,
	     "as above, the service thread spins on read() of the O_NONBLOCK uffd"},
	    {"uffdwp_fault_roundtrip_thread_samecpu", 0, 0,
	     "as the first, writer and service thread on the same CPU"},
	};
	for (size_t k = 0; k < sizeof var / sizeof var[0]; k++) {
		char info[160] = "";
		if (var[k].cross && cpu_b < 0) {
			skip_key(var[k].key, "fewer than 2 CPUs in the affinity mask");
			continue;
		}
		if (roundtrip(uffd, p, cpu_a, var[k].cross ? cpu_b : cpu_a, var[k].spin, v, info,
		              sizeof info) != 0) {
			skip_key(var[k].key, why);
			if (info[0])
				printf("#   %s: %s\n", var[k].key, info);
			/* A broken service thread unregistered the range: stop here. */
			goto fail;
		}
		report(var[k].key, v, reps, "ns/fault", var[k].what);
		printf("#   %s: %s\n", var[k].key, info);
	}
	goto out;
fail:
	skip_rest(why);
out:
	if (uffd >= 0)
		close(uffd);
	unmap(p, region_len);
}

/* ---- section: uffd write protection with SIGBUS ------------------------------------ */

static void sec_sigbus(void)
{
	static const char *const keys[] = {"uffdwp_sigbus_fault"};
	section(keys, 1);
	double v[MAXREPS];
	char *p = NULL;
	struct sigaction old;
	int installed = 0;
	int uffd = uffd_with(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_SIGBUS, 0);
	if (uffd < 0)
		goto fail;
	p = map_region(region_len);
	if (!p)
		goto fail;
	timed_touch(p, NPAGES, 1, 0);
	if (uffd_register_wp(uffd, p, region_len) != 0)
		goto fail;
	if (install(SIGBUS, on_sigbus, &old) != 0)
		goto fail;
	installed = 1;
	fault_base = p;
	fault_len = region_len;
	fault_uffd = uffd;
	for (int r = -warm; r < reps; r++) {
		if (uffd_wp(uffd, p, region_len, UFFDIO_WRITEPROTECT_MODE_WP) != 0) {
			fail("UFFDIO_WRITEPROTECT(MODE_WP)");
			goto fail;
		}
		uint64_t dt;
		fault_count = 0;
		if (touch_guarded(p, (char)r, &dt, "UFFDIO_WRITEPROTECT(mode 0) in the SIGBUS handler"))
			goto fail;
		if (fault_count != NPAGES) {
			snprintf(why, sizeof why, "%ld SIGBUS for %d pages", (long)fault_count, NPAGES);
			goto fail;
		}
		if (r >= 0)
			v[r] = (double)dt / NPAGES;
	}
	report("uffdwp_sigbus_fault", v, reps, "ns/fault",
	       "first write to a WP page; its SIGBUS handler unprotects it (UFFDIO_WRITEPROTECT mode 0)");
	goto out;
fail:
	skip_rest(why);
out:
	if (installed && sigaction(SIGBUS, &old, NULL) != 0)
		fprintf(stderr, "probe: restoring SIGBUS: %s\n", strerror(errno));
	fault_base = NULL;
	fault_len = 0;
	fault_uffd = -1;
	if (uffd >= 0)
		close(uffd);
	unmap(p, region_len);
}

/* ---- section: asynchronous write protection + PAGEMAP_SCAN ------------------------- */

static struct probe_page_region scan_vec[1024];
static long scan_short_walks; /* returns with walk_end < end although the vector had room */

/* Scan [p, p+len) for written pages and write-protect them again. Returns the number of
 * pages reported written, or -1 (reason in why). */
static long scan_written(int pagemap, char *p, size_t len, long *regions)
{
	uint64_t end = (uintptr_t)p + len, cur = (uintptr_t)p;
	long pages = 0;
	*regions = 0;
	for (int guard = 0; cur < end; guard++) {
		if (guard > 1000000)
			return failmsg("PAGEMAP_SCAN made no progress");
		struct probe_pm_scan_arg a = {
		    .size = sizeof a,
		    .flags = PROBE_PM_SCAN_WP_MATCHING | PROBE_PM_SCAN_CHECK_WPASYNC,
		    .start = cur,
		    .end = end,
		    .vec = (uintptr_t)scan_vec,
		    .vec_len = sizeof scan_vec / sizeof scan_vec[0],
		    .category_mask = PROBE_PAGE_IS_WRITTEN,
		    .return_mask = PROBE_PAGE_IS_WRITTEN,
		};
		int n = ioctl(pagemap, PROBE_PAGEMAP_SCAN, &a);
		if (n < 0)
			return fail("ioctl(PAGEMAP_SCAN, WP_MATCHING|CHECK_WPASYNC)");
		for (int i = 0; i < n; i++)
			pages += (long)((scan_vec[i].end - scan_vec[i].start) / pg);
		*regions += n;
		if (a.walk_end >= end)
			break;
		if (a.walk_end <= cur)
			return failmsg("PAGEMAP_SCAN walk_end did not advance");
		if ((size_t)n < sizeof scan_vec / sizeof scan_vec[0])
			scan_short_walks++;
		cur = a.walk_end;
	}
	return pages;
}

static void sec_async(void)
{
	static const char *const keys[] = {"uffdasync_fault", "pagemap_scan_clean",
	                                   "pagemap_scan_all_written"};
	section(keys, 3);
	double v_fault[MAXREPS], v_clean[MAXREPS], v_all[MAXREPS];
	char *p = NULL;
	int pagemap = -1;
	uint64_t want = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_ASYNC;
	if (uffd_features & UFFD_FEATURE_WP_UNPOPULATED)
		want |= UFFD_FEATURE_WP_UNPOPULATED;
	int uffd = uffd_with(want, 0);
	if (uffd < 0)
		goto fail;
	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap < 0) {
		fail("open(/proc/self/pagemap)");
		goto fail;
	}
	p = map_region(region_len);
	if (!p)
		goto fail;
	timed_touch(p, NPAGES, 1, 0); /* populated, as in the other probes */
	if (uffd_register_wp(uffd, p, region_len) != 0)
		goto fail;
	if (uffd_wp(uffd, p, region_len, UFFDIO_WRITEPROTECT_MODE_WP) != 0) {
		fail("UFFDIO_WRITEPROTECT(MODE_WP)");
		goto fail;
	}
	long regions, bad_clean = 0, bad_all = 0, regions_all = 0;
	/* The protection just set must leave nothing written. */
	if (scan_written(pagemap, p, region_len, &regions) < 0)
		goto fail;
	for (int r = -warm; r < reps; r++) {
		uint64_t t0 = cpu_ns();
		long n = scan_written(pagemap, p, region_len, &regions);
		uint64_t t_clean = cpu_ns() - t0;
		if (n < 0)
			goto fail;
		bad_clean += n != 0;
		uint64_t t_fault = timed_touch(p, NPAGES, (char)r, 0);
		t0 = cpu_ns();
		n = scan_written(pagemap, p, region_len, &regions);
		uint64_t t_all = cpu_ns() - t0;
		if (n < 0)
			goto fail;
		bad_all += n != NPAGES;
		regions_all = regions;
		if (r >= 0) {
			v_clean[r] = (double)t_clean / NPAGES;
			v_fault[r] = (double)t_fault / NPAGES;
			v_all[r] = (double)t_all / NPAGES;
		}
	}
	report("uffdasync_fault", v_fault, reps, "ns/page",
	       "WP_ASYNC: first write to each protected page, resolved by the kernel");
	report("pagemap_scan_clean", v_clean, reps, "ns/page",
	       "PAGEMAP_SCAN WP_MATCHING|CHECK_WPASYNC, PAGE_IS_WRITTEN, nothing written");
	report("pagemap_scan_all_written", v_all, reps, "ns/page",
	       "the same scan with every page written: reports and write-protects them again");
	printf("#   async: features 0x%llx; last all-written scan: %ld region(s); scans that "
	       "disagreed: clean %ld, all-written %ld; short walks %ld\n",
	       (unsigned long long)want, regions_all, bad_clean, bad_all, scan_short_walks);
	goto out;
fail:
	skip_rest(why);
out:
	if (pagemap >= 0)
		close(pagemap);
	if (uffd >= 0)
		close(uffd);
	unmap(p, region_len);
}

/* ---- section: stores with card marking --------------------------------------------- */

/* kind 0: plain store; 1: store + card[a>>9] = 0; 2: store + if (card) card = 0.
 * Volatile accesses keep every store (and the conditional load) in the loop. The random
 * order hashes the store's number with the splitmix64 finalizer: the same order in every
 * kind, and no dependency from one index to the next (a serial generator such as
 * xorshift would bound the loop by its latency, about 1.5 ns per store, and hide the
 * card mark in an L2-sized heap). */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define STORE_LOOP(NEXT_INDEX, BARRIER)                                                 \
	do {                                                                            \
		for (uint64_t i = 0; i < n; i++) {                                      \
			uint64_t w = NEXT_INDEX;                                        \
			heap[w] = i;                                                    \
			BARRIER;                                                        \
		}                                                                       \
	} while (0)
#define SEQ_INDEX (i & mask)
#define RAND_INDEX (mix64((i + 1) * 0x9e3779b97f4a7c15ULL) & mask)
#define NO_BARRIER ((void)0)
#define CARD_BARRIER (card[w >> (CARD_SHIFT - 3)] = 0)
#define COND_BARRIER                                                                    \
	do {                                                                            \
		if (card[w >> (CARD_SHIFT - 3)])                                        \
			card[w >> (CARD_SHIFT - 3)] = 0;                                \
	} while (0)

static __attribute__((noinline)) uint64_t run_stores(volatile uint64_t *heap,
                                                     volatile uint8_t *card, uint64_t mask,
                                                     int kind, int rnd, uint64_t n)
{
	uint64_t t0 = cpu_ns();
	if (!rnd) {
		if (kind == 0)
			STORE_LOOP(SEQ_INDEX, NO_BARRIER);
		else if (kind == 1)
			STORE_LOOP(SEQ_INDEX, CARD_BARRIER);
		else
			STORE_LOOP(SEQ_INDEX, COND_BARRIER);
	} else {
		if (kind == 0)
			STORE_LOOP(RAND_INDEX, NO_BARRIER);
		else if (kind == 1)
			STORE_LOOP(RAND_INDEX, CARD_BARRIER);
		else
			STORE_LOOP(RAND_INDEX, COND_BARRIER);
	}
	return cpu_ns() - t0;
}

static void sec_stores(void)
{
	static const char *const keys[] = {
	    "store_dram_seq_plain",  "store_dram_seq_card",  "store_dram_seq_cond",
	    "store_dram_seq_card_delta", "store_dram_seq_cond_delta",
	    "store_dram_rand_plain", "store_dram_rand_card", "store_dram_rand_cond",
	    "store_dram_rand_card_delta", "store_dram_rand_cond_delta",
	    "store_l2_seq_plain",    "store_l2_seq_card",    "store_l2_seq_cond",
	    "store_l2_seq_card_delta", "store_l2_seq_cond_delta",
	    "store_l2_rand_plain",   "store_l2_rand_card",   "store_l2_rand_cond",
	    "store_l2_rand_card_delta", "store_l2_rand_cond_delta"};
	section(keys, 20);
	static const char *const kname[] = {"plain", "card", "cond"};
	static const char *const kwhat[] = {"plain 8-byte store", "store + card[a>>9] = 0",
	                                    "store + if (card[i]) card[i] = 0"};
	for (int h = 0; h < 2; h++) {
		size_t size = h ? L2_HEAP : DRAM_HEAP;
		const char *hname = h ? "l2" : "dram";
		const char *hwhat = h ? "256 KiB heap" : "64 MiB heap";
		size_t card_len = size >> CARD_SHIFT;
		size_t card_map = card_len < pg ? pg : card_len;
		char *heap = map_region(size);
		char *card = heap ? map_region(card_map) : NULL;
		if (!heap || !card) {
			char reason[300];
			snprintf(reason, sizeof reason, "%s", why);
			for (int rnd = 0; rnd < 2; rnd++)
				for (int k = 0; k < 5; k++) {
					char key[64];
					static const char *const sfx[] = {"plain", "card", "cond",
					                                  "card_delta", "cond_delta"};
					snprintf(key, sizeof key, "store_%s_%s_%s", hname,
					         rnd ? "rand" : "seq", sfx[k]);
					skip_key(key, reason);
				}
			unmap(heap, size);
			continue;
		}
		memset(heap, 0, size); /* populate */
		uint64_t mask = size / 8 - 1;
		for (int rnd = 0; rnd < 2; rnd++) {
			double v[3][MAXREPS], d[2][MAXREPS];
			for (int r = -warm; r < reps; r++) {
				uint64_t t[3];
				for (int j = 0; j < 3; j++) {
					int k = (j + (r + warm)) % 3; /* rotate the order */
					memset(card, 1, card_len); /* all cards clean */
					t[k] = run_stores((volatile uint64_t *)heap, (volatile uint8_t *)card,
					                  mask, k, rnd, STORES);
				}
				if (r >= 0) {
					for (int k = 0; k < 3; k++)
						v[k][r] = (double)t[k] / STORES;
					d[0][r] = v[1][r] - v[0][r];
					d[1][r] = v[2][r] - v[0][r];
				}
			}
			const char *order = rnd ? "random" : "sequential";
			for (int k = 0; k < 3; k++) {
				char key[64], what[160];
				snprintf(key, sizeof key, "store_%s_%s_%s", hname, rnd ? "rand" : "seq",
				         kname[k]);
				snprintf(what, sizeof what, "%s, %s, %s", kwhat[k], hwhat, order);
				report(key, v[k], reps, "ns/store", what);
			}
			for (int k = 0; k < 2; k++) {
				char key[64], what[160];
				snprintf(key, sizeof key, "store_%s_%s_%s_delta", hname,
				         rnd ? "rand" : "seq", k ? "cond" : "card");
				snprintf(what, sizeof what,
				         "%s card mark over plain (paired per repetition), %s, %s",
				         k ? "conditional" : "unconditional", hwhat, order);
				report(key, d[k], reps, "ns/store", what);
			}
		}
		unmap(card, card_map);
		unmap(heap, size);
	}
}

/* ---- main -------------------------------------------------------------------------- */

static void header(int argc, char **argv)
{
	struct utsname u;
	char buf[256], model[256] = "(unknown)";
	if (uname(&u) == 0)
		printf("# kernel: %s %s %s %s\n", u.sysname, u.release, u.version, u.machine);
	else
		printf("# kernel: (uname: %s)\n", strerror(errno));
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		while (fgets(buf, sizeof buf, f))
			if (strncmp(buf, "model name", 10) == 0) {
				char *c = strchr(buf, ':');
				snprintf(model, sizeof model, "%s", c ? c + 2 : buf);
				model[strcspn(model, "\n")] = 0;
				break;
			}
		fclose(f);
	}
	printf("# cpu: %s; %ld CPUs online; affinity: %d CPUs (probes use cpu %d and cpu %d)\n",
	       model, sysconf(_SC_NPROCESSORS_ONLN), CPU_COUNT(&orig_affinity), cpu_a, cpu_b);
	long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
	if (l2 > 0)
		printf("# L2 cache: %ld KiB\n", l2 >> 10);
	read_line("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf);
	printf("# THP enabled: %s (every region here has MADV_NOHUGEPAGE)\n", buf);
	read_line("/sys/devices/system/cpu/cpuidle/current_driver", buf, sizeof buf);
	char poll[64];
	read_line("/sys/module/haltpoll/parameters/guest_halt_poll_ns", poll, sizeof poll);
	printf("# cpuidle driver: %s; guest_halt_poll_ns: %s\n", buf, poll);
	if (uffd_why[0])
		printf("# userfaultfd: %s\n", uffd_why);
	else
		printf("# userfaultfd features offered: 0x%llx\n", (unsigned long long)uffd_features);
	printf("# parameters: page %zu B; region %d pages (%zu MiB), MADV_NOHUGEPAGE; %d repetitions "
	       "after %d warm-ups; values min/median/max over the repetitions\n",
	       pg, NPAGES, region_len >> 20, reps, warm);
	printf("# parameters: %d getppid calls and %d pipe round trips per repetition; %u stores "
	       "per repetition, heaps %u MiB and %u KiB, one card byte per %d heap bytes\n",
	       SYSCALLS, PINGPONGS, STORES, DRAM_HEAP >> 20, L2_HEAP >> 10, 1 << CARD_SHIFT);
	printf("# clocks: wall time (CLOCK_MONOTONIC) for pipe_pingpong_* and "
	       "uffdwp_fault_roundtrip_thread*, which wait for another thread; %s for the rest\n",
	       cpu_clock == CLOCK_THREAD_CPUTIME_ID
	           ? "the thread's CPU time (CLOCK_THREAD_CPUTIME_ID)"
	           : "wall time too (no thread CPU clock)");
	printf("# command:");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n#\n# %-36s %10s %10s %10s  %-13s %s\n", "key", "min", "median", "max", "unit",
	       "what");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} secs[] = {{"basic", sec_basic},   {"mprotect", sec_mprotect}, {"uffdwp", sec_uffdwp},
	            {"sigbus", sec_sigbus}, {"async", sec_async},       {"stores", sec_stores}};
	enum { NSEC = sizeof secs / sizeof secs[0] };
	int want[NSEC] = {0}, any = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-q") == 0) {
			reps = 3;
			warm = 1;
			continue;
		}
		int found = 0;
		for (int s = 0; s < NSEC; s++)
			if (strcmp(argv[i], secs[s].name) == 0)
				want[s] = found = any = 1;
		if (!found) {
			fprintf(stderr, "usage: %s [-q] [basic|mprotect|uffdwp|sigbus|async|stores]...\n",
			        argv[0]);
			return 2;
		}
	}
	long ps = sysconf(_SC_PAGESIZE);
	if (ps <= 0) {
		fprintf(stderr, "probe: sysconf(_SC_PAGESIZE) failed\n");
		return 1;
	}
	pg = (size_t)ps;
	region_len = (size_t)NPAGES * pg;
	if (sched_getaffinity(0, sizeof orig_affinity, &orig_affinity) != 0) {
		fprintf(stderr, "probe: sched_getaffinity: %s\n", strerror(errno));
		return 1;
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &orig_affinity)) {
			if (cpu_a < 0)
				cpu_a = c;
			else if (cpu_b < 0)
				cpu_b = c;
		}
	int fd = uffd_open(0);
	if (fd < 0) {
		snprintf(uffd_why, sizeof uffd_why, "userfaultfd: %s", strerror(errno));
	} else {
		struct uffdio_api api = {.api = UFFD_API, .features = 0};
		if (ioctl(fd, UFFDIO_API, &api) != 0)
			snprintf(uffd_why, sizeof uffd_why, "UFFDIO_API: %s", strerror(errno));
		else
			uffd_features = api.features;
		close(fd);
	}
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		cpu_clock = CLOCK_MONOTONIC;
	header(argc, argv);
	long long steal0 = steal_ticks();
	uint64_t t0 = now_ns(), cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (int s = 0; s < NSEC; s++)
		if (!any || want[s])
			secs[s].fn();
	long long steal1 = steal_ticks();
	double secs_run = (double)(now_ns() - t0) / 1e9;
	double secs_cpu = (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1e9;
	printf("#\n# run: %.1f s wall, %.1f s CPU time (all threads)", secs_run, secs_cpu);
	if (steal0 >= 0 && steal1 >= 0)
		printf("; steal: %lld ticks of 1/%ld s taken by the host over all CPUs\n",
		       steal1 - steal0, sysconf(_SC_CLK_TCK));
	else
		printf("; steal: /proc/stat unreadable\n");
	return 0;
}
