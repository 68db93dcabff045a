/* The router's handlers of what a worker sends: its handshake, its
 * answers, its memory requests and its records. Everything in them is
 * untrusted: decoded and validated (protocol.h), and acted on only for
 * notifications that worker holds. Runs on the router thread. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notification.h"
#include "procs.h"
#include "proxy.h"
#include "registry.h"
#include "router_impl.h"

static void send_welcome(struct router *rt, struct worker *w, const char *refusal)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Welcome welcome;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_WELCOME);
	sysgate__v1__welcome__init(&welcome);
	env.welcome = &welcome;
	char reason[PROTO_MAX_TEXT];
	snprintf(reason, sizeof(reason), "%s", refusal ? refusal : "");
	welcome.accepted = !refusal;
	welcome.reason = reason;
	welcome.sandbox = rt->sandbox;
	welcome.max_inflight = WORKER_HELD_MAX;
	welcome.max_mem_request = PROTO_MAX_MEM;
	welcome.max_inject = PROTO_MAX_INJECT;
	welcome.fast_channel = w->fast;
	struct sg_err err;
	if (worker_send(w, &env, &err) < 0)
		log_verbose("worker '%s': Welcome: %s", w->spec, err.msg);
}

void router_send_goodbye(struct worker *w, const char *reason)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Goodbye bye;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_GOODBYE);
	sysgate__v1__goodbye__init(&bye);
	env.goodbye = &bye;
	char text[128];
	snprintf(text, sizeof(text), "%s", reason);
	bye.reason = text;
	struct sg_err err;
	(void)worker_send(w, &env, &err);
}

static bool token_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	volatile uint8_t diff = 0;
	for (size_t i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static void refuse(struct router *rt, struct worker *w, const char *why)
{
	send_welcome(rt, w, why);
	router_worker_failed(rt, w, "handshake", "%s", why);
}

static void on_hello(struct router *rt, struct worker *w, const Sysgate__V1__Hello *h)
{
	if (w->state != WORKER_STARTING) {
		router_worker_failed(rt, w, "violation", "sent a second Hello");
		return;
	}
	if (h->protocol_version != SYSGATE_PROTOCOL_VERSION) {
		char why[128];
		snprintf(why, sizeof(why), "speaks protocol version %u, sysgate speaks %u",
			 h->protocol_version, SYSGATE_PROTOCOL_VERSION);
		refuse(rt, w, why);
		return;
	}
	if (h->token.len != PROTO_TOKEN_SIZE ||
	    !token_equal(h->token.data, w->token, PROTO_TOKEN_SIZE)) {
		refuse(rt, w, "handshake with a wrong token");
		return;
	}
	struct registration *regs;
	size_t n;
	struct sg_err err;
	if (registry_resolve(h, rt->deny, &regs, &n, &err) < 0) {
		refuse(rt, w, err.msg);
		return;
	}
	/* Replicas share one set of chain hops: they must agree. */
	const struct worker *sibling = NULL;
	for (unsigned i = 0; i < w->first->n_replicas && !sibling; i++) {
		const struct worker *o = &rt->workers[w->first->index + i];
		if (o != w && o->regs)
			sibling = o;
	}
	if (w->generation == 0 && sibling &&
	    !registry_equal(sibling->regs, sibling->n_regs, regs, n)) {
		free(regs);
		refuse(rt, w, "registered differently from its other replicas");
		return;
	}
	if (w->generation == 0) {
		w->regs = regs;
		w->n_regs = n;
		if (h->worker_name && *h->worker_name)
			snprintf(w->name, sizeof(w->name), "%s", h->worker_name);
	} else {
		bool same = registry_equal(w->regs, w->n_regs, regs, n);
		free(regs);
		if (!same) {
			refuse(rt, w,
			       "registered differently after a restart (the filter is "
			       "fixed when the sandbox starts)");
			return;
		}
	}
	w->fast = h->fast_channel && w->shm;
	send_welcome(rt, w, NULL);
	w->state = WORKER_READY;
	lane_open(&w->lane, w->fast);
	log_verbose("worker '%s' (%s): ready, %zu registrations, over %s", w->spec, w->name,
		    w->n_regs, w->fast ? "the fast channel" : "nng");
	router_audit_worker(rt, w->generation ? "worker_restarted" : "worker_ready", w,
			    json_pack("{s:i}", "registrations", (int)w->n_regs));
}

