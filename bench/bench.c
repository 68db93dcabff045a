/* sysgate-bench: measures what a syscall costs under sysgate, as ratios taken in one run.
 *
 * Each case runs sg_bench_loop (directly or under `sysgate run`, possibly with the C
 * handler worker sg_bench_worker or the Python one, bench-worker.py), which calls one
 * syscall N times and prints the mean ns per call.  Every worker case runs twice: over the
 * default transport (the shared-memory channel) and, as its nng-* twin, with
 * `--worker-transport nng`.  Repetitions are interleaved (rep 1 of every case, then rep 2
 * of every case, ...) so all cases share the machine's conditions, and every figure is
 * reported against the inline-supervisor path (docs/performance.md).  Wall-clock cases time whole
 * commands the same way: sysgate's start-up (`sysgate run -- /bin/true`) and two real
 * workloads (python3 imports run several times, a tar of a directory) with no sysgate,
 * untrapped under sysgate, with an openat audit worker (over either transport) and under
 * strace.  A last section checks every row of issue 6's target table, on the default
 * transport, and gives the same figure over nng beside it.
 *
 *   sysgate-bench [--sysgate PATH] [--loop PATH] [--worker-bin PATH] [--python PATH]
 *                 [--py-worker PATH] [--py-sdk DIR] [--sdk-lib PATH] [--no-python]
 *                 [--audit-worker PATH] [--strace PATH] [--tar-dir DIR] [--py-runs N]
 *                 [--startup-runs N] [--no-workload]
 *                 [--reps N] [--iters N] [--quick] [--help]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h" /* now_ns, strv_free */

extern char **environ;

#define DEFAULT_REPS 7
#define DEFAULT_ITERS 200000L
#define QUICK_REPS 3
#define QUICK_ITERS 20000L
#define MIN_TRAPPED_ITERS 1000L
#define WORKER_ITERS_DIV 4 /* worker cases run trapped iterations / 4 */
#define MIN_WORKER_ITERS 500L
#define PYTHON_ITERS_DIV 4 /* Python worker cases run worker iterations / 4 */
#define MIN_PYTHON_ITERS 100L
#define DEFAULT_PYTHON "/usr/bin/python3"
#define MAX_REPS 1000L
#define MAX_ITERS 1000000000L
#define OUT_CAP 4096
/* The multi-threaded cases: child threads, and copies of the C worker (--replicas). */
#define MT_THREADS "2"
#define MT_REPLICAS "2"
#define MAX_EXTRA 4 /* extra sysgate arguments of one case */
/* Wall-clock cases. */
#define STARTUP_CMD "/bin/true"
#define DEFAULT_STARTUP_RUNS 20L /* launches per repetition; the sample is their mean */
#define QUICK_STARTUP_RUNS 5L
#define PY_IMPORT "import json, sqlite3, email"
#define DEFAULT_PY_RUNS 20L /* python3 runs per repetition, in one shell loop */
#define QUICK_PY_RUNS 3L
#define DEFAULT_TAR_DIR "/usr/include"
#define QUICK_TAR_DIR "/usr/include/linux"
#define MAX_RUNS 10000L

enum case_id {
	C_PLAIN,
	C_UNTRAPPED,
	C_INLINE_CONTINUE,
	C_INLINE_RETURN,
	C_INLINE_PATH,
	C_INLINE_READ,
	C_WORKER_CONTINUE,
	C_WORKER_NOPATH,
	C_WORKER_PATH,
	C_WORKER_READ,
	C_PY_CONTINUE,
	C_PY_PATH,
	C_PY_READ,
	C_INLINE_2THREADS,
	C_WORKER_REPLICAS,
	/* The nng twins of the worker cases. */
	C_NNG_WORKER_CONTINUE,
	C_NNG_WORKER_NOPATH,
	C_NNG_WORKER_PATH,
	C_NNG_WORKER_READ,
	C_NNG_PY_CONTINUE,
	C_NNG_PY_PATH,
	C_NNG_PY_READ,
	C_NNG_WORKER_REPLICAS,
	/* The Go worker (sg_bench_worker_go, next to the loop), when it was built. */
	C_GO_CONTINUE,
	C_GO_PATH,
	C_COUNT
};

/* Which iteration count a case uses: the slower the path, the fewer calls. */
enum case_iters { ITERS_UNTRAPPED, ITERS_TRAPPED, ITERS_WORKER, ITERS_PYTHON, ITERS_COUNT };

/* Which worker answers a --worker case: a row of langs[] (below) says how its bench worker
 * is found and started. */
enum worker_lang { LANG_NONE, LANG_C, LANG_PYTHON, LANG_GO, LANG_COUNT };

struct bench_case {
	const char *name;
	const char *syscall; /* what the loop calls */
	const char *sg_flag; /* NULL: run the loop directly; "": sysgate with no extra flag */
	const char *sg_arg;  /* for --worker: the worker's MODE */
	enum case_iters iters;
	int counterpart; /* the inline case trapping the same syscall, or -1 */
	enum worker_lang lang;
	int c_twin; /* for a Python worker case: the C worker case with the same MODE */
	const char *threads; /* sg_bench_loop --threads, or NULL */
	/* More sysgate arguments, after the flag and its argument: NULL-terminated, at most
	 * MAX_EXTRA, or NULL for none. */
	const char *const *extra;
};

static const char *const extra_nng[] = { "--worker-transport", "nng", NULL };
static const char *const extra_replicas[] = { "--replicas", MT_REPLICAS, NULL };
static const char *const extra_replicas_nng[] = { "--replicas", MT_REPLICAS, "--worker-transport",
						  "nng", NULL };

static const struct bench_case cases[C_COUNT] = {
	[C_PLAIN] = { "plain", "getppid", NULL, NULL, ITERS_UNTRAPPED, -1 },
	[C_UNTRAPPED] = { "untrapped", "getppid", "", NULL, ITERS_UNTRAPPED, -1 },
	[C_INLINE_CONTINUE] = { "inline-continue", "getppid", "--trap", "getppid", ITERS_TRAPPED,
				-1 },
	[C_INLINE_RETURN] = { "inline-return", "uname", "--hostname", "bench", ITERS_TRAPPED, -1 },
	[C_INLINE_PATH] = { "inline-path", "faccessat", "--trap", "faccessat", ITERS_TRAPPED, -1 },
	[C_INLINE_READ] = { "inline-read", "pwrite64", "--trap", "pwrite64", ITERS_TRAPPED, -1 },
	[C_WORKER_CONTINUE] = { "worker-continue", "getppid", "--worker", "continue", ITERS_WORKER,
				C_INLINE_CONTINUE, LANG_C, -1 },
	[C_WORKER_NOPATH] = { "worker-nopath", "faccessat", "--worker", "nopath", ITERS_WORKER,
			      C_INLINE_PATH, LANG_C, -1 },
	[C_WORKER_PATH] = { "worker-path", "faccessat", "--worker", "path", ITERS_WORKER,
			    C_INLINE_PATH, LANG_C, -1 },
	[C_WORKER_READ] = { "worker-read", "pwrite64", "--worker", "read", ITERS_WORKER,
			    C_INLINE_READ, LANG_C, -1 },
	[C_PY_CONTINUE] = { "py-continue", "getppid", "--worker", "continue", ITERS_PYTHON,
			    C_INLINE_CONTINUE, LANG_PYTHON, C_WORKER_CONTINUE },
	[C_PY_PATH] = { "py-path", "faccessat", "--worker", "path", ITERS_PYTHON, C_INLINE_PATH,
			LANG_PYTHON, C_WORKER_PATH },
	[C_PY_READ] = { "py-read", "pwrite64", "--worker", "read", ITERS_PYTHON, C_INLINE_READ,
			LANG_PYTHON, C_WORKER_READ },
	[C_INLINE_2THREADS] = { "inline-2threads", "getppid", "--trap", "getppid", ITERS_TRAPPED,
				-1, LANG_NONE, -1, MT_THREADS },
	[C_WORKER_REPLICAS] = { "worker-replicas", "getppid", "--worker", "continue", ITERS_WORKER,
				C_INLINE_2THREADS, LANG_C, -1, MT_THREADS, extra_replicas },
	[C_NNG_WORKER_CONTINUE] = { "nng-worker-continue", "getppid", "--worker", "continue",
				    ITERS_WORKER, C_INLINE_CONTINUE, LANG_C, -1, NULL, extra_nng },
	[C_NNG_WORKER_NOPATH] = { "nng-worker-nopath", "faccessat", "--worker", "nopath",
				  ITERS_WORKER, C_INLINE_PATH, LANG_C, -1, NULL, extra_nng },
	[C_NNG_WORKER_PATH] = { "nng-worker-path", "faccessat", "--worker", "path", ITERS_WORKER,
				C_INLINE_PATH, LANG_C, -1, NULL, extra_nng },
	[C_NNG_WORKER_READ] = { "nng-worker-read", "pwrite64", "--worker", "read", ITERS_WORKER,
				C_INLINE_READ, LANG_C, -1, NULL, extra_nng },
	[C_NNG_PY_CONTINUE] = { "nng-py-continue", "getppid", "--worker", "continue", ITERS_PYTHON,
				C_INLINE_CONTINUE, LANG_PYTHON, C_NNG_WORKER_CONTINUE, NULL,
				extra_nng },
	[C_NNG_PY_PATH] = { "nng-py-path", "faccessat", "--worker", "path", ITERS_PYTHON,
			    C_INLINE_PATH, LANG_PYTHON, C_NNG_WORKER_PATH, NULL, extra_nng },
	[C_NNG_PY_READ] = { "nng-py-read", "pwrite64", "--worker", "read", ITERS_PYTHON,
			    C_INLINE_READ, LANG_PYTHON, C_NNG_WORKER_READ, NULL, extra_nng },
	[C_NNG_WORKER_REPLICAS] = { "nng-worker-replicas", "getppid", "--worker", "continue",
				    ITERS_WORKER, C_INLINE_2THREADS, LANG_C, -1, MT_THREADS,
				    extra_replicas_nng },
	[C_GO_CONTINUE] = { "go-continue", "getppid", "--worker", "continue", ITERS_WORKER,
			    C_INLINE_CONTINUE, LANG_GO, C_WORKER_CONTINUE },
	[C_GO_PATH] = { "go-path", "faccessat", "--worker", "path", ITERS_WORKER, C_INLINE_PATH,
			LANG_GO, C_WORKER_PATH },
};

