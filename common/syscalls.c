#include "syscalls.h"

#include <errno.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

const char *const syscalls_default_deny[] = {
	"mount",	     "umount2",		"pivot_root",	     "swapon",
	"swapoff",	     "reboot",		"sethostname",	     "setdomainname",
	"kexec_load",	     "kexec_file_load", "init_module",	     "finit_module",
	"delete_module",     "unshare",		"setns",	     "perf_event_open",
	"bpf",		     "userfaultfd",	"keyctl",	     "add_key",
	"request_key",	     "ptrace",		"process_vm_readv",  "process_vm_writev",
	"open_by_handle_at", "name_to_handle_at", "ioperm",	     "iopl",
	"quotactl",	     "quotactl_fd",	"acct",		     "lookup_dcookie",
	"nfsservctl",	     "io_uring_setup",	"io_uring_enter",    "io_uring_register",
	"personality",	     "fsopen",		"fsmount",	     "fsconfig",
	"fspick",	     "move_mount",	"open_tree",	     "mount_setattr",
	"pidfd_getfd",	     "kcmp",
	NULL,
};

/* Names resolved once; libseccomp allocates each lookup. */
static const char *name_table[SYSCALLS_MAX];
static pthread_once_t name_once = PTHREAD_ONCE_INIT;

static void name_table_init(void)
{
	for (int nr = 0; nr < SYSCALLS_MAX; nr++)
		name_table[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}

const char *syscalls_name(long nr)
{
	if (nr < 0 || nr >= SYSCALLS_MAX)
		return NULL;
	pthread_once(&name_once, name_table_init);
	return name_table[nr];
}

long syscalls_resolve(const char *s)
{
	if (!s || !*s)
		return -EINVAL;
	if (*s == '-' || (*s >= '0' && *s <= '9')) {
		char *end;
		errno = 0;
		long nr = strtol(s, &end, 10);
		if (errno || *end || nr < 0)
			return -EINVAL;
		return syscalls_name(nr) ? nr : -ENOENT;
	}
	int nr = seccomp_syscall_resolve_name(s);
	/* libseccomp knows pseudo-syscalls (negative) that the arch lacks. */
	if (nr == __NR_SCMP_ERROR || nr < 0 || nr >= SYSCALLS_MAX)
		return -ENOENT;
	return nr;
}

struct path_syscall {
	long nr;
	unsigned char nargs;
	unsigned char idx[2];
};

static const struct path_syscall path_table[] = {
	{ SYS_openat, 1, { 1 } },     { SYS_unlinkat, 1, { 1 } },
	{ SYS_mkdirat, 1, { 1 } },    { SYS_newfstatat, 1, { 1 } },
	{ SYS_statx, 1, { 1 } },      { SYS_faccessat, 1, { 1 } },
	{ SYS_faccessat2, 1, { 1 } }, { SYS_readlinkat, 1, { 1 } },
	{ SYS_execveat, 1, { 1 } },   { SYS_fchmodat, 1, { 1 } },
	{ SYS_fchownat, 1, { 1 } },   { SYS_utimensat, 1, { 1 } },
#ifdef SYS_open
	{ SYS_open, 1, { 0 } },	      { SYS_creat, 1, { 0 } },
	{ SYS_unlink, 1, { 0 } },     { SYS_mkdir, 1, { 0 } },
	{ SYS_rmdir, 1, { 0 } },      { SYS_stat, 1, { 0 } },
	{ SYS_lstat, 1, { 0 } },      { SYS_access, 1, { 0 } },
	{ SYS_readlink, 1, { 0 } },   { SYS_chmod, 1, { 0 } },
	{ SYS_chown, 1, { 0 } },      { SYS_rename, 2, { 0, 1 } },
	{ SYS_link, 2, { 0, 1 } },    { SYS_symlink, 2, { 0, 1 } },
#endif
	{ SYS_execve, 1, { 0 } },     { SYS_chdir, 1, { 0 } },
	{ SYS_truncate, 1, { 0 } },   { SYS_renameat, 2, { 1, 3 } },
	{ SYS_renameat2, 2, { 1, 3 } }, { SYS_linkat, 2, { 1, 3 } },
	{ SYS_symlinkat, 2, { 0, 2 } },
};

unsigned syscalls_path_args(long nr, unsigned idx[2])
{
	for (size_t i = 0; i < sizeof(path_table) / sizeof(path_table[0]); i++) {
		if (path_table[i].nr != nr)
			continue;
		for (unsigned k = 0; k < path_table[i].nargs; k++)
			idx[k] = path_table[i].idx[k];
		return path_table[i].nargs;
	}
	return 0;
}
