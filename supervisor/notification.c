#include "notification.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "syscalls.h"

void notification_preread(struct audit_syscall *rec, const struct seccomp_notif *req,
			  const struct childmem *mem)
{
	unsigned idx[2];
	rec->n_paths = syscalls_path_args(req->data.nr, idx);
	for (unsigned i = 0; i < rec->n_paths; i++) {
		rec->path_arg[i] = idx[i];
		rec->path[i] = NULL;
		char buf[4096];
		ssize_t n = childmem_read_cstr(mem, req->data.args[idx[i]], buf, sizeof(buf));
		if (n >= 0 && !(rec->path[i] = strdup(buf)))
			n = -ENOMEM;
		rec->path_errno[i] = n < 0 ? (int)-n : 0;
	}
}

void notification_snapshot(struct snapshot_msg *m, const struct seccomp_notif *req, uint64_t seq,
			   const struct audit_syscall *paths, char *sandbox, uint32_t reg)
{
	Sysgate__V1__Snapshot *sn = &m->s;
	proto_envelope_init(&m->env, SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT);
	sysgate__v1__snapshot__init(sn);
	m->env.snapshot = sn;
	memcpy(m->args, req->data.args, sizeof(m->args));
	sn->seq = seq;
	sn->notif_id = req->id;
	sn->pid = req->pid;
	sn->flags = req->flags;
	sn->syscall_nr = req->data.nr;
	sn->arch = req->data.arch;
	sn->instruction_pointer = req->data.instruction_pointer;
	sn->n_args = PROTO_ARGS;
	sn->args = m->args;
	sn->sandbox = sandbox;
	sn->registration = reg;
	for (unsigned i = 0; i < paths->n_paths; i++) {
		sysgate__v1__path_arg__init(&m->pa[i]);
		m->pa[i].arg = paths->path_arg[i];
		if (paths->path[i]) {
			m->pa[i].path.data = (uint8_t *)paths->path[i];
			m->pa[i].path.len = strlen(paths->path[i]);
		} else {
			m->pa[i].unreadable = true;
		}
		m->pap[i] = &m->pa[i];
	}
	sn->n_paths = paths->n_paths;
	sn->paths = m->pap;
}

enum notification_answer notification_action(const Sysgate__V1__Action *m, bool observe_only,
					     struct action *out)
{
	/* A faked pid or exec would lie about what runs in the sandbox. */
	if (observe_only && (m->kind_case == SYSGATE__V1__ACTION__KIND_DO_RETURN ||
			     m->kind_case == SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES))
		return NOTIFICATION_REFUSED;
	switch (m->kind_case) {
	case SYSGATE__V1__ACTION__KIND_DO_CONTINUE:
		*out = (struct action){ .kind = ACTION_CONTINUE };
		return NOTIFICATION_ACTION;
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		*out = (struct action){ .kind = ACTION_ERRNO, .value = m->do_errno->errnum };
		return NOTIFICATION_ACTION;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		*out = (struct action){ .kind = ACTION_RETURN, .value = m->do_return->value };
		return NOTIFICATION_ACTION;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		*out = (struct action){ .kind = ACTION_KILL, .value = m->do_kill->signal };
		return NOTIFICATION_ACTION;
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES:
		return NOTIFICATION_INJECT;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL:
		return NOTIFICATION_FAILED;
	default:
		/* Never a silent continue. */
		return NOTIFICATION_UNKNOWN;
	}
}

void notification_record(struct audit *audit, struct audit_syscall *rec,
			 const struct seccomp_notif *req, uint64_t t0, const struct action *a,
			 const char *decider, const char *exception)
{
	if (!audit) {
		audit_syscall_release(rec);
		return;
	}
	rec->pid = (pid_t)req->pid;
	rec->nr = req->data.nr;
	memcpy(rec->args, req->data.args, sizeof(rec->args));
	rec->decider = decider;
	rec->exception = exception;
	rec->action = *a;
	rec->latency_ns = now_ns() - t0;
	audit_syscall(audit, rec);
}