/* Every worker case and its nng twin: the same case with --worker-transport nng. */
static const struct twin {
	int fast, nng;
	const char *label; /* for the summary lines */
} twins[] = {
	{ C_WORKER_CONTINUE, C_NNG_WORKER_CONTINUE, "C worker continue" },
	{ C_WORKER_NOPATH, C_NNG_WORKER_NOPATH, "C worker nopath" },
	{ C_WORKER_PATH, C_NNG_WORKER_PATH, "C worker path" },
	{ C_WORKER_READ, C_NNG_WORKER_READ, "C worker read" },
	{ C_PY_CONTINUE, C_NNG_PY_CONTINUE, "Python worker continue" },
	{ C_PY_PATH, C_NNG_PY_PATH, "Python worker path" },
	{ C_PY_READ, C_NNG_PY_READ, "Python worker read" },
	{ C_WORKER_REPLICAS, C_NNG_WORKER_REPLICAS, "C worker, 2 replicas, 2 threads" },
};

/* Wall-clock cases: a whole command, timed from its start to its exit. */
enum wall_id {
	W_STARTUP_PLAIN,
	W_STARTUP_SYSGATE,
	W_PY_PLAIN,
	W_PY_UNTRAPPED,
	W_PY_TRAP,
	W_PY_AUDIT,
	W_PY_AUDIT_NNG,
	W_PY_STRACE,
	W_TAR_PLAIN,
	W_TAR_UNTRAPPED,
	W_TAR_TRAP,
	W_TAR_AUDIT,
	W_TAR_AUDIT_NNG,
	W_TAR_STRACE,
	W_COUNT
};

/* What runs ... */
enum wall_work { WORK_STARTUP, WORK_PY, WORK_TAR };
/* ... and under what. */
enum wall_wrap { WRAP_NONE, WRAP_SYSGATE, WRAP_TRAP, WRAP_AUDIT, WRAP_AUDIT_NNG, WRAP_STRACE };

struct wall_case {
	const char *name;
	enum wall_work work;
	enum wall_wrap wrap;
	int plain;     /* the same work with no wrapper, or -1 */
	int untrapped; /* the same work untrapped under sysgate, or -1 */
};

static const struct wall_case wall_cases[W_COUNT] = {
	[W_STARTUP_PLAIN] = { "startup-plain", WORK_STARTUP, WRAP_NONE, -1, -1 },
	[W_STARTUP_SYSGATE] = { "startup-sysgate", WORK_STARTUP, WRAP_SYSGATE, W_STARTUP_PLAIN,
				-1 },
	[W_PY_PLAIN] = { "pyimport-plain", WORK_PY, WRAP_NONE, -1, W_PY_UNTRAPPED },
	[W_PY_UNTRAPPED] = { "pyimport-untrapped", WORK_PY, WRAP_SYSGATE, W_PY_PLAIN, -1 },
	[W_PY_TRAP] = { "pyimport-trap", WORK_PY, WRAP_TRAP, W_PY_PLAIN, W_PY_UNTRAPPED },
	[W_PY_AUDIT] = { "pyimport-audit", WORK_PY, WRAP_AUDIT, W_PY_PLAIN, W_PY_UNTRAPPED },
	[W_PY_AUDIT_NNG] = { "pyimport-audit-nng", WORK_PY, WRAP_AUDIT_NNG, W_PY_PLAIN,
			     W_PY_UNTRAPPED },
	[W_PY_STRACE] = { "pyimport-strace", WORK_PY, WRAP_STRACE, W_PY_PLAIN, W_PY_UNTRAPPED },
	[W_TAR_PLAIN] = { "tar-plain", WORK_TAR, WRAP_NONE, -1, W_TAR_UNTRAPPED },
	[W_TAR_UNTRAPPED] = { "tar-untrapped", WORK_TAR, WRAP_SYSGATE, W_TAR_PLAIN, -1 },
	[W_TAR_TRAP] = { "tar-trap", WORK_TAR, WRAP_TRAP, W_TAR_PLAIN, W_TAR_UNTRAPPED },
	[W_TAR_AUDIT] = { "tar-audit", WORK_TAR, WRAP_AUDIT, W_TAR_PLAIN, W_TAR_UNTRAPPED },
	[W_TAR_AUDIT_NNG] = { "tar-audit-nng", WORK_TAR, WRAP_AUDIT_NNG, W_TAR_PLAIN,
			      W_TAR_UNTRAPPED },
	[W_TAR_STRACE] = { "tar-strace", WORK_TAR, WRAP_STRACE, W_TAR_PLAIN, W_TAR_UNTRAPPED },
};

struct stats {
	double median, min, max;
};

static const char usage[] =
	"Usage: sysgate-bench [--sysgate PATH] [--loop PATH] [--worker-bin PATH] [--python PATH]\n"
	"                     [--py-worker PATH] [--py-sdk DIR] [--sdk-lib PATH] [--no-python]\n"
	"                     [--no-go]\n"
	"                     [--audit-worker PATH] [--strace PATH] [--tar-dir DIR]\n"
	"                     [--py-runs N] [--startup-runs N] [--no-workload]\n"
	"                     [--reps N] [--iters N] [--quick]\n"
	"Measure the cost per syscall of running under sysgate, as ratios within one run.\n"
	"\n"
	"  --sysgate PATH     the sysgate binary (default: ../sysgate next to this program)\n"
	"  --loop PATH        the sg_bench_loop binary (default: next to this program)\n"
	"  --worker-bin PATH  the sg_bench_worker binary (default: next to the loop)\n"
	"  --python PATH      the interpreter of the Python worker and of the python3 workload\n"
	"                     (default " DEFAULT_PYTHON ")\n"
	"  --py-worker PATH   the Python worker (default: bench/bench-worker.py of the source\n"
	"                     tree this program was built from)\n"
	"  --py-sdk DIR       the directory holding the sysgate package (default: sdk/python\n"
	"                     of that source tree)\n"
	"  --sdk-lib PATH     libsysgate.so for the Python SDK (default: next to sysgate)\n"
	"  --no-python        leave the Python worker cases (and their nng twins) out\n"
	"  --no-go            leave the Go worker cases out (they are skipped anyway when\n"
	"                     sg_bench_worker_go was not built next to the loop)\n"
	"  --audit-worker PATH  the openat audit worker of the workload cases (default:\n"
	"                     examples/sysgate-audit-worker next to sysgate)\n"
	"  --strace PATH      strace for the workload comparison (default: strace in PATH;\n"
	"                     if there is none, the strace cases are skipped)\n"
	"  --tar-dir DIR      the directory tar archives (default " DEFAULT_TAR_DIR ")\n"
	"  --py-runs N        python3 runs per repetition of the python3 workload (default 20)\n"
	"  --startup-runs N   launches per repetition of the start-up cases (default 20)\n"
	"  --no-workload      leave the real-workload cases (python3, tar) out\n"
	"  --reps N           repetitions of every case (default 7)\n"
	"  --iters N          syscalls per run for untrapped cases (default 200000);\n"
	"                     trapped cases use N/10 (at least 1000), C worker cases N/40\n"
	"                     (at least 500), Python worker cases N/160 (at least 100)\n"
	"  --quick            reps 3, iters 20000, py-runs 3, startup-runs 5, tar-dir\n"
	"                     " QUICK_TAR_DIR ": every case still runs, fewer times; proves\n"
	"                     the benchmark works in some seconds\n"
	"  --help             show this help and exit\n"
	"\n"
	"Cases: plain (no sysgate), untrapped (filter installed, getppid not trapped);\n"
	"answered inline by the supervisor: inline-continue (--trap getppid), inline-return\n"
	"(--hostname, uname writes memory), inline-path (--trap faccessat), inline-read\n"
	"(--trap pwrite64); answered by a C worker: worker-continue (getppid, continue),\n"
	"worker-nopath (faccessat, continues without reading the path), worker-path\n"
	"(faccessat, reads the pre-read path), worker-read (pwrite64, reads 256 bytes of the\n"
	"child through the memory proxy); answered by the same handlers in a Python worker\n"
	"(the Python SDK): py-continue, py-path, py-read; and in a Go worker (the Go SDK,\n"
	"sg_bench_worker_go next to the loop, skipped if absent): go-continue, go-path;\n"
	"2 child threads: inline-2threads\n"
	"(--trap getppid), worker-replicas (C worker, continue, --replicas " MT_REPLICAS ").\n"
	"The worker cases use the default transport (the shared-memory channel); each has an\n"
	"nng twin, nng-CASE, run with --worker-transport nng.  Wall-clock cases: startup-plain\n"
	"(/bin/true), startup-sysgate (sysgate run -- /bin/true); pyimport-*\n"
	"(python3 -c '" PY_IMPORT "' run py-runs times) and tar-*\n"
	"(tar of tar-dir into /dev/zero), each -plain, -untrapped (sysgate run), -audit\n"
	"(sysgate run --worker sysgate-audit-worker), -audit-nng (the same with\n"
	"--worker-transport nng) and -strace (strace -f -e trace=openat -o /dev/null).  The\n"
	"report ends with issue 6's targets, judged on the default transport, with the same\n"
	"figure over nng beside each.\n";

/* --- small helpers -------------------------------------------------------- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static struct stats compute_stats(const double *samples, long n, double *scratch)
{
	struct stats s;
	memcpy(scratch, samples, (size_t)n * sizeof(*scratch));
	qsort(scratch, (size_t)n, sizeof(*scratch), cmp_double);
	s.min = scratch[0];
	s.max = scratch[n - 1];
	s.median = n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2.0;
	return s;
}

/* The directory holding this executable, from /proc/self/exe; malloc'd or NULL. */
static char *self_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	if (!slash)
		return NULL;
	if (slash == buf)
		slash[1] = '\0';
	else
		*slash = '\0';
	return strdup(buf);
}

