/* What a worker sends the supervisor (over nng or a fast-channel record),
 * as the supervisor receives it (router.c on_bytes): proto_decode,
 * proto_validate_from_worker, then what the router does next with the
 * parts a worker chooses freely: a Hello's registrations go through
 * registry_resolve against the default deny list, a Record through jansson.
 *
 * Input: one encoded Envelope (corpus/proto_worker/). */
#include <jansson.h>

#include "filter.h"
#include "proto_check.h"
#include "registry.h"

static const bool *default_deny(void)
{
	static struct filter_spec spec;
	static bool ready;
	if (!ready) {
		filter_spec_default_deny(&spec);
		ready = true;
	}
	return spec.deny;
}

static void check_hello(const Sysgate__V1__Hello *h)
{
	proto_check_text(h->worker_name, PROTO_MAX_NAME);
	FUZZ_CHECK(h->token.len == PROTO_TOKEN_SIZE && h->token.data);
	FUZZ_CHECK(h->n_registrations <= PROTO_MAX_REGISTRATIONS);
	const bool *deny = default_deny();
	struct registration *regs = NULL;
	size_t n = 0;
	struct sg_err err = { "" };
	int r = registry_resolve(h, deny, &regs, &n, &err);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -ENOENT || r == -EPERM || r == -ENOMEM);
		FUZZ_CHECK(regs == NULL && n == 0 && err.msg[0]);
		return;
	}
	/* Every registration kept, each a real syscall off the deny list,
	 * each index once, exit always possible. */
	FUZZ_CHECK(n == h->n_registrations && regs != NULL);
	uint8_t seen[PROTO_MAX_REGISTRATIONS] = { 0 };
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(regs[i].nr >= 0 && regs[i].nr < SYSCALLS_MAX);
		FUZZ_CHECK(syscalls_name(regs[i].nr) != NULL);
		FUZZ_CHECK(!deny[regs[i].nr]);
		FUZZ_CHECK(strcmp(syscalls_name(regs[i].nr), "exit") != 0 &&
			   strcmp(syscalls_name(regs[i].nr), "exit_group") != 0);
		FUZZ_CHECK(regs[i].index < n && !seen[regs[i].index]++);
		FUZZ_CHECK(regs[i].policy == h->registrations[regs[i].index]->on_exception);
	}
	FUZZ_CHECK(registry_equal(regs, n, regs, n));
	free(regs);
}

static void check_action(const Sysgate__V1__Action *a)
{
	FUZZ_CHECK(a->seq != 0);
	switch (a->kind_case) {
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		FUZZ_CHECK(a->do_errno->errnum >= 1 && a->do_errno->errnum <= PROTO_MAX_ERRNO);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		FUZZ_CHECK(a->do_kill->signal >= 1 && a->do_kill->signal <= PROTO_MAX_SIGNAL);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES:
		FUZZ_CHECK(a->do_inject_bytes->data.len <= PROTO_MAX_INJECT);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL:
		proto_check_text(a->do_fail->reason, PROTO_MAX_TEXT);
		break;
	case SYSGATE__V1__ACTION__KIND__NOT_SET:
		FUZZ_CHECK(!"an Action without a kind passed validation");
		break;
	default:
		break;
	}
}

/* As router.c on_record. */
static void check_record(const Sysgate__V1__Record *rec)
{
	FUZZ_CHECK(rec->json.len >= 1 && rec->json.len <= PROTO_MAX_RECORD);
	json_error_t jerr;
	json_t *data = json_loadb((const char *)rec->json.data, rec->json.len,
				  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (data) {
		char *text = json_dumps(data, JSON_ENCODE_ANY | JSON_COMPACT);
		free(text);
		json_decref(data);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ =
		proto_check_receive(data, size, proto_validate_from_worker);
	if (!m)
		return 0;
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_HELLO:
		check_hello(m->hello);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ACTION:
		check_action(m->action);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST:
		FUZZ_CHECK(m->mem_request->length >= 1 && m->mem_request->length <= PROTO_MAX_MEM);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_RECORD:
		check_record(m->record);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		proto_check_text(m->goodbye->reason, PROTO_MAX_TEXT);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		proto_check_text(m->error->message, PROTO_MAX_TEXT);
		break;
	default:
		FUZZ_CHECK(!"a supervisor-only message passed the worker-side validation");
	}
	proto_check_roundtrip(m, proto_validate_from_worker);
	return 0;
}
