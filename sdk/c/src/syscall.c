#include <sysgate.h>

#include "syscalls.h"

long sg_syscall_nr(const char *name)
{
	return syscalls_resolve(name);
}

const char *sg_syscall_name(long nr)
{
	return syscalls_name(nr);
}