static char *join_path(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *p = malloc(len);
	if (p)
		snprintf(p, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
	return p;
}

/* The directory part of path ("." if none); malloc'd or NULL. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* The first executable name in PATH (or name itself if it has a slash); malloc'd or NULL. */
static char *find_in_path(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	const char *path = getenv("PATH");
	char *copy = strdup(path && path[0] ? path : "/usr/local/bin:/usr/bin:/bin"), *save = NULL;
	char *found = NULL;
	for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		char *p = join_path(d, name);
		if (p && access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

/* A copy of the environment env; NULL when out of memory.  Free with strv_free. */
static char **env_copy(char *const *env)
{
	size_t n = 0;
	while (env[n])
		n++;
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!(v[i] = strdup(env[i]))) {
			strv_free(v);
			return NULL;
		}
	}
	return v;
}

/* A NULL-terminated vector of copies of the n strings in a[] followed by the m in b[]. */
static char **strv_join(const char *const *a, size_t n, const char *const *b, size_t m)
{
	char **v = calloc(n + m + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n + m; i++) {
		if (!(v[i] = strdup(i < n ? a[i] : b[i - n]))) {
			strv_free(v);
			return NULL;
		}
	}
	return v;
}

/* Where a binary is: the option if given, else name in dir; malloc'd or NULL. */
static char *locate(const char *opt, const char *dir, const char *name)
{
	return opt ? strdup(opt) : join_path(dir, name);
}

static int check_executable(const char *what, const char *path, const char *option)
{
	if (access(path, X_OK) == 0)
		return 0;
	fprintf(stderr, "sysgate-bench: %s not executable at %s: %s (use %s)\n", what, path,
		strerror(errno), option);
	return -1;
}

/* --- staging the Python worker ---------------------------------------------- */

/* The Python interpreter opens its script, the package and the library itself, inside the
 * worker sandbox: Landlock lets it read the system directories, sysgate's directory and the
 * directories of the files on its command line, no more (sdk/python is not among them), and
 * run as root sysgate makes it nobody, who may not be able to enter the checkout (CI keeps
 * it under a directory only root may enter).  Like sysgate.run, the benchmark copies what
 * the worker needs (bench-worker.py, the sysgate package, libsysgate.so) into one fresh
 * directory every user can read, next to the script, and points PYTHONPATH and SYSGATE_LIB
 * there: sysgate passes its environment on to its workers. */

static int copy_file(const char *src, const char *dst, char *why, size_t why_cap)
{
	char buf[65536];
	int rc = -1, out = -1;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(why, why_cap, "cannot read %s: %s", src, strerror(errno));
		return -1;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0 || fchmod(out, 0644) < 0) { /* whatever the umask */
		snprintf(why, why_cap, "cannot create %s: %s", dst, strerror(errno));
		goto done;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_cap, "reading %s: %s", src, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				snprintf(why, why_cap, "writing %s: %s", dst, strerror(errno));
				goto done;
			}
			off += w;
		}
	}
	rc = 0;
done:
	if (out >= 0 && close(out) < 0 && rc == 0) {
		snprintf(why, why_cap, "writing %s: %s", dst, strerror(errno));
		rc = -1;
	}
	close(in);
	return rc;
}

/* Copies the regular files and directories below src into the new directory dst, without
 * hidden entries and __pycache__. */