static void send_injected(struct worker *w, const struct pending *p, uint64_t cookie, int fd)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Injected inj;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_INJECTED);
	sysgate__v1__injected__init(&inj);
	env.injected = &inj;
	inj.seq = p->seq;
	inj.pid = p->req.pid;
	inj.fd = fd;
	inj.cookie = cookie;
	struct sg_err err;
	if (worker_send(w, &env, &err) < 0)
		log_verbose("worker '%s': Injected: %s", w->spec, err.msg);
}

/* Is thread tid's process one of the sandbox's: a descendant of the
 * supervisor outside every worker's subtree, never the supervisor, init or
 * a worker? The trapped task always is (it carries the sandbox's filter);
 * this is the guard rail in case it is gone and its pid reused. The kill
 * itself goes to that one process through a pidfd, re-validated against
 * the pending notification (answer.c), never to a group. */
static bool in_sandbox(struct router *rt, pid_t tid)
{
	pid_t tgid = procs_tgid(tid), self = getpid();
	pid_t helpers[WORKER_MAX];
	size_t n = router_own_pids(rt, helpers);
	struct proc_list l;
	if (tgid <= 0 || procs_scan(self, helpers, n, &l) < 0)
		return false;
	bool ok = procs_may_signal(tgid, self, helpers, n, &l);
	proc_list_free(&l);
	return ok;
}

/* The pending notification seq of w, taking it (take) from its list. One
 * the receiver handed over may still sit in the submission ring (its
 * answer can come over nng, overtaking the hand-over): adopt those first. */
static struct pending *find_held(struct router *rt, struct worker *w, uint64_t seq, bool take)
{
	struct pending *p = router_find_inflight(w, seq, take);
	if (!p && pending_submitted(rt)) {
		router_take_submissions(rt);
		p = router_find_inflight(w, seq, take);
	}
	return p;
}

/* Did seq time out while its worker was alive (a late answer to ignore)? */
static bool expired_seq(struct worker *w, uint64_t seq, bool take)
{
	for (size_t i = 0; i < w->n_expired; i++) {
		if (w->expired[i] != seq)
			continue;
		if (take) {
			if (w->expired_lane[i])
				w->lane.n_pending--;
			w->n_expired--;
			w->expired[i] = w->expired[w->n_expired];
			w->expired_lane[i] = w->expired_lane[w->n_expired];
		}
		return true;
	}
	return false;
}

/* inject_bytes for p: true if that answered it (a tracked fd, the worker
 * told its number), else the action that answers it in *a (the fd
 * installed, or the errno why not: never a continue). */
static bool inject(struct router *rt, struct worker *w, struct pending *p,
		   const Sysgate__V1__Action__InjectBytes *ib, struct action *a)
{
	bool writable = ib->flags & SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__WRITABLE;
	bool cloexec = !(ib->flags & SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__NO_CLOEXEC);
	bool track = ib->flags & SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__TRACK;
	int fd = track ? answer_inject_only(rt->listener, &p->req, ib->data.data, ib->data.len,
					    writable, cloexec)
		       : answer_inject(rt->listener, &p->req, ib->data.data, ib->data.len, writable,
				       cloexec);
	if (fd >= 0 && track) {
		/* The worker hears the number first; the syscall then
		 * returns it (ADDFD without SEND left it pending). */
		send_injected(w, p, ib->cookie, fd);
		*a = (struct action){ .kind = ACTION_RETURN, .value = fd };
		router_finish(rt, p, a, w->name, NULL);
		return true;
	}
	if (fd >= 0) {
		*a = (struct action){ .kind = ACTION_INJECT, .value = fd };
	} else {
		log_verbose("worker '%s': inject_bytes for %s: %s", w->spec,
			    router_syscall_label(p->req.data.nr), strerror(-fd));
		*a = (struct action){ .kind = ACTION_ERRNO, .value = -fd };
	}
	return false;
}

