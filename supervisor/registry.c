#include "registry.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

struct sortable {
	struct registration reg;
	uint32_t order;
};

static int cmp_order(const void *a, const void *b)
{
	const struct sortable *x = a, *y = b;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->reg.index < y->reg.index ? -1 : x->reg.index > y->reg.index;
}

static int resolve_one(const Sysgate__V1__Registration *r, const bool deny[SYSCALLS_MAX],
		       long *nr, struct sg_err *err)
{
	char what[96];
	if (r->syscall_name && r->syscall_name[0]) {
		snprintf(what, sizeof(what), "\"%s\"", r->syscall_name);
		*nr = syscalls_resolve(r->syscall_name);
	} else {
		snprintf(what, sizeof(what), "syscall number %lld", (long long)r->syscall_nr);
		*nr = r->syscall_nr < 0 ? -EINVAL
		      : r->syscall_nr < SYSCALLS_MAX && syscalls_name(r->syscall_nr)
			      ? (long)r->syscall_nr
			      : -ENOENT;
	}
	if (*nr == -EINVAL)
		return err_set(err, EINVAL, "registration of %s rejected: not a valid syscall "
					    "number", what);
	if (*nr < 0 || *nr >= SYSCALLS_MAX)
		return err_set(err, ENOENT, "registration of %s rejected: no such syscall on this "
					    "architecture", what);
	if (deny[*nr])
		return err_set(err, EPERM, "registration of %s rejected: %s is on the deny list "
					   "(a handler there would turn a kernel deny into a user "
					   "decision)", what, syscalls_name(*nr));
	if (!strcmp(syscalls_name(*nr), "exit") || !strcmp(syscalls_name(*nr), "exit_group"))
		return err_set(err, EPERM, "registration of %s rejected: a process must always be "
					   "able to exit (a handler could hold it forever)", what);
	return 0;
}

static bool observe_only(long nr)
{
	static const char *const names[] = { "execve", "execveat", "clone",
					     "clone3", "fork",     "vfork" };
	const char *name = syscalls_name(nr);
	for (size_t i = 0; name && i < ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

bool registry_eintr_fragile(long nr)
{
	static const char *const names[] = { "clone", "clone3",	    "fork", "vfork",  "close",
					     "close_range", "dup2", "dup3", "execve", "execveat" };
	const char *name = syscalls_name(nr);
	for (size_t i = 0; name && i < ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

void registry_warn_eintr(long nr)
{
	/* Once per syscall and run: every worker start (replicas, restarts)
	 * registers again. */
	static atomic_bool warned[SYSCALLS_MAX];
	if (registry_eintr_fragile(nr) && nr >= 0 && nr < SYSCALLS_MAX &&
	    !atomic_exchange(&warned[nr], true))
		log_error("warning: trapping %s: a signal that arrives before sysgate receives "
			  "the call makes it fail with EINTR, which programs do not expect of %s "
			  "(see \"Trapped system calls and EINTR\" in sysgate(1))",
			  syscalls_name(nr), syscalls_name(nr));
}

int registry_resolve(const Sysgate__V1__Hello *hello, const bool deny[SYSCALLS_MAX],
		     struct registration **out, size_t *n, struct sg_err *err)
{
	*out = NULL;
	*n = 0;
	size_t count = hello->n_registrations;
	_cleanup_free_ struct sortable *v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return err_set(err, ENOMEM, "out of memory for registrations");
	for (size_t i = 0; i < count; i++) {
		const Sysgate__V1__Registration *r = hello->registrations[i];
		long nr;
		int e = resolve_one(r, deny, &nr, err);
		if (e < 0)
			return e;
		registry_warn_eintr(nr);
		v[i] = (struct sortable){ .reg = { .nr = nr, .index = (uint32_t)i,
						   .policy = (unsigned)r->on_exception,
						   .observe_only = observe_only(nr) },
					  .order = r->order };
	}
	qsort(v, count, sizeof(*v), cmp_order);
	struct registration *regs = calloc(count ? count : 1, sizeof(*regs));
	if (!regs)
		return err_set(err, ENOMEM, "out of memory for registrations");
	for (size_t i = 0; i < count; i++)
		regs[i] = v[i].reg;
	*out = regs;
	*n = count;
	return 0;
}

bool registry_equal(const struct registration *a, size_t n_a, const struct registration *b,
		    size_t n_b)
{
	if (n_a != n_b)
		return false;
	for (size_t i = 0; i < n_a; i++)
		if (a[i].nr != b[i].nr || a[i].index != b[i].index || a[i].policy != b[i].policy)
			return false;
	return true;
}