static int copy_tree(const char *src, const char *dst, char *why, size_t why_cap)
{
	if (mkdir(dst, 0755) < 0 || chmod(dst, 0755) < 0) {
		snprintf(why, why_cap, "cannot create %s: %s", dst, strerror(errno));
		return -1;
	}
	DIR *d = opendir(src);
	if (!d) {
		snprintf(why, why_cap, "cannot read %s: %s", src, strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "__pycache__") == 0)
			continue;
		char *from = join_path(src, e->d_name), *to = join_path(dst, e->d_name);
		struct stat st;
		if (!from || !to) {
			snprintf(why, why_cap, "out of memory");
			rc = -1;
		} else if (stat(from, &st) < 0) {
			snprintf(why, why_cap, "cannot stat %s: %s", from, strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = copy_tree(from, to, why, why_cap);
		} else if (S_ISREG(st.st_mode)) {
			rc = copy_file(from, to, why, why_cap);
		}
		free(from);
		free(to);
	}
	closedir(d);
	return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	(void)(flag == FTW_DP ? rmdir(path) : unlink(path));
	return 0;
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Stages the Python worker into a new directory (returned, malloc'd, in *stage even on
 * failure once created, for the caller to remove) and exports PYTHONPATH and SYSGATE_LIB
 * for it.  *script receives the staged worker's path. */
static int stage_python(const char *py_worker, const char *py_sdk, const char *sdk_lib,
			char **stage, char **script, char *why, size_t why_cap)
{
	const char *tmp = getenv("TMPDIR");
	char *templ = NULL, *pkg_src = NULL, *pkg_dst = NULL, *lib = NULL;
	int rc = -1;

	*stage = *script = NULL;
	if (asprintf(&templ, "%s/sysgate-bench-XXXXXX", tmp && tmp[0] ? tmp : "/tmp") < 0) {
		templ = NULL;
		snprintf(why, why_cap, "out of memory");
		goto done;
	}
	if (!mkdtemp(templ)) {
		snprintf(why, why_cap, "cannot create %s: %s", templ, strerror(errno));
		goto done;
	}
	*stage = templ;
	templ = NULL;
	if (chmod(*stage, 0755) < 0) {
		snprintf(why, why_cap, "chmod %s: %s", *stage, strerror(errno));
		goto done;
	}
	pkg_src = join_path(py_sdk, "sysgate");
	pkg_dst = join_path(*stage, "sysgate");
	lib = join_path(*stage, "libsysgate.so");
	*script = join_path(*stage, "bench-worker.py");
	if (!pkg_src || !pkg_dst || !lib || !*script) {
		snprintf(why, why_cap, "out of memory");
		goto done;
	}
	if (copy_file(py_worker, *script, why, why_cap) < 0 ||
	    copy_tree(pkg_src, pkg_dst, why, why_cap) < 0 ||
	    copy_file(sdk_lib, lib, why, why_cap) < 0)
		goto done;
	if (setenv("PYTHONPATH", *stage, 1) < 0 || setenv("SYSGATE_LIB", lib, 1) < 0) {
		snprintf(why, why_cap, "setenv: %s", strerror(errno));
		goto done;
	}
	rc = 0;
done:
	free(templ);
	free(pkg_src);
	free(pkg_dst);
	free(lib);
	return rc;
}

/* --- options, and what they resolve to --------------------------------------- */

/* The command line, defaults applied. */
struct bench_opts {
	const char *sysgate, *loop, *worker_bin;           /* NULL: found from this program */
	const char *python, *py_worker, *py_sdk, *sdk_lib; /* the Python worker's */
	const char *audit, *strace, *tar_dir;              /* the wall-clock cases' */
	long reps, iters, py_runs, startup_runs;
	bool no_workload;
	bool no_lang[LANG_COUNT]; /* --no-python ...: that language's worker cases left out */
};

/* What the run needs, found and prepared from the options; freed by env_free. */
struct bench_env {
	char *dir; /* this program's directory (only when something is found from it) */
	char *sysgate, *loop, *loop_dir;
	/* Each language's bench worker: the command a --worker case appends its MODE to;
	 * NULL when its cases are left out. */
	char *worker[LANG_COUNT];
	char *stage;                /* a directory staged for a worker, removed at the end */
	char *audit, *strace, *tar; /* the wall-clock cases' (strace NULL: none found) */
	char **orig_env;            /* the environment as given, before any staging set it */
	long iters[ITERS_COUNT];    /* calls per run, by enum case_iters */
};

/* --- worker languages ------------------------------------------------------------ */

/* A language handler workers are written in, one row per language in langs[]. Its bench
 * worker takes one argument, the MODE of the case (continue, nopath, path, read: see
 * bench-worker.c), and handles the loop's syscall as that mode says; the rows of cases[]
 * that name the language run it. */
struct bench_lang {
	const char *name;      /* in the summary lines: "Python worker vs C worker, ..." */
	const char *header;    /* its line in the report's header */
	const char *no_option; /* the option leaving its cases out (without "--"), or NULL */
	/* Finds or stages its bench worker and sets *cmd to the command that starts it (no
	 * blanks inside a word: `sysgate --worker` splits on blanks). On failure prints why
	 * and returns -1. */
	int (*prepare)(const struct bench_opts *o, struct bench_env *e, char **cmd);
};

/* sg_bench_worker: next to the loop, or --worker-bin. */
static int prepare_c(const struct bench_opts *o, struct bench_env *e, char **cmd)
{
	*cmd = locate(o->worker_bin, e->loop_dir, "sg_bench_worker");
	if (!*cmd) {
		fprintf(stderr, "sysgate-bench: out of memory\n");
		return -1;
	}
	if (check_executable("worker", *cmd, "--worker-bin") < 0)
		return -1;
	/* sysgate looks a name without a slash up in PATH: pass what was checked here. */
	char *abs = realpath(*cmd, NULL);
	if (abs) {
		free(*cmd);
		*cmd = abs;
	}
	/* --worker takes a command split on blanks, with no quoting. */
	if (strpbrk(*cmd, " \t\n")) {
		fprintf(stderr,
			"sysgate-bench: worker path '%s' contains blanks, which "
			"`sysgate --worker` cannot pass; use --worker-bin\n",
			*cmd);
		return -1;
	}
	return 0;
}

/* bench-worker.py under --python, staged with the Python SDK (stage_python). */
static int prepare_python(const struct bench_opts *o, struct bench_env *e, char **cmd)
{
	char why[512], *sdk_lib = NULL, *script = NULL;
	int rc = -1;
	if (o->sdk_lib) {
		sdk_lib = strdup(o->sdk_lib);
	} else {
		char *sg_dir = dir_of(e->sysgate);
		sdk_lib = sg_dir ? join_path(sg_dir, "libsysgate.so") : NULL;
		free(sg_dir);
	}
	if (!sdk_lib) {
		fprintf(stderr, "sysgate-bench: out of memory\n");
		goto done;
	}
	if (check_executable("python", o->python, "--python or --no-python") < 0)
		goto done;
	if (stage_python(o->py_worker, o->py_sdk, sdk_lib, &e->stage, &script, why, sizeof(why)) <
	    0) {
		fprintf(stderr,
			"sysgate-bench: cannot stage the Python worker: %s (use --py-worker, "
			"--py-sdk, --sdk-lib or --no-python)\n",
			why);
		goto done;
	}
	if (asprintf(cmd, "%s %s", o->python, script) < 0) {
		*cmd = NULL;
		fprintf(stderr, "sysgate-bench: out of memory\n");
		goto done;
	}
	if (strpbrk(o->python, " \t\n") || strpbrk(script, " \t\n")) {
		fprintf(stderr,
			"sysgate-bench: Python worker command '%s' contains blanks, which "
			"`sysgate --worker` cannot pass; use --python or TMPDIR\n",
			*cmd);
		goto done;
	}
	rc = 0;
done:
	free(sdk_lib);
	free(script);
	return rc;
}

/* sg_bench_worker_go next to the loop (built only where go was found): its cases are
 * skipped without it. */
static int prepare_go(const struct bench_opts *o, struct bench_env *e, char **cmd)
{
	(void)o;
	*cmd = join_path(e->loop_dir, "sg_bench_worker_go");
	if (!*cmd) {
		fprintf(stderr, "sysgate-bench: out of memory\n");
		return -1;
	}
	if (access(*cmd, X_OK) != 0 || strpbrk(*cmd, " \t\n")) {
		free(*cmd); /* not built (or unusable by --worker): its cases are skipped */
		*cmd = NULL;
	}
	return 0;
}

/* A new language: a row here, its enum worker_lang value, its options in parse_args (its
 * no_option comes from the row), and its cases in cases[] and twins[]. */
static const struct bench_lang langs[LANG_COUNT] = {
	[LANG_C] = { "C", "worker:", NULL, prepare_c },
	[LANG_PYTHON] = { "Python", "python:", "no-python", prepare_python },
	[LANG_GO] = { "Go", "go:", "no-go", prepare_go },
};

/* Whether case c is the nng twin of another (twins[]). */
static bool is_nng_twin(int c)
{
	for (size_t i = 0; i < sizeof(twins) / sizeof(twins[0]); i++)
		if (twins[i].nng == c)
			return true;
	return false;
}

/* --- running one case ----------------------------------------------------- */

/* Appends what is readable on fd to buf (keeping at most cap-1 bytes, draining the rest).
 * Returns 1 while open, 0 at end of file, -1 on error. */
static int drain(int fd, char *buf, size_t *len, size_t cap)
{
	char tmp[1024];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	if (n == 0)
		return 0;
	size_t room = cap - 1 - *len;
	size_t take = (size_t)n < room ? (size_t)n : room;
	memcpy(buf + *len, tmp, take);
	*len += take;
	buf[*len] = '\0';
	return 1;
}

/* First line of s, without trailing whitespace, into out. */
static void first_line(const char *s, char *out, size_t cap)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strcspn(s, "\n");
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/* Runs argv (stdin from /dev/null, stdout captured into out, stderr captured for the reason
 * of a failure or, with discard_err, sent to /dev/null) with the environment envp, and waits
 * for it.  *wall_ns receives the time from just before the start to just after the exit.
 * Returns 0 if it exited with status 0; otherwise writes a one-line reason into why and
 * returns -1. */
static int run_cmd(char *const argv[], char *const envp[], bool discard_err, char *out,
		   size_t out_cap, double *wall_ns, char *why, size_t why_cap)
{
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	int fa_ok = 0, rc = -1;
	pid_t pid = -1;
	char err[OUT_CAP] = "";
	size_t out_len = 0, err_len = 0;

	out[0] = '\0';
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || (!discard_err && pipe2(err_pipe, O_CLOEXEC) < 0)) {
		snprintf(why, why_cap, "pipe: %s", strerror(errno));
		goto done;
	}
	int e = posix_spawn_file_actions_init(&fa);
	if (e == 0) {
		fa_ok = 1;
		e = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	}
	if (e == 0)
		e = posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
	if (e == 0)
		e = discard_err ? posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null",
								   O_WRONLY, 0)
				: posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
	uint64_t t0 = now_ns();
	if (e == 0)
		e = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	if (e != 0) {
		pid = -1;
		snprintf(why, why_cap, "cannot start %s: %s", argv[0], strerror(e));
		goto done;
	}
	close(out_pipe[1]);
	out_pipe[1] = -1;
	if (err_pipe[1] >= 0)
		close(err_pipe[1]);
	err_pipe[1] = -1;

	struct pollfd pfd[2] = { { out_pipe[0], POLLIN, 0 }, { err_pipe[0], POLLIN, 0 } };
	while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(why, why_cap, "poll: %s", strerror(errno));
			goto done;
		}
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int r = i == 0 ? drain(pfd[i].fd, out, &out_len, out_cap)
				       : drain(pfd[i].fd, err, &err_len, sizeof(err));
			if (r <= 0)
				pfd[i].fd = -1; /* the pipe itself is closed at done */
		}
	}

	int status;
	pid_t w;
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	*wall_ns = (double)(now_ns() - t0);
	if (w < 0) {
		snprintf(why, why_cap, "waitpid: %s", strerror(errno));
		goto done;
	}
	pid = -1;

	char detail[256];
	if (discard_err)
		snprintf(detail, sizeof(detail), "(its standard error went to /dev/null)");
	else
		first_line(err, detail, sizeof(detail));
	if (WIFSIGNALED(status)) {
		snprintf(why, why_cap, "killed by signal %d (%s)%s%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), detail[0] ? ": " : "", detail);
		goto done;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(why, why_cap, "exited with status %d%s%s",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1, detail[0] ? ": " : "",
			 detail);
		goto done;
	}
	rc = 0;

done:
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* Runs one repetition of case c, with sg_arg as the argument of its sysgate flag and envp as
 * sysgate's environment.  On success stores the ns/call in *ns and returns 0; on failure
 * writes a one-line reason into why and returns -1. */
static int run_case(const struct bench_case *c, const char *sg_arg, char *const envp[],
		    const char *sysgate, const char *loop, long iters, double *ns, char *why,
		    size_t why_cap)
{
	char a_run[] = "run", a_dashes[] = "--", a_flag[32], a_sys[16], a_iters[24];
	char a_threads_opt[] = "--threads", a_threads[16];
	char *argv[12 + MAX_EXTRA];
	int argc = 0, rc = -1;
	char *sg_path = strdup(sysgate), *loop_path = strdup(loop);
	char *a_arg = sg_arg ? strdup(sg_arg) : NULL;
	char *a_extra[MAX_EXTRA] = { NULL };
	int n_extra = 0;
	char out[OUT_CAP];
	double wall;

	if (!sg_path || !loop_path || (sg_arg && !a_arg)) {
		snprintf(why, why_cap, "out of memory");
		goto done;
	}
	for (; c->extra && c->extra[n_extra]; n_extra++) {
		if (n_extra == MAX_EXTRA) {
			snprintf(why, why_cap, "more than %d extra sysgate arguments", MAX_EXTRA);
			goto done;
		}
		if (!(a_extra[n_extra] = strdup(c->extra[n_extra]))) {
			snprintf(why, why_cap, "out of memory");
			goto done;
		}
	}
	snprintf(a_sys, sizeof(a_sys), "%s", c->syscall);
	snprintf(a_iters, sizeof(a_iters), "%ld", iters);
	if (c->sg_flag) {
		argv[argc++] = sg_path;
		argv[argc++] = a_run;
		if (c->sg_flag[0]) {
			snprintf(a_flag, sizeof(a_flag), "%s", c->sg_flag);
			argv[argc++] = a_flag;
			argv[argc++] = a_arg;
			for (int i = 0; i < n_extra; i++)
				argv[argc++] = a_extra[i];
		}
		argv[argc++] = a_dashes;
	}
	argv[argc++] = loop_path;
	if (c->threads) {
		snprintf(a_threads, sizeof(a_threads), "%s", c->threads);
		argv[argc++] = a_threads_opt;
		argv[argc++] = a_threads;
	}
	argv[argc++] = a_sys;
	argv[argc++] = a_iters;
	argv[argc] = NULL;

	if (run_cmd(argv, envp, false, out, sizeof(out), &wall, why, why_cap) < 0)
		goto done;

	char *end;
	errno = 0;
	double v = strtod(out, &end);
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	if (errno != 0 || end == out || *end != '\0' || !isfinite(v) || v < 0) {
		char shown[128];
		first_line(out, shown, sizeof(shown));
		snprintf(why, why_cap, "unparsable output '%s' (expected ns per call)", shown);
		goto done;
	}
	*ns = v;
	rc = 0;

done:
	free(sg_path);
	free(loop_path);
	free(a_arg);
	for (int i = 0; i < n_extra; i++)
		free(a_extra[i]);
	return rc;
}

/* Runs one repetition of a wall-clock case: the command argv, runs times in a row.  Stores
 * the mean wall time per run, in ms, in *ms. */
static int run_wall(const struct wall_case *c, char *const argv[], char *const envp[], long runs,
		    double *ms, char *why, size_t why_cap)
{
	char out[OUT_CAP];
	double total = 0, wall = 0;
	for (long i = 0; i < runs; i++) {
		if (run_cmd(argv, envp, c->wrap == WRAP_AUDIT || c->wrap == WRAP_AUDIT_NNG, out,
			    sizeof(out), &wall, why, why_cap) < 0)
			return -1;
		total += wall;
	}
	*ms = total / (double)runs / 1e6;
	return 0;
}

/* --- report ----------------------------------------------------------------- */

static void print_ratio(double num, double den)
{
	if (den > 0)
		printf(" %9.2fx", num / den);
	else
		printf(" %10s", "n/a");
}

static void print_summary(const char *label, double num, double den)
{
	if (den > 0)
		printf("%-44s %8.2fx\n", label, num / den);
	else
		printf("%-44s %9s\n", label, "n/a");
}

/* --- issue 6's targets ------------------------------------------------------ */

enum target_result { T_PASS, T_FAIL, T_NA, T_SKIPPED };
static const char *const result_names[] = { "PASS", "FAIL", "N/A", "skipped" };

enum target_id {
	T_UNTRAPPED,
	T_WORKER,
	T_PATH,
	T_READ,
	T_PYTHON,
	T_GO,
	T_REPLICAS,
	T_WORKLOAD,
	T_STRACE,
	T_STARTUP,
	T_COUNT
};

/* How a measured figure is held against its limit. */
enum target_cmp { CMP_LE, CMP_GE, CMP_LT };

struct target {
	const char *id;   /* in the JSON line */
	const char *row;  /* the row of the table */
	const char *goal; /* the target, as printed */
	enum target_cmp cmp;
	double limit;
	bool is_ms;      /* an absolute difference in ms, not a ratio */
	double measured; /* NAN if not measured */
	enum target_result result;
	bool has_nng; /* the row has an nng figure (worker rows) */
	double nng;   /* measured the same way on the nng twins, never judged; NAN if not */
	char note[384];
};

static const struct target target_rows[T_COUNT] = {
	[T_UNTRAPPED] = { "untrapped", "untrapped syscall under sysgate vs no sysgate", "<= 1.3x",
			  CMP_LE, 1.3 },
	[T_WORKER] = { "worker-continue", "trapped: C worker (continue) vs inline builtin", "<= 2x",
		       CMP_LE, 2.0 },
	[T_PATH] = { "worker-path", "C worker reading the pre-read path vs not reading", "<= 1.1x",
		     CMP_LE, 1.1 },
	[T_READ] = { "worker-read", "C worker with one proxied 256-byte read vs without", "<= 1.5x",
		     CMP_LE, 1.5 },
	[T_PYTHON] = { "python", "Python worker vs C worker, same handler", "<= 2x", CMP_LE, 2.0 },
	[T_GO] = { "go", "Go worker vs C worker, same handler", "<= 1.5x", CMP_LE, 1.5 },
	[T_REPLICAS] = { "replicas", "2 child threads, 2 worker replicas vs 1/1 (throughput)",
			 ">= 1.6x", CMP_GE, 1.6 },
	[T_WORKLOAD] = { "workload-untrapped", "real workload, audit worker vs untrapped (wall)",
			 "<= 1.3x", CMP_LE, 1.3 },
	[T_STRACE] = { "workload-strace", "real workload, audit worker vs strace (wall)", "< 1x",
		       CMP_LT, 1.0 },
	[T_STARTUP] = { "startup", "start-up: sysgate run -- /bin/true minus /bin/true", "<= 5 ms",
			CMP_LE, 5.0, true },
};

static double ratio(double num, double den)
{
	return den > 0 && num >= 0 ? num / den : NAN;
}

static bool meets(const struct target *t, double v)
{
	switch (t->cmp) {
	case CMP_GE:
		return v >= t->limit;
	case CMP_LT:
		return v < t->limit;
	default:
		return v <= t->limit;
	}
}

/* Sets t->measured and t->result (PASS/FAIL, or N/A when nothing could be measured). */
static void judge(struct target *t, double v)
{
	t->measured = v;
	t->result = isnan(v) ? T_NA : meets(t, v) ? T_PASS : T_FAIL;
}

/* Sets the row's nng figure. */
static void set_nng(struct target *t, double v)
{
	t->has_nng = true;
	t->nng = v;
}

/* The largest of n ratios (the worst, for an upper limit), its index in *worst. */
static double worst_of(const double *v, int n, int *worst)
{
	double m = NAN;
	*worst = 0;
	for (int i = 0; i < n; i++) {
		if (isnan(v[i]))
			return NAN;
		if (isnan(m) || v[i] > m) {
			m = v[i];
			*worst = i;
		}
	}
	return m;
}

static void compute_targets(struct target *t, const struct stats *st, const bool *skip,
			    const struct stats *ws, const bool *wskip, const char *tar_dir,
			    long py_runs)
{
	for (int i = 0; i < T_COUNT; i++) {
		t[i] = target_rows[i];
		t[i].measured = t[i].nng = NAN;
		t[i].note[0] = '\0';
	}
	judge(&t[T_UNTRAPPED], ratio(st[C_UNTRAPPED].median, st[C_PLAIN].median));
	judge(&t[T_WORKER], ratio(st[C_WORKER_CONTINUE].median, st[C_INLINE_CONTINUE].median));
	set_nng(&t[T_WORKER],
		ratio(st[C_NNG_WORKER_CONTINUE].median, st[C_INLINE_CONTINUE].median));
	judge(&t[T_PATH], ratio(st[C_WORKER_PATH].median, st[C_WORKER_NOPATH].median));
	set_nng(&t[T_PATH], ratio(st[C_NNG_WORKER_PATH].median, st[C_NNG_WORKER_NOPATH].median));
	judge(&t[T_READ], ratio(st[C_WORKER_READ].median, st[C_WORKER_CONTINUE].median));
	set_nng(&t[T_READ], ratio(st[C_NNG_WORKER_READ].median, st[C_NNG_WORKER_CONTINUE].median));

	static const char *const mode[] = { "continue", "path", "read" };
	if (skip[C_PY_CONTINUE]) {
		t[T_PYTHON].result = T_SKIPPED;
		snprintf(t[T_PYTHON].note, sizeof(t[T_PYTHON].note), "--no-python");
	} else {
		/* Each Python case over its C twin (cases[].c_twin), per transport. */
		static const int py[] = { C_PY_CONTINUE, C_PY_PATH, C_PY_READ };
		static const int nng_py[] = { C_NNG_PY_CONTINUE, C_NNG_PY_PATH, C_NNG_PY_READ };
		double r[3], rn[3];
		int w, wn;
		for (int i = 0; i < 3; i++) {
			r[i] = ratio(st[py[i]].median, st[cases[py[i]].c_twin].median);
			rn[i] = ratio(st[nng_py[i]].median, st[cases[nng_py[i]].c_twin].median);
		}
		judge(&t[T_PYTHON], worst_of(r, 3, &w));
		set_nng(&t[T_PYTHON], worst_of(rn, 3, &wn));
		snprintf(t[T_PYTHON].note, sizeof(t[T_PYTHON].note),
			 "worst of continue %.2fx, path %.2fx, read %.2fx: %s; nng worst: %s", r[0],
			 r[1], r[2], mode[w], mode[wn]);
	}

	if (skip[C_GO_CONTINUE]) {
		t[T_GO].result = T_SKIPPED;
		snprintf(t[T_GO].note, sizeof(t[T_GO].note), "--no-go, or no sg_bench_worker_go");
	} else {
		double r[2] = { ratio(st[C_GO_CONTINUE].median, st[C_WORKER_CONTINUE].median),
				ratio(st[C_GO_PATH].median, st[C_WORKER_PATH].median) };
		int w;
		judge(&t[T_GO], worst_of(r, 2, &w));
		snprintf(t[T_GO].note, sizeof(t[T_GO].note), "worst of continue %.2fx, path %.2fx",
			 r[0], r[1]);
	}

	judge(&t[T_REPLICAS], ratio(st[C_WORKER_CONTINUE].median, st[C_WORKER_REPLICAS].median));
	set_nng(&t[T_REPLICAS],
		ratio(st[C_NNG_WORKER_CONTINUE].median, st[C_NNG_WORKER_REPLICAS].median));
	snprintf(t[T_REPLICAS].note, sizeof(t[T_REPLICAS].note),
		 "for reference, inline 2 vs 1 thread %.2fx",
		 ratio(st[C_INLINE_CONTINUE].median, st[C_INLINE_2THREADS].median));

	if (wskip[W_PY_AUDIT]) {
		t[T_WORKLOAD].result = t[T_STRACE].result = T_SKIPPED;
		snprintf(t[T_WORKLOAD].note, sizeof(t[T_WORKLOAD].note), "--no-workload");
		snprintf(t[T_STRACE].note, sizeof(t[T_STRACE].note), "--no-workload");
	} else {
		double r[2] = { ratio(ws[W_PY_AUDIT].median, ws[W_PY_UNTRAPPED].median),
				ratio(ws[W_TAR_AUDIT].median, ws[W_TAR_UNTRAPPED].median) };
		double rn[2] = { ratio(ws[W_PY_AUDIT_NNG].median, ws[W_PY_UNTRAPPED].median),
				 ratio(ws[W_TAR_AUDIT_NNG].median, ws[W_TAR_UNTRAPPED].median) };
		char py_name[48];
		snprintf(py_name, sizeof(py_name), "python3 x%ld", py_runs);
		const char *names[2] = { py_name, "tar" };
		int w, wn;
		judge(&t[T_WORKLOAD], worst_of(r, 2, &w));
		set_nng(&t[T_WORKLOAD], worst_of(rn, 2, &wn));
		/* The same syscalls trapped and continued inline: below that no
		 * worker can go. */
		double floor[2] = { ratio(ws[W_PY_TRAP].median, ws[W_PY_UNTRAPPED].median),
				    ratio(ws[W_TAR_TRAP].median, ws[W_TAR_UNTRAPPED].median) };
		snprintf(t[T_WORKLOAD].note, sizeof(t[T_WORKLOAD].note),
			 "worst of %s %.2fx, tar %s %.2fx: %s; nng worst: %s; floor (the same "
			 "syscalls trapped inline): %s %.2fx, tar %.2fx",
			 py_name, r[0], tar_dir, r[1], names[w], names[wn], py_name, floor[0],
			 floor[1]);
		if (wskip[W_PY_STRACE]) {
			t[T_STRACE].result = T_SKIPPED;
			snprintf(t[T_STRACE].note, sizeof(t[T_STRACE].note), "no strace found");
		} else {
			r[0] = ratio(ws[W_PY_AUDIT].median, ws[W_PY_STRACE].median);
			r[1] = ratio(ws[W_TAR_AUDIT].median, ws[W_TAR_STRACE].median);
			rn[0] = ratio(ws[W_PY_AUDIT_NNG].median, ws[W_PY_STRACE].median);
			rn[1] = ratio(ws[W_TAR_AUDIT_NNG].median, ws[W_TAR_STRACE].median);
			judge(&t[T_STRACE], worst_of(r, 2, &w));
			set_nng(&t[T_STRACE], worst_of(rn, 2, &wn));
			snprintf(t[T_STRACE].note, sizeof(t[T_STRACE].note),
				 "sysgate/strace, worst of %s %.2fx, tar %.2fx: %s; nng worst: %s",
				 py_name, r[0], r[1], names[w], names[wn]);
		}
	}

	double up = ws[W_STARTUP_SYSGATE].median, down = ws[W_STARTUP_PLAIN].median;
	judge(&t[T_STARTUP], up > 0 && down > 0 ? up - down : NAN);
	snprintf(t[T_STARTUP].note, sizeof(t[T_STARTUP].note), "%.2f ms vs %.2f ms", up, down);
}

/* A target's figure as printed: "-" for none (skipped, or no such figure), "n/a" for one
 * that could not be measured. */
static void format_figure(char *buf, size_t cap, const struct target *t, bool present, double v)
{
	if (t->result == T_SKIPPED || !present)
		snprintf(buf, cap, "-");
	else if (isnan(v))
		snprintf(buf, cap, "n/a");
	else if (t->is_ms)
		snprintf(buf, cap, "%+.2f ms", v);
	else
		snprintf(buf, cap, "%.2fx", v);
}

static void print_targets(const struct target *t)
{
	int count[4] = { 0 };
	printf("\ntargets (issue 6)\n");
	printf("%-54s %9s %9s  %-8s %-7s %s\n", "row", "measured", "nng", "target", "result",
	       "note");
	for (int i = 0; i < T_COUNT; i++) {
		char m[32], n[32];
		format_figure(m, sizeof(m), &t[i], true, t[i].measured);
		format_figure(n, sizeof(n), &t[i], t[i].has_nng, t[i].nng);
		const char *res = result_names[t[i].result];
		printf("%-54s %9s %9s  %-8s %s", t[i].row, m, n, t[i].goal, res);
		if (t[i].note[0]) /* the note column, with no blanks at the end of the line */
			printf("%*s%s", 8 - (int)strlen(res), "", t[i].note);
		printf("\n");
		count[t[i].result]++;
	}
	printf("targets: %d PASS, %d FAIL, %d N/A, %d skipped (ratios of medians over the "
	       "repetitions;\n judged on measured, the default transport; nng: the same figure "
	       "from the nng twins, not judged)\n",
	       count[T_PASS], count[T_FAIL], count[T_NA], count[T_SKIPPED]);
}

/* The JSON line: medians, mins and maxes of every case run, and the targets. */
static int print_json(const struct stats *st, const bool *skip, const struct stats *ws,
		      const bool *wskip, const struct target *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -1;
	fprintf(f, "{\"cases\":{");
	for (int c = 0, first = 1; c < C_COUNT; c++) {
		if (skip[c])
			continue;
		fprintf(f, "%s\"%s\":{\"median_ns\":%.1f,\"min_ns\":%.1f,\"max_ns\":%.1f}",
			first ? "" : ",", cases[c].name, st[c].median, st[c].min, st[c].max);
		first = 0;
	}
	fprintf(f, "},\"wall\":{");
	for (int c = 0, first = 1; c < W_COUNT; c++) {
		if (wskip[c])
			continue;
		fprintf(f, "%s\"%s\":{\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f}",
			first ? "" : ",", wall_cases[c].name, ws[c].median, ws[c].min, ws[c].max);
		first = 0;
	}
	fprintf(f, "},\"targets\":{");
	for (int i = 0; i < T_COUNT; i++) {
		fprintf(f, "%s\"%s\":{\"measured\":", i ? "," : "", t[i].id);
		if (isnan(t[i].measured))
			fprintf(f, "null");
		else
			fprintf(f, "%.4g", t[i].measured);
		fprintf(f, ",\"nng\":");
		if (!t[i].has_nng || isnan(t[i].nng))
			fprintf(f, "null");
		else
			fprintf(f, "%.4g", t[i].nng);
		fprintf(f, ",\"unit\":\"%s\",\"target\":\"%s\",\"result\":\"%s\"}",
			t[i].is_ms ? "ms" : "x", t[i].goal, result_names[t[i].result]);
	}
	fprintf(f, "}}");
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	printf("BENCH_JSON %s\n", buf);
	free(buf);
	return 0;
}

static void print_context(const struct bench_opts *o, const struct bench_env *e)
{
	struct utsname u;
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	int avail = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : (int)online;

	printf("sysgate-bench\n");
	printf("machine:  nproc %d (online %ld)", avail, online);
	if (uname(&u) == 0)
		printf(", kernel %s, %s", u.release, u.machine);
	printf("\n");
	printf("sysgate:  %s\n", e->sysgate);
	printf("loop:     %s\n", e->loop);
	for (int l = 0; l < LANG_COUNT; l++) {
		if (!langs[l].prepare)
			continue;
		if (e->worker[l])
			printf("%-10s%s\n", langs[l].header, e->worker[l]);
		else
			printf("%-10s(left out: --%s)\n", langs[l].header, langs[l].no_option);
	}
	printf("runs:     %ld reps, interleaved; iterations: %ld untrapped, %ld trapped inline, "
	       "%ld C worker, %ld Python worker\n",
	       o->reps, e->iters[ITERS_UNTRAPPED], e->iters[ITERS_TRAPPED], e->iters[ITERS_WORKER],
	       e->iters[ITERS_PYTHON]);
	printf("threads:  inline-2threads, *worker-replicas: sg_bench_loop --threads %s (aggregate "
	       "ns per call); *worker-replicas: --replicas %s\n",
	       MT_THREADS, MT_REPLICAS);
	printf("channel:  worker cases and *-audit: the default transport (fast); nng-* and "
	       "*-audit-nng: --worker-transport nng\n");
	printf("start-up: %s, %ld launches per rep (their mean)\n", STARTUP_CMD, o->startup_runs);
	if (!o->no_workload) {
		printf("workload: %s -c '%s' run %ld times in one sh loop; tar -cPf /dev/zero %s\n",
		       o->python, PY_IMPORT, o->py_runs, o->tar_dir);
		printf("audit:    %s (its output: sysgate's standard error, to /dev/null)\n",
		       e->audit);
		printf("strace:   %s\n",
		       e->strace ? e->strace : "(none found: strace cases skipped)");
	} else {
		printf("workload: (left out: --no-workload)\n");
	}
	printf("\n");
	fflush(stdout);
}

/* A worker case in another language against the C worker case with the same MODE and the
 * inline case of its syscall. */
static void print_lang_summary(const struct stats *st, int c)
{
	char label[64];
	int twin = cases[c].c_twin, own = cases[c].counterpart;
	snprintf(label, sizeof(label), "%s worker vs C worker, %s", langs[cases[c].lang].name,
		 cases[c].sg_arg);
	if (st[twin].median > 0 && st[own].median > 0)
		printf("%-44s %8.2fx  (%.2fx %s)\n", label, st[c].median / st[twin].median,
		       st[c].median / st[own].median, cases[own].name);
	else
		printf("%-44s %9s\n", label, "n/a");
}

static void print_table(const struct stats *st, const bool *skip)
{
	const double ref_inline = st[C_INLINE_CONTINUE].median, ref_plain = st[C_PLAIN].median;
	printf("%-19s %10s %10s %10s %10s %10s %10s\n", "case", "median_ns", "min_ns", "max_ns",
	       "x_inline", "x_plain", "x_own");
	for (int c = 0; c < C_COUNT; c++) {
		if (skip[c]) {
			printf("%-19s %10s\n", cases[c].name, "skipped");
			continue;
		}
		printf("%-19s %10.1f %10.1f %10.1f", cases[c].name, st[c].median, st[c].min,
		       st[c].max);
		print_ratio(st[c].median, ref_inline);
		print_ratio(st[c].median, ref_plain);
		if (cases[c].counterpart >= 0)
			print_ratio(st[c].median, st[cases[c].counterpart].median);
		else
			printf(" %10s", "-");
		printf("\n");
	}
	printf("(x_inline: median / inline-continue median; x_plain: median / plain median;\n"
	       " x_own: median / median of the inline case trapping the same syscall)\n");
	printf("\n");
	print_summary("untrapped under sysgate vs plain", st[C_UNTRAPPED].median, ref_plain);
	print_summary("trapped inline vs untrapped", ref_inline, st[C_UNTRAPPED].median);
	print_summary("C worker continue vs inline", st[C_WORKER_CONTINUE].median, ref_inline);
	print_summary("pre-read path vs not reading (worker)", st[C_WORKER_PATH].median,
		      st[C_WORKER_NOPATH].median);
	print_summary("proxied 256-byte read vs worker continue", st[C_WORKER_READ].median,
		      st[C_WORKER_CONTINUE].median);
	print_summary("2 threads vs 1, inline (throughput)", st[C_INLINE_CONTINUE].median,
		      st[C_INLINE_2THREADS].median);
	print_summary("2 threads, 2 replicas vs 1/1 (throughput)", st[C_WORKER_CONTINUE].median,
		      st[C_WORKER_REPLICAS].median);
	/* Every other language's worker cases against the C worker's, language by language. */
	for (int l = 0; l < LANG_COUNT; l++) {
		for (int c = 0; l != LANG_NONE && l != LANG_C && c < C_COUNT; c++) {
			if ((int)cases[c].lang == l && !skip[c] && !is_nng_twin(c))
				print_lang_summary(st, c);
		}
	}
	/* What the default transport saves over nng, case by case. */
	for (size_t i = 0; i < sizeof(twins) / sizeof(twins[0]); i++) {
		char label[64];
		if (skip[twins[i].fast] || skip[twins[i].nng])
			continue;
		snprintf(label, sizeof(label), "%s, nng / fast", twins[i].label);
		print_summary(label, st[twins[i].nng].median, st[twins[i].fast].median);
	}
}

static void print_wall_table(const struct stats *ws, const bool *wskip, long startup_runs)
{
	printf("\n%-19s %10s %10s %10s %10s %11s\n", "wall case", "median_ms", "min_ms", "max_ms",
	       "x_plain", "x_untrapped");
	for (int c = 0; c < W_COUNT; c++) {
		const struct wall_case *w = &wall_cases[c];
		if (wskip[c]) {
			printf("%-19s %10s\n", w->name, "skipped");
			continue;
		}
		printf("%-19s %10.2f %10.2f %10.2f", w->name, ws[c].median, ws[c].min, ws[c].max);
		if (w->plain >= 0 && !wskip[w->plain])
			print_ratio(ws[c].median, ws[w->plain].median);
		else
			printf(" %10s", "-");
		if (w->untrapped >= 0 && !wskip[w->untrapped])
			printf(" %10.2fx", ratio(ws[c].median, ws[w->untrapped].median));
		else
			printf(" %11s", "-");
		printf("\n");
	}
	printf("(ms per run of the whole command, sysgate's start-up included; startup-*: mean of\n"
	       " %ld launches; x_plain: median / the same work with no sysgate; x_untrapped:\n"
	       " median / the same work untrapped under sysgate)\n",
	       startup_runs);
}

/* --- main ------------------------------------------------------------------- */

/* Parses the command line into *o, with the defaults (--quick's, or the normal ones) for
 * what it leaves out: 0 to run, 1 after --help, -1 on a usage error (printed). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	enum {
		OPT_SYSGATE = 256,
		OPT_LOOP,
		OPT_WORKER_BIN,
		OPT_PYTHON,
		OPT_PY_WORKER,
		OPT_PY_SDK,
		OPT_SDK_LIB,
		OPT_AUDIT_WORKER,
		OPT_STRACE,
		OPT_TAR_DIR,
		OPT_PY_RUNS,
		OPT_STARTUP_RUNS,
		OPT_NO_WORKLOAD,
		OPT_REPS,
		OPT_ITERS,
		OPT_QUICK,
		OPT_HELP,
		OPT_NO_LANG, /* + enum worker_lang: its row's no_option */
	};
	static const struct option base[] = {
		{ "sysgate", required_argument, NULL, OPT_SYSGATE },
		{ "loop", required_argument, NULL, OPT_LOOP },
		{ "worker-bin", required_argument, NULL, OPT_WORKER_BIN },
		{ "python", required_argument, NULL, OPT_PYTHON },
		{ "py-worker", required_argument, NULL, OPT_PY_WORKER },
		{ "py-sdk", required_argument, NULL, OPT_PY_SDK },
		{ "sdk-lib", required_argument, NULL, OPT_SDK_LIB },
		{ "audit-worker", required_argument, NULL, OPT_AUDIT_WORKER },
		{ "strace", required_argument, NULL, OPT_STRACE },
		{ "tar-dir", required_argument, NULL, OPT_TAR_DIR },
		{ "py-runs", required_argument, NULL, OPT_PY_RUNS },
		{ "startup-runs", required_argument, NULL, OPT_STARTUP_RUNS },
		{ "no-workload", no_argument, NULL, OPT_NO_WORKLOAD },
		{ "reps", required_argument, NULL, OPT_REPS },
		{ "iters", required_argument, NULL, OPT_ITERS },
		{ "quick", no_argument, NULL, OPT_QUICK },
		{ "help", no_argument, NULL, OPT_HELP },
	};
	const size_t n_base = sizeof(base) / sizeof(base[0]);
	struct option opts[sizeof(base) / sizeof(base[0]) + LANG_COUNT + 1];
	size_t n = 0;
	for (; n < n_base; n++)
		opts[n] = base[n];
	for (int l = 0; l < LANG_COUNT; l++) {
		if (langs[l].no_option)
			opts[n++] = (struct option){ langs[l].no_option, no_argument, NULL,
						     OPT_NO_LANG + l };
	}
	opts[n] = (struct option){ NULL, 0, NULL, 0 };

	*o = (struct bench_opts){ .python = DEFAULT_PYTHON,
				  .py_worker = SG_BENCH_PY_WORKER,
				  .py_sdk = SG_BENCH_PY_SDK,
				  .reps = -1,
				  .iters = -1,
				  .py_runs = -1,
				  .startup_runs = -1 };
	bool quick = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_SYSGATE:
			o->sysgate = optarg;
			break;
		case OPT_LOOP:
			o->loop = optarg;
			break;
		case OPT_WORKER_BIN:
			o->worker_bin = optarg;
			break;
		case OPT_PYTHON:
			o->python = optarg;
			break;
		case OPT_PY_WORKER:
			o->py_worker = optarg;
			break;
		case OPT_PY_SDK:
			o->py_sdk = optarg;
			break;
		case OPT_SDK_LIB:
			o->sdk_lib = optarg;
			break;
		case OPT_AUDIT_WORKER:
			o->audit = optarg;
			break;
		case OPT_STRACE:
			o->strace = optarg;
			break;
		case OPT_TAR_DIR:
			o->tar_dir = optarg;
			break;
		case OPT_PY_RUNS:
		case OPT_STARTUP_RUNS:
			if (parse_long(optarg, 1, MAX_RUNS,
				       opt == OPT_PY_RUNS ? &o->py_runs : &o->startup_runs) < 0) {
				fprintf(stderr, "sysgate-bench: --%s %s: not a number 1..%ld\n",
					opt == OPT_PY_RUNS ? "py-runs" : "startup-runs", optarg,
					MAX_RUNS);
				return -1;
			}
			break;
		case OPT_NO_WORKLOAD:
			o->no_workload = true;
			break;
		case OPT_REPS:
			if (parse_long(optarg, 1, MAX_REPS, &o->reps) < 0) {
				fprintf(stderr, "sysgate-bench: --reps %s: not a number 1..%ld\n",
					optarg, MAX_REPS);
				return -1;
			}
			break;
		case OPT_ITERS:
			if (parse_long(optarg, 1, MAX_ITERS, &o->iters) < 0) {
				fprintf(stderr, "sysgate-bench: --iters %s: not a number 1..%ld\n",
					optarg, MAX_ITERS);
				return -1;
			}
			break;
		case OPT_QUICK:
			quick = true;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			return 1;
		default:
			if (opt >= OPT_NO_LANG && opt < OPT_NO_LANG + LANG_COUNT) {
				o->no_lang[opt - OPT_NO_LANG] = true;
				break;
			}
			fputs(usage, stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "sysgate-bench: unexpected argument '%s'\n", argv[optind]);
		fputs(usage, stderr);
		return -1;
	}
	/* --quick supplies defaults; an explicit --reps/--iters wins in any order. */
	if (o->reps < 0)
		o->reps = quick ? QUICK_REPS : DEFAULT_REPS;
	if (o->iters < 0)
		o->iters = quick ? QUICK_ITERS : DEFAULT_ITERS;
	if (o->py_runs < 0)
		o->py_runs = quick ? QUICK_PY_RUNS : DEFAULT_PY_RUNS;
	if (o->startup_runs < 0)
		o->startup_runs = quick ? QUICK_STARTUP_RUNS : DEFAULT_STARTUP_RUNS;
	if (!o->tar_dir)
		o->tar_dir = quick ? QUICK_TAR_DIR : DEFAULT_TAR_DIR;
	return 0;
}

