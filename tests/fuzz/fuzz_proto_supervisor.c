/* What the supervisor sends a worker, as the C SDK receives it: every
 * message through proto_decode and proto_validate_from_supervisor (link.c
 * link_recv, pump.c pump_one), then the SDK's own handling on a real
 * sg_worker with three registrations: the Welcome's limits, and every
 * later message through transport_handle, the one handler of both
 * transports: each Snapshot admitted against max_inflight (run_admit),
 * queued, and run by a handler (handler_dispatch: ctx_begin copies the
 * pre-read paths, the handler reads every accessor, the Action is built
 * and sent), MemReplys routed to their waiter (run_mem_reply). A worker must never trust
 * the supervisor's memory more than its own checks: the supervisor may be
 * another version, or compromised by the program it confines.
 *
 * The Welcome's checks are worker.c's worker_welcome (static there), kept
 * step for step.
 *
 * Input: frames (fuzz.h fuzz_frame), each an encoded Envelope; an empty
 * frame lets a handler thread run the oldest queued Snapshot. The first
 * frame is the answer to our Hello (corpus/proto_supervisor/). */
#include <stdbool.h>

#include "proto_check.h"
#include "sdk.h"

/* The Snapshot being dispatched, for the handler to compare with. */
static const Sysgate__V1__Snapshot *current;

static void check_paths(const sg_ctx *c, const Sysgate__V1__Snapshot *s)
{
	bool has[PROTO_ARGS] = { false };
	for (size_t i = 0; i < s->n_paths; i++) {
		const Sysgate__V1__PathArg *p = s->paths[i];
		FUZZ_CHECK(p->arg < PROTO_ARGS && !has[p->arg]);
		has[p->arg] = true;
		const char *got = sg_ctx_path(c, p->arg);
		if (p->unreadable) {
			FUZZ_CHECK(got == NULL);
			continue;
		}
		FUZZ_CHECK(got != NULL && strlen(got) == p->path.len);
		FUZZ_CHECK(p->path.len == 0 || !memcmp(got, p->path.data, p->path.len));
	}
	for (unsigned i = 0; i < PROTO_ARGS + 2; i++)
		if (i >= PROTO_ARGS || !has[i])
			FUZZ_CHECK(sg_ctx_path(c, i) == NULL);
}

static int handler(const sg_ctx *c, sg_action *out, void *ud)
{
	(void)ud;
	const Sysgate__V1__Snapshot *s = current;
	FUZZ_CHECK(s != NULL);
	struct sg_ctx_info info;
	FUZZ_CHECK(sg_ctx_info(c, &info) == 0);
	FUZZ_CHECK(sg_ctx_id(c) == s->notif_id && sg_ctx_ip(c) == s->instruction_pointer);
	FUZZ_CHECK(sg_ctx_pid(c) == (pid_t)s->pid && sg_ctx_arch(c) == s->arch);
	FUZZ_CHECK(sg_ctx_flags(c) == s->flags && sg_ctx_syscall(c) == (long)s->syscall_nr);
	for (unsigned i = 0; i < PROTO_ARGS; i++)
		FUZZ_CHECK(sg_ctx_arg(c, i) == s->args[i] && info.args[i] == s->args[i]);
	FUZZ_CHECK(sg_ctx_arg(c, PROTO_ARGS) == 0);
	check_paths(c, s);
	/* Each kind of answer, chosen by the supervisor's own seq. */
	switch (s->seq % 6) {
	case 0:
		sg_continue(out);
		return 0;
	case 1:
		sg_errno(out, (int)(s->args[0] & 0x1fff)); /* in range or not */
		return 0;
	case 2:
		sg_return(out, (int64_t)s->args[1]);
		return 0;
	case 3: {
		sg_deferred *d = sg_defer(c);
		FUZZ_CHECK(d != NULL);
		sg_kill(sg_deferred_action(d), (int)(s->args[2] & 0x7f));
		sg_complete(d);
		return 0;
	}
	case 4: {
		const char *p = sg_ctx_path(c, 1);
		if (sg_inject_bytes(out, p ? p : "", p ? strlen(p) : 0, 0) < 0)
			sg_continue(out);
		return 0;
	}
	default:
		return -1; /* the handler failed: the exception policy answers */
	}
}

static void run_one_queued(sg_worker *w, struct handler_slot *slot)
{
	int lane = 0;
	Sysgate__V1__Envelope *m _cleanup_envelope_ = run_next_snapshot(w, &lane, false);
	if (!m)
		return;
	current = m->snapshot;
	handler_dispatch(w, slot, m->snapshot, lane);
	current = NULL;
}