static void on_action(struct router *rt, struct worker *w, const Sysgate__V1__Action *m)
{
	struct pending *p = find_held(rt, w, m->seq, true);
	if (p && p->via_lane)
		w->lane.n_pending--;
	if (!p && expired_seq(w, m->seq, true)) {
		log_verbose("worker '%s': late answer for %llu, which timed out: ignored", w->spec,
			    (unsigned long long)m->seq);
		return;
	}
	if (!p) {
		router_worker_failed(rt, w, "violation",
				     "answered notification %llu, which it does not hold",
				     (unsigned long long)m->seq);
		return;
	}
	struct action a;
	switch (notification_action(m, p->chain->hops[p->hop].observe_only, &a)) {
	case NOTIFICATION_ACTION:
		break;
	case NOTIFICATION_REFUSED:
		log_error(
			"worker '%s' answered %s with %s: only continue, errno or kill may answer "
			"it",
			w->spec, router_syscall_label(p->req.data.nr),
			m->kind_case == SYSGATE__V1__ACTION__KIND_DO_RETURN ? "return"
									    : "inject_bytes");
		router_apply_policy(rt, p,
				    "answered an observe-or-deny syscall with another action");
		return;
	case NOTIFICATION_FAILED: {
		const char *reason = m->do_fail->reason ? m->do_fail->reason : "";
		log_error("worker '%s': handler for %s failed: %s", w->spec,
			  router_syscall_label(p->req.data.nr), reason);
		router_audit_worker(rt, "handler_failed", w,
				    json_pack("{s:s, s:s}", "syscall",
					      router_syscall_label(p->req.data.nr), "reason",
					      reason));
		router_apply_policy(rt, p, "reported a handler failure");
		return;
	}
	case NOTIFICATION_INJECT:
		if (inject(rt, w, p, m->do_inject_bytes, &a))
			return;
		break;
	case NOTIFICATION_UNKNOWN:
		router_apply_policy(rt, p,
				    "answered with an action this supervisor does not serve");
		return;
	}
	if (a.kind == ACTION_CONTINUE) {
		p->hop++;
		router_route(rt, p);
		return;
	}
	if (a.kind == ACTION_KILL && !in_sandbox(rt, (pid_t)p->req.pid)) {
		/* Never signal outside the sandbox: resolve it, fail closed. */
		log_error("worker '%s': kill of pid %u refused: not a sandbox process", w->spec,
			  p->req.pid);
		a = (struct action){ .kind = ACTION_ERRNO, .value = EPERM };
	}
	if (!action_valid(&a)) {
		router_apply_policy(rt, p, "answered with an invalid action");
		return;
	}
	router_finish(rt, p, &a, w->name, NULL);
}

static void on_mem_request(struct router *rt, struct worker *w, const Sysgate__V1__MemRequest *m)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__MemReply reply;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY);
	env.mem_reply = &reply;
	struct pending *p = find_held(rt, w, m->seq, false);
	if (!p) {
		/* Not held (any more): an error, never an access. */
		sysgate__v1__mem_reply__init(&reply);
		reply.request_id = m->request_id;
		reply.error = ESRCH;
	} else {
		struct childmem mem = { .listener = rt->listener,
					.id = p->req.id,
					.pid = (pid_t)p->req.pid };
		proxy_serve(&mem, m, rt->proxy_buf, &reply);
	}
	struct sg_err err;
	if (worker_send(w, &env, &err) < 0)
		router_worker_failed(rt, w, "link", "memory reply: %s", err.msg);
}

/* What one worker's records may hold in the audit queue (on_record). */
#define RECORDS_QUEUED_MAX 1024u
#define RECORDS_COST_MAX (16u << 20)
_Static_assert(WORKER_MAX <= AUDIT_SLOTS, "a charge slot per worker");