/* Calls per run by enum case_iters: the slower the path, the fewer. */
static void case_iterations(long iters, long out[ITERS_COUNT])
{
	out[ITERS_UNTRAPPED] = iters;
	out[ITERS_TRAPPED] = iters / 10 > MIN_TRAPPED_ITERS ? iters / 10 : MIN_TRAPPED_ITERS;
	out[ITERS_WORKER] = iters / 10 / WORKER_ITERS_DIV > MIN_WORKER_ITERS
				    ? iters / 10 / WORKER_ITERS_DIV
				    : MIN_WORKER_ITERS;
	out[ITERS_PYTHON] = out[ITERS_WORKER] / PYTHON_ITERS_DIV > MIN_PYTHON_ITERS
				    ? out[ITERS_WORKER] / PYTHON_ITERS_DIV
				    : MIN_PYTHON_ITERS;
}

/* Finds sysgate and the loop, and prepares every language's worker not left out (langs[]).
 * On failure prints why and returns -1. */
static int env_setup(const struct bench_opts *o, struct bench_env *e)
{
	/* The environment as given, before the Python staging sets PYTHONPATH: the
	 * wall-clock cases run in it. */
	e->orig_env = env_copy(environ);
	if (!o->sysgate || !o->loop) {
		e->dir = self_dir();
		if (!e->dir) {
			fprintf(stderr, "sysgate-bench: cannot resolve /proc/self/exe; "
					"pass --sysgate and --loop\n");
			return -1;
		}
	}
	if (o->sysgate) {
		e->sysgate = strdup(o->sysgate);
	} else {
		char *parent = dir_of(e->dir);
		if (parent) {
			e->sysgate = join_path(parent, "sysgate");
			free(parent);
		}
	}
	e->loop = locate(o->loop, e->dir, "sg_bench_loop");
	e->loop_dir = e->loop ? dir_of(e->loop) : NULL;
	if (!e->orig_env || !e->sysgate || !e->loop || !e->loop_dir) {
		fprintf(stderr, "sysgate-bench: out of memory\n");
		return -1;
	}
	if (check_executable("sysgate", e->sysgate, "--sysgate") < 0 ||
	    check_executable("loop", e->loop, "--loop") < 0)
		return -1;
	for (int l = 0; l < LANG_COUNT; l++) {
		if (langs[l].prepare && !o->no_lang[l] && langs[l].prepare(o, e, &e->worker[l]) < 0)
			return -1;
	}
	case_iterations(o->iters, e->iters);
	return 0;
}

