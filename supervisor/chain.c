#include "chain.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void chain_table_init(struct chain_table *t)
{
	memset(t, 0, sizeof(*t));
}

void chain_table_free(struct chain_table *t)
{
	for (size_t i = 0; i < SYSCALLS_MAX; i++) {
		free(t->by_nr[i].links);
		free(t->by_nr[i].hops);
	}
	memset(t, 0, sizeof(*t));
}

int chain_trap(struct chain_table *t, long nr)
{
	if (nr < 0 || nr >= SYSCALLS_MAX)
		return -EINVAL;
	t->trapped[nr] = true;
	return 0;
}

int chain_append(struct chain_table *t, long nr, const struct chain_link *link)
{
	if (nr < 0 || nr >= SYSCALLS_MAX || !link || !link->fn)
		return -EINVAL;
	struct chain *c = &t->by_nr[nr];
	struct chain_link *links = realloc(c->links, (c->n + 1) * sizeof(*links));
	if (!links)
		return -ENOMEM;
	links[c->n++] = *link;
	c->links = links;
	t->trapped[nr] = true;
	return 0;
}

int chain_append_hop(struct chain_table *t, long nr, const struct chain_hop *hop)
{
	if (nr < 0 || nr >= SYSCALLS_MAX || !hop || !hop->worker)
		return -EINVAL;
	struct chain *c = &t->by_nr[nr];
	struct chain_hop *hops = realloc(c->hops, (c->n_hops + 1) * sizeof(*hops));
	if (!hops)
		return -ENOMEM;
	hops[c->n_hops++] = *hop;
	c->hops = hops;
	t->trapped[nr] = true;
	return 0;
}

bool action_valid(const struct action *a)
{
	switch (a->kind) {
	case ACTION_CONTINUE:
	case ACTION_RETURN:
		return true;
	case ACTION_ERRNO:
		return a->value >= 1 && a->value <= 4095;
	case ACTION_KILL:
		return a->value >= 1 && a->value < NSIG;
	case ACTION_INJECT:
		return a->value >= 0;
	}
	return false;
}

const char *action_name(enum action_kind kind)
{
	switch (kind) {
	case ACTION_CONTINUE:
		return "continue";
	case ACTION_ERRNO:
		return "errno";
	case ACTION_RETURN:
		return "return";
	case ACTION_KILL:
		return "kill";
	case ACTION_INJECT:
		return "inject_bytes";
	}
	return "invalid";
}

const struct chain_link *chain_run(const struct chain_table *t, const struct seccomp_notif *req,
				   const struct childmem *mem, struct action *out)
{
	*out = (struct action){ .kind = ACTION_CONTINUE };
	if (req->data.nr < 0 || req->data.nr >= SYSCALLS_MAX)
		return NULL;
	const struct chain *c = &t->by_nr[req->data.nr];
	for (size_t i = 0; i < c->n; i++) {
		struct action a = { .kind = ACTION_CONTINUE };
		c->links[i].fn(c->links[i].state, req, mem, &a);
		if (!action_valid(&a)) {
			*out = (struct action){ .kind = ACTION_ERRNO, .value = EPERM };
			return &c->links[i];
		}
		if (a.kind != ACTION_CONTINUE) {
			*out = a;
			return &c->links[i];
		}
	}
	return NULL;
}