/* worker.c worker_welcome: 0, or the run ends. */
static int on_welcome(sg_worker *w, const Sysgate__V1__Envelope *m)
{
	if (m->body_case != SYSGATE__V1__ENVELOPE__BODY_WELCOME) {
		if (m->body_case == SYSGATE__V1__ENVELOPE__BODY_ERROR)
			proto_check_text(m->error->message, PROTO_MAX_TEXT);
		return -1;
	}
	const Sysgate__V1__Welcome *wel = m->welcome;
	proto_check_text(wel->reason, PROTO_MAX_TEXT);
	proto_check_text(wel->sandbox, PROTO_MAX_SANDBOX);
	if (!wel->accepted)
		return -1;
	/* What sizes the pool and bounds the SDK's memory calls. */
	FUZZ_CHECK(wel->max_inflight >= 1);
	FUZZ_CHECK(wel->max_mem_request <= PROTO_MAX_MEM && wel->max_inject <= PROTO_MAX_INJECT);
	w->max_inflight = wel->max_inflight;
	w->max_mem_request = wel->max_mem_request;
	w->max_inject = wel->max_inject;
	if (wel->fast_channel && !w->shm)
		return -1; /* a fast channel we did not offer */
	w->welcomed = true;
	return 0;
}

/* transport_handle, then what the link's receiver does with its result:
 * 0 to go on, 1 for the orderly end, else the run ends. */
static int on_message(sg_worker *w, Sysgate__V1__Envelope **m, struct sg_err *err)
{
	bool injected = (*m)->body_case == SYSGATE__V1__ENVELOPE__BODY_INJECTED;
	if (injected)
		FUZZ_CHECK((*m)->injected->fd >= 0 && (*m)->injected->seq != 0);
	int r = transport_handle(w, m, false, NULL, err);
	switch (r) {
	case TRANSPORT_SNAPSHOT:
		FUZZ_CHECK((*m)->snapshot->registration < w->n_regs);
		FUZZ_CHECK(w->outstanding <= w->max_inflight);
		return transport_queue(w, m, 0, err);
	case TRANSPORT_GOODBYE:
		return 1;
	default:
		FUZZ_CHECK(r <= 0);
		return r;
	}
}

static sg_worker *new_worker(void)
{
	/* Nothing from the environment: no link, no fast channel. */
	static const char *const env[] = { "SYSGATE_WORKER_URL", "SYSGATE_WORKER_TOKEN",
					   "SYSGATE_WORKER_NAME", "SYSGATE_WORKER_FAST",
					   "SYSGATE_WORKER_THREADS" };
	for (size_t i = 0; i < ARRAY_SIZE(env); i++)
		unsetenv(env[i]);
	sg_worker *w = sg_worker_new("fuzz");
	FUZZ_CHECK(w != NULL);
	static const char *const calls[] = { "openat", "renameat2", "read" };
	for (size_t i = 0; i < ARRAY_SIZE(calls); i++)
		FUZZ_CHECK(sg_worker_on(w, calls[i], handler, NULL, SG_EXC_DENY_EPERM) == 0);
	w->started = true;
	return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sg_worker *w = new_worker();
	struct handler_slot slot = { .worker = w };
	pthread_mutex_init(&slot.ctx_lock, NULL);
	ctx_init(&slot.ctx, w, &slot.ctx_lock);

	struct fuzz_in in = { data, size };
	const uint8_t *frame;
	size_t len;
	bool welcomed = false;
	while (!w->ended && fuzz_frame(&in, &frame, &len)) {
		if (len == 0) {
			if (welcomed)
				run_one_queued(w, &slot);
			continue;
		}
		Sysgate__V1__Envelope *m _cleanup_envelope_ =
			proto_check_receive(frame, len, proto_validate_from_supervisor);
		struct sg_err err = { "" };
		if (!m) {
			err_set(&err, EPROTO, "malformed");
			transport_end(w, -EPROTO, &err);
			break;
		}
		proto_check_roundtrip(m, proto_validate_from_supervisor);
		if (!welcomed) {
			if (on_welcome(w, m) < 0)
				break;
			welcomed = true;
			continue;
		}
		int r = on_message(w, &m, &err);
		if (r == 1)
			transport_end(w, 0, NULL);
		else if (r < 0)
			transport_end(w, r, &err);
	}
	/* Whatever was queued runs (its handler sees a run that ended, too). */
	while (welcomed && w->queue_len && !w->ended)
		run_one_queued(w, &slot);
	transport_end(w, 0, NULL);
	ctx_end(&slot.ctx);
	pthread_mutex_destroy(&slot.ctx_lock);
	sg_worker_free(w);
	return 0;
}