/* Finds what the workload cases run: the audit worker, tar, strace (optional). */
static int workload_setup(const struct bench_opts *o, struct bench_env *e)
{
	struct stat tst;
	if (o->audit) {
		e->audit = strdup(o->audit);
	} else {
		char *sg_dir = dir_of(e->sysgate);
		e->audit = sg_dir ? join_path(sg_dir, "examples/sysgate-audit-worker") : NULL;
		free(sg_dir);
	}
	if (!e->audit) {
		fprintf(stderr, "sysgate-bench: out of memory\n");
		return -1;
	}
	if (check_executable("audit worker", e->audit, "--audit-worker or --no-workload") < 0 ||
	    check_executable("python", o->python, "--python or --no-workload") < 0)
		return -1;
	char *audit_abs = realpath(e->audit, NULL);
	if (audit_abs) {
		free(e->audit);
		e->audit = audit_abs;
	}
	if (strpbrk(e->audit, " \t\n")) {
		fprintf(stderr,
			"sysgate-bench: audit worker path '%s' contains blanks, which "
			"`sysgate --worker` cannot pass; use --audit-worker\n",
			e->audit);
		return -1;
	}
	if (!(e->tar = find_in_path("tar"))) {
		fprintf(stderr, "sysgate-bench: no tar in PATH (use --no-workload)\n");
		return -1;
	}
	if (stat(o->tar_dir, &tst) < 0 || !S_ISDIR(tst.st_mode)) {
		fprintf(stderr, "sysgate-bench: --tar-dir %s: not a directory (use --tar-dir)\n",
			o->tar_dir);
		return -1;
	}
	e->strace = find_in_path(o->strace ? o->strace : "strace");
	if (!e->strace && o->strace) {
		fprintf(stderr, "sysgate-bench: strace not executable at %s (use --strace)\n",
			o->strace);
		return -1;
	}
	return 0;
}

