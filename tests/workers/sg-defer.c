/* sg-defer: a test worker (C SDK) that answers later. Every notification of
 * its syscall is deferred (sg_defer) and completed with continue by a timer
 * thread DELAY ms after it arrived, or never.
 *
 *   sg-defer [--syscall NAME] [--delay-ms N | --never] [--policy POLICY]
 *            [--threads N]
 *
 * --syscall    the syscall to answer (default getppid)
 * --delay-ms   how long each answer waits (default 500)
 * --never      never answer: --handler-timeout decides
 * --never-first never answer the first notification, the others as usual
 * --policy     the registration's exception policy: KILL (default),
 *              DENY_EPERM, DENY_EIO or CONTINUE
 * --threads    SYSGATE_WORKER_THREADS (default 1: one handler thread, so
 *              answers that overlap in time prove the deferral) */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sysgate.h>

#define PROG "sg-defer"

enum { EXIT_USAGE = 2 };

/* One answer waiting for its time. */
struct pending {
	sg_deferred *d;
	struct timespec due; /* CLOCK_MONOTONIC */
	struct pending *next;
};

/* The answers not given yet, oldest (hence due first) first. */
struct timer {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC */
	struct pending *head, **tail;
	bool stop;
	bool never;
	bool never_first;
	sg_deferred *kept; /* --never-first: the one never answered */
	long delay_ms;
};

static struct timespec due_after(long ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool is_due(const struct timespec *due)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > due->tv_sec ||
	       (now.tv_sec == due->tv_sec && now.tv_nsec >= due->tv_nsec);
}

static int on_call(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)out;
	struct timer *t = ud;
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return 1;
	p->d = sg_defer(ctx);
	if (!p->d) {
		fprintf(stderr, PROG ": sg_defer: %s\n", strerror(errno));
		free(p);
		return 1;
	}
	p->due = due_after(t->delay_ms);
	pthread_mutex_lock(&t->lock);
	if (t->never_first) {
		t->never_first = false;
		t->kept = p->d;
		pthread_mutex_unlock(&t->lock);
		free(p);
		return 0;
	}
	*t->tail = p;
	t->tail = &p->next;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* Completes each answer when it is due (unless --never), until stopped. */
static void *timer_main(void *arg)
{
	struct timer *t = arg;
	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		struct pending *p = t->head;
		if (!p || t->never) {
			pthread_cond_wait(&t->cond, &t->lock);
			continue;
		}
		if (!is_due(&p->due)) {
			pthread_cond_timedwait(&t->cond, &t->lock, &p->due);
			continue;
		}
		t->head = p->next;
		if (!t->head)
			t->tail = &t->head;
		pthread_mutex_unlock(&t->lock);
		sg_continue(sg_deferred_action(p->d));
		int r = sg_complete(p->d);
		if (r < 0)
			fprintf(stderr, PROG ": sg_complete: %s\n", strerror(-r));
		free(p);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static int policy_parse(const char *s, enum sg_exception *out)
{
	static const struct {
		const char *name;
		enum sg_exception policy;
	} policies[] = {
		{ "KILL", SG_EXC_KILL },
		{ "DENY_EPERM", SG_EXC_DENY_EPERM },
		{ "DENY_EIO", SG_EXC_DENY_EIO },
		{ "CONTINUE", SG_EXC_CONTINUE },
	};
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		if (!strcmp(s, policies[i].name)) {
			*out = policies[i].policy;
			return 0;
		}
	}
	return -EINVAL;
}

static long number_parse(const char *s, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || end == s || *end || v < 0 || v > max ? -1 : v;
}

static int usage(void)
{
	fprintf(stderr, "usage: " PROG " [--syscall NAME] [--delay-ms N | --never | --never-first] "
			"[--policy KILL|DENY_EPERM|DENY_EIO|CONTINUE] [--threads N]\n");
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "syscall", required_argument, NULL, 's' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "never", no_argument, NULL, 'n' },
		{ "never-first", no_argument, NULL, 'f' },
		{ "policy", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct timer t = { .delay_ms = 500 };
	const char *syscall = "getppid", *threads = "1";
	enum sg_exception policy = SG_EXC_KILL;
	int c;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 's':
			syscall = optarg;
			break;
		case 'd':
			t.delay_ms = number_parse(optarg, 3600000);
			if (t.delay_ms < 0)
				return usage();
			break;
		case 'n':
			t.never = true;
			break;
		case 'f':
			t.never_first = true;
			break;
		case 'p':
			if (policy_parse(optarg, &policy) < 0)
				return usage();
			break;
		case 't':
			threads = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind != argc)
		return usage();
	setenv("SYSGATE_WORKER_THREADS", threads, 1);

	pthread_mutex_init(&t.lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t.cond, &attr);
	pthread_condattr_destroy(&attr);
	t.tail = &t.head;
	pthread_t timer;
	if (pthread_create(&timer, NULL, timer_main, &t) != 0) {
		fprintf(stderr, PROG ": cannot start the timer thread\n");
		return 1;
	}

	sg_worker *w = sg_worker_new(PROG);
	int r = w ? sg_worker_on(w, syscall, on_call, &t, policy) : -ENOMEM;
	if (r == 0)
		r = sg_worker_run(w);
	else
		fprintf(stderr, PROG ": %s: %s\n", syscall, strerror(-r));

	pthread_mutex_lock(&t.lock);
	t.stop = true;
	pthread_cond_signal(&t.cond);
	pthread_mutex_unlock(&t.lock);
	pthread_join(timer, NULL);
	if (t.kept)
		sg_deferred_cancel(t.kept); /* the run ended: -ENOTCONN, freed */
	/* Answers still pending when the run ended: dropped, and freed. */
	for (struct pending *p = t.head, *next; p; p = next) {
		next = p->next;
		sg_deferred_cancel(p->d);
		free(p);
	}
	sg_worker_free(w);
	pthread_cond_destroy(&t.cond);
	pthread_mutex_destroy(&t.lock);
	return r == 0 ? 0 : 1;
}