/* A handler's result for whoever runs the sandbox: into the audit log. */
static void on_record(struct router *rt, struct worker *w, const Sysgate__V1__Record *m)
{
	json_error_t jerr;
	json_t *data = json_loadb((const char *)m->json.data, m->json.len,
				  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!data) {
		router_worker_failed(rt, w, "violation", "sent a Record that is not JSON: %s",
				     jerr.text);
		return;
	}
	if (!rt->audit) {
		json_decref(data);
		log_verbose("worker '%s': a record, dropped (no --audit)", w->spec);
		return;
	}
	/* Its records still waiting for the audit writer are bounded, in
	 * number and in memory (a parsed "[[],[],...]" costs ~50 times its
	 * bytes): past that it floods, a violation. One record always fits. */
	size_t cost = audit_json_cost(data), count, held;
	audit_charged(rt->audit, w->index, &count, &held);
	if (count && (count >= RECORDS_QUEUED_MAX || held + cost > RECORDS_COST_MAX)) {
		json_decref(data);
		router_worker_failed(rt, w, "flood",
				     "sent records faster than the audit log takes them (%zu "
				     "waiting, %zu KiB, at most %u and %u KiB)",
				     count, held >> 10, RECORDS_QUEUED_MAX, RECORDS_COST_MAX >> 10);
		return;
	}
	json_t *fields = json_pack("{s:o}", "data", data);
	if (fields) {
		json_object_set_new(fields, "worker", audit_json_str(w->name));
		json_object_set_new(fields, "command", audit_json_str(w->spec));
		json_object_set_new(fields, "worker_pid", json_integer(w->pid));
	}
	audit_event_charged(rt->audit, "record", fields, w->index);
}

void router_on_message(struct router *rt, struct worker *w, nng_msg *msg)
{
	nng_pipe pipe = nng_msg_get_pipe(msg);
	uint32_t id = (uint32_t)nng_pipe_id(pipe);
	if (w->state == WORKER_STARTING && w->pipe_id == 0) {
		/* The first peer to speak must be the process we started. */
		uint64_t peer = 0;
		if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer) != 0)
			return; /* gone already: an earlier instance's leftovers */
		/* It, or a process it started (its session: worker_link.c). */
		if (peer == 0 || peer > INT_MAX ||
		    (peer != (uint64_t)w->pid && getsid((pid_t)peer) != w->pid)) {
			log_error("worker '%s': refused a connection from pid %llu", w->spec,
				  (unsigned long long)peer);
			nng_pipe_close(pipe);
			return;
		}
		w->pipe_id = id;
	} else if (id != w->pipe_id || (w->state != WORKER_STARTING && w->state != WORKER_READY)) {
		return; /* an old connection's leftovers */
	}
	router_on_bytes(rt, w, nng_msg_body(msg), nng_msg_len(msg), false);
}

/* One message from w, over nng or (fast) its fast channel. */
void router_on_bytes(struct router *rt, struct worker *w, const void *buf, size_t len, bool fast)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	struct sg_err err;
	if (proto_decode(buf, len, &m, &err) < 0 || proto_validate_from_worker(m, &err) < 0) {
		router_worker_failed(rt, w, "violation", "sent a malformed message: %s", err.msg);
		return;
	}
	w->last_heard_ns = now_ns();
	bool per_notification = m->body_case == SYSGATE__V1__ENVELOPE__BODY_ACTION ||
				m->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST ||
				m->body_case == SYSGATE__V1__ENVELOPE__BODY_RECORD;
	if (per_notification && w->state != WORKER_READY) {
		router_worker_failed(rt, w, "violation", "spoke out of turn, before its handshake");
		return;
	}
	if (fast && !per_notification) {
		router_worker_failed(rt, w, "violation",
				     "sent a lifecycle message on its fast channel");
		return;
	}
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_HELLO:
		on_hello(rt, w, m->hello);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ACTION:
		on_action(rt, w, m->action);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST:
		on_mem_request(rt, w, m->mem_request);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_RECORD:
		on_record(rt, w, m->record);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		router_worker_failed(rt, w, "exit", "said goodbye (%s)",
				     m->goodbye->reason ? m->goodbye->reason : "");
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		router_worker_failed(rt, w, "error", "reported an error: %s",
				     m->error->message ? m->error->message : "");
		break;
	default:
		router_worker_failed(rt, w, "violation",
				     "sent a message only the supervisor sends");
		break;
	}
}