/* The argument of each case's sysgate flag (a --worker case: its language's worker and
 * MODE), and which cases are left out. */
static int case_commands(const struct bench_env *e, bool skip[C_COUNT], char *sg_args[C_COUNT])
{
	for (int c = 0; c < C_COUNT; c++) {
		skip[c] = cases[c].lang != LANG_NONE && !e->worker[cases[c].lang];
		if (!cases[c].sg_arg || skip[c])
			continue;
		if (strcmp(cases[c].sg_flag, "--worker") == 0) {
			if (asprintf(&sg_args[c], "%s %s", e->worker[cases[c].lang],
				     cases[c].sg_arg) < 0)
				sg_args[c] = NULL;
		} else {
			sg_args[c] = strdup(cases[c].sg_arg);
		}
		if (!sg_args[c]) {
			fprintf(stderr, "sysgate-bench: out of memory\n");
			return -1;
		}
	}
	return 0;
}

/* Each wall-clock case's command: its wrapper's words, then its work's; and which cases
 * are left out. */
static int wall_commands(const struct bench_opts *o, const struct bench_env *e, bool wskip[W_COUNT],
			 char **wall_argv[W_COUNT])
{
	char py_n[24];
	snprintf(py_n, sizeof(py_n), "%ld", o->py_runs);
	/* $1: the interpreter, $2: how many runs. */
	const char *py_loop = "i=0; while [ \"$i\" -lt \"$2\" ]; do \"$1\" -c '" PY_IMPORT
			      "' || exit 1; i=$((i + 1)); done";
	const char *work_startup[] = { STARTUP_CMD };
	const char *work_py[] = { "/bin/sh", "-c", py_loop, "sh", o->python, py_n };
	const char *work_tar[] = { e->tar, "-cPf", "/dev/zero", o->tar_dir };
	const char *wrap_sysgate[] = { e->sysgate, "run", "--" };
	/* What the audit worker registers, trapped and continued by a builtin: the floor for
	 * any worker. */
	const char *wrap_trap[] = { e->sysgate, "run",    "--trap", "openat", "--trap",
				    "open",     "--trap", "creat",  "--trap", "openat2",
				    "--trap",   "execve", "--" };
	const char *wrap_audit[] = { e->sysgate, "run", "--worker", e->audit, "--" };
	const char *wrap_audit_nng[] = { e->sysgate,           "run", "--worker", e->audit,
					 "--worker-transport", "nng", "--" };
	const char *wrap_strace[] = { e->strace, "-f", "-e", "trace=openat", "-o", "/dev/null" };
	/* Each enum value's words, counted where they are written. */
#define WORDS(a)                                                                                   \
	{                                                                                          \
		a, sizeof(a) / sizeof(*(a))                                                        \
	}
	const struct {
		const char *const *v;
		size_t n;
	} works[] = { [WORK_STARTUP] = WORDS(work_startup),
		      [WORK_PY] = WORDS(work_py),
		      [WORK_TAR] = WORDS(work_tar) },
	  wraps[] = { [WRAP_NONE] = { NULL, 0 },
		      [WRAP_SYSGATE] = WORDS(wrap_sysgate),
		      [WRAP_TRAP] = WORDS(wrap_trap),
		      [WRAP_AUDIT] = WORDS(wrap_audit),
		      [WRAP_AUDIT_NNG] = WORDS(wrap_audit_nng),
		      [WRAP_STRACE] = WORDS(wrap_strace) };
#undef WORDS
	for (int c = 0; c < W_COUNT; c++) {
		const struct wall_case *w = &wall_cases[c];
		wskip[c] = (w->work != WORK_STARTUP && o->no_workload) ||
			   (w->wrap == WRAP_STRACE && !e->strace);
		if (wskip[c])
			continue;
		if (!(wall_argv[c] = strv_join(wraps[w->wrap].v, wraps[w->wrap].n, works[w->work].v,
					       works[w->work].n))) {
			fprintf(stderr, "sysgate-bench: out of memory\n");
			return -1;
		}
	}
	return 0;
}

