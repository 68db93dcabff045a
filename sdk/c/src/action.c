/* The action setters (sysgate.h) and the Action message a handler's answer
 * becomes. A setter records what the handler asked for; whether that is
 * exactly one valid action is decided once the handler returned. */
#include "sdk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

_Static_assert(SG_INJECT_WRITABLE == SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__WRITABLE,
	       "SG_INJECT_WRITABLE");
_Static_assert(SG_INJECT_NO_CLOEXEC == SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__NO_CLOEXEC,
	       "SG_INJECT_NO_CLOEXEC");
_Static_assert(SG_INJECT_TRACK == SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__TRACK,
	       "SG_INJECT_TRACK");

void action_init(sg_action *a, uint32_t max_inject)
{
	*a = (sg_action){ .max_inject = max_inject ? max_inject : PROTO_MAX_INJECT };
}

void action_release(sg_action *a)
{
	free(a->data);
	a->data = NULL;
	a->len = 0;
}

/* Records one setter call of kind; invalid says why its argument is not
 * acceptable (NULL: it is). */
static void action_set(sg_action *a, enum sdk_action_kind kind, const char *invalid)
{
	action_release(a);
	a->kind = kind;
	a->invalid = invalid;
	a->n_set++;
}

void sg_continue(sg_action *a)
{
	if (a)
		action_set(a, SDK_ACTION_CONTINUE, NULL);
}

void sg_errno(sg_action *a, int err)
{
	if (!a)
		return;
	action_set(a, SDK_ACTION_ERRNO,
		   err >= 1 && err <= PROTO_MAX_ERRNO ? NULL : "errno outside 1..4095");
	a->errnum = err;
}

void sg_return(sg_action *a, int64_t v)
{
	if (!a)
		return;
	action_set(a, SDK_ACTION_RETURN, NULL);
	a->value = v;
}

void sg_kill(sg_action *a, int sig)
{
	if (!a)
		return;
	action_set(a, SDK_ACTION_KILL,
		   sig >= 1 && sig <= PROTO_MAX_SIGNAL ? NULL : "signal outside 1..64");
	a->signal = sig;
}

/* sg_inject_bytes (track false: flags must not hold SG_INJECT_TRACK) and
 * sg_inject_tracked. */
static int action_inject(sg_action *a, const void *data, size_t len, unsigned flags, bool track,
			 uint64_t cookie)
{
	unsigned allowed =
		SG_INJECT_WRITABLE | SG_INJECT_NO_CLOEXEC | (track ? SG_INJECT_TRACK : 0);
	if (!a || (!data && len))
		return -EINVAL;
	if (flags & ~allowed)
		return -EINVAL;
	if (len > PROTO_MAX_INJECT || len > a->max_inject)
		return -E2BIG;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	action_set(a, SDK_ACTION_INJECT, NULL);
	a->data = copy;
	a->len = len;
	a->flags = track ? flags | SG_INJECT_TRACK : flags;
	a->cookie = track ? cookie : 0;
	return 0;
}

int sg_inject_bytes(sg_action *a, const void *data, size_t len, unsigned flags)
{
	return action_inject(a, data, len, flags, false, 0);
}

int sg_inject_tracked(sg_action *a, const void *data, size_t len, unsigned flags, uint64_t cookie)
{
	return action_inject(a, data, len, flags, true, cookie);
}

/* Why a handler's answer is no action the supervisor may apply, or NULL. */
static const char *action_failure(const sg_action *a, int handler_result, char *buf, size_t size)
{
	if (handler_result == SDK_ACTION_CANCELLED)
		return "cancelled its deferred answer";
	if (handler_result != 0) {
		snprintf(buf, size, "returned %d", handler_result);
		return buf;
	}
	if (a->n_set == 0)
		return "set no action";
	if (a->n_set > 1) {
		snprintf(buf, size, "set %u actions, not one", a->n_set);
		return buf;
	}
	return a->invalid;
}

void action_to_msg(const sg_action *a, int handler_result, uint64_t seq, const char *syscall,
		   struct action_msg *out)
{
	proto_envelope_init(&out->env, SYSGATE__V1__ENVELOPE__BODY_ACTION);
	sysgate__v1__action__init(&out->action);
	out->env.action = &out->action;
	Sysgate__V1__Action *act = &out->action;
	act->seq = seq;

	char why[64];
	const char *failure = action_failure(a, handler_result, why, sizeof(why));
	if (failure) {
		sysgate__v1__action__failed__init(&out->do_fail);
		snprintf(out->reason, sizeof(out->reason), "handler for %s %s (seq %llu)", syscall,
			 failure, (unsigned long long)seq);
		out->do_fail.reason = out->reason;
		act->kind_case = SYSGATE__V1__ACTION__KIND_DO_FAIL;
		act->do_fail = &out->do_fail;
		return;
	}
	switch (a->kind) {
	case SDK_ACTION_CONTINUE:
		sysgate__v1__action__continue__init(&out->do_continue);
		act->kind_case = SYSGATE__V1__ACTION__KIND_DO_CONTINUE;
		act->do_continue = &out->do_continue;
		break;
	case SDK_ACTION_ERRNO:
		sysgate__v1__action__errno__init(&out->do_errno);
		out->do_errno.errnum = a->errnum;
		act->kind_case = SYSGATE__V1__ACTION__KIND_DO_ERRNO;
		act->do_errno = &out->do_errno;
		break;
	case SDK_ACTION_RETURN:
		sysgate__v1__action__return__init(&out->do_return);
		out->do_return.value = a->value;
		act->kind_case = SYSGATE__V1__ACTION__KIND_DO_RETURN;
		act->do_return = &out->do_return;
		break;
	case SDK_ACTION_KILL:
		sysgate__v1__action__kill__init(&out->do_kill);
		out->do_kill.signal = a->signal;
		act->kind_case = SYSGATE__V1__ACTION__KIND_DO_KILL;
		act->do_kill = &out->do_kill;
		break;
	case SDK_ACTION_INJECT:
		sysgate__v1__action__inject_bytes__init(&out->do_inject);
		out->do_inject.data = (ProtobufCBinaryData){ .len = a->len, .data = a->data };
		out->do_inject.flags = a->flags;
		out->do_inject.cookie = a->cookie;
		act->kind_case = SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES;
		act->do_inject_bytes = &out->do_inject;
		break;
	case SDK_ACTION_NONE:
	default:
		/* n_set == 1 means a kind was recorded. */
		break;
	}
}