/* Runs every case o->reps times, interleaved (rep 1 of every case, then rep 2, ...), into
 * samples[c * reps + rep] (ns per call) and wall_samples[] (ms per run). */
static int measure(const struct bench_opts *o, const struct bench_env *e,
		   char *const sg_args[C_COUNT], const bool skip[C_COUNT],
		   char **const wall_argv[W_COUNT], const bool wskip[W_COUNT], double *samples,
		   double *wall_samples)
{
	char why[512];
	/* One untimed run of each plain wall-clock case first, so no repetition pays for a cold
	 * page cache (tar reads every file of its directory). */
	for (int c = 0; c < W_COUNT; c++) {
		double ms;
		if (wskip[c] || wall_cases[c].wrap != WRAP_NONE)
			continue;
		if (run_wall(&wall_cases[c], wall_argv[c], e->orig_env, 1, &ms, why, sizeof(why)) <
		    0) {
			fflush(stdout);
			fprintf(stderr, "sysgate-bench: case %s failed (warm-up): %s\n",
				wall_cases[c].name, why);
			return -1;
		}
	}
	for (long r = 0; r < o->reps; r++) {
		for (int c = 0; c < C_COUNT; c++) {
			if (skip[c])
				continue;
			if (run_case(&cases[c], sg_args[c], environ, e->sysgate, e->loop,
				     e->iters[cases[c].iters], &samples[c * o->reps + r], why,
				     sizeof(why)) < 0) {
				fflush(stdout);
				fprintf(stderr, "sysgate-bench: case %s failed (rep %ld): %s\n",
					cases[c].name, r + 1, why);
				return -1;
			}
		}
		for (int c = 0; c < W_COUNT; c++) {
			if (wskip[c])
				continue;
			if (run_wall(&wall_cases[c], wall_argv[c], e->orig_env,
				     wall_cases[c].work == WORK_STARTUP ? o->startup_runs : 1,
				     &wall_samples[c * o->reps + r], why, sizeof(why)) < 0) {
				fflush(stdout);
				fprintf(stderr, "sysgate-bench: case %s failed (rep %ld): %s\n",
					wall_cases[c].name, r + 1, why);
				return -1;
			}
		}
	}
	return 0;
}

/* The tables, the targets and the JSON line, from the samples. */
static int report(const struct bench_opts *o, const bool skip[C_COUNT], const bool wskip[W_COUNT],
		  const double *samples, const double *wall_samples)
{
	double *scratch = calloc((size_t)o->reps, sizeof(*scratch));
	if (!scratch) {
		fprintf(stderr, "sysgate-bench: out of memory\n");
		return -1;
	}
	struct stats st[C_COUNT], ws[W_COUNT];
	struct target targets[T_COUNT];
	for (int c = 0; c < C_COUNT; c++)
		st[c] = compute_stats(&samples[c * o->reps], o->reps, scratch);
	for (int c = 0; c < W_COUNT; c++)
		ws[c] = compute_stats(&wall_samples[c * o->reps], o->reps, scratch);
	free(scratch);
	compute_targets(targets, st, skip, ws, wskip, o->tar_dir, o->py_runs);
	print_table(st, skip);
	print_wall_table(ws, wskip, o->startup_runs);
	print_targets(targets);
	if (print_json(st, skip, ws, wskip, targets) < 0) {
		fprintf(stderr, "sysgate-bench: cannot build the JSON line: out of memory\n");
		return -1;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "sysgate-bench: writing output: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static void env_free(struct bench_env *e)
{
	if (e->stage)
		remove_tree(e->stage);
	free(e->stage);
	for (int l = 0; l < LANG_COUNT; l++)
		free(e->worker[l]);
	strv_free(e->orig_env);
	free(e->audit);
	free(e->strace);
	free(e->tar);
	free(e->sysgate);
	free(e->loop);
	free(e->loop_dir);
	free(e->dir);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	int r = parse_args(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : 2;

	int ret = 1;
	struct bench_env e = { 0 };
	char *sg_args[C_COUNT] = { NULL };
	char **wall_argv[W_COUNT] = { NULL };
	bool skip[C_COUNT] = { false }, wskip[W_COUNT] = { false };
	double *samples = calloc((size_t)(C_COUNT * o.reps), sizeof(*samples));
	double *wall_samples = calloc((size_t)(W_COUNT * o.reps), sizeof(*wall_samples));
	if (!samples || !wall_samples) {
		fprintf(stderr, "sysgate-bench: out of memory\n");
		goto out;
	}
	if (env_setup(&o, &e) < 0 || case_commands(&e, skip, sg_args) < 0 ||
	    (!o.no_workload && workload_setup(&o, &e) < 0) ||
	    wall_commands(&o, &e, wskip, wall_argv) < 0)
		goto out;
	print_context(&o, &e);
	if (measure(&o, &e, sg_args, skip, wall_argv, wskip, samples, wall_samples) < 0 ||
	    report(&o, skip, wskip, samples, wall_samples) < 0)
		goto out;
	ret = 0;

out:
	for (int c = 0; c < C_COUNT; c++)
		free(sg_args[c]);
	for (int c = 0; c < W_COUNT; c++)
		strv_free(wall_argv[c]);
	env_free(&e);
	free(wall_samples);
	free(samples);
	return ret;
}
