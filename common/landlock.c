#include "landlock.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "compat.h"

#define ACCESS_FILE_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE)
#define ACCESS_DIR_READ (ACCESS_FILE_READ | LANDLOCK_ACCESS_FS_READ_DIR)
#define ACCESS_FILE_WRITE                                                                   \
	(ACCESS_FILE_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |   \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)
#define ACCESS_DIR_WRITE                                                                    \
	(ACCESS_DIR_READ | ACCESS_FILE_WRITE | LANDLOCK_ACCESS_FS_REMOVE_DIR |             \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |                    \
	 LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |                        \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |                      \
	 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM |                      \
	 LANDLOCK_ACCESS_FS_REFER)

static long ll_create_ruleset(const struct sg_landlock_ruleset_attr *attr, size_t size,
			      unsigned flags)
{
	return syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

int landlock_abi(void)
{
	long abi = ll_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? -errno : (int)abi;
}

/* Filesystem rights the running ABI knows. */
static uint64_t fs_rights_for_abi(int abi)
{
	uint64_t all = ACCESS_DIR_WRITE;
	if (abi < 2)
		all &= ~LANDLOCK_ACCESS_FS_REFER;
	if (abi < 3)
		all &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi < 5)
		all &= ~LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return all;
}

static int add_path_rule(int ruleset, const char *path, uint64_t access, uint64_t handled,
			 struct sg_err *err)
{
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "landlock: cannot open '%s'", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(err, errno, "landlock: cannot stat '%s'", path);
	/* Directory-only rights are invalid on a file rule. */
	if (!S_ISDIR(st.st_mode))
		access &= ACCESS_FILE_WRITE;
	struct landlock_path_beneath_attr rule = {
		.allowed_access = access & handled,
		.parent_fd = fd,
	};
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
		return err_sys(err, errno, "landlock: cannot add a rule for '%s'", path);
	return 0;
}

int landlock_build(const struct landlock_spec *spec, int *out, struct sg_err *err)
{
	*out = -1;
	bool want_fs = spec->restrict_fs;
	if (!want_fs && !spec->no_network && !spec->scope_signals && !spec->scope_abstract &&
	    !spec->always_domain)
		return 0;

	int abi = landlock_abi();
	if (abi < 0) {
		if (!want_fs && !spec->no_network)
			return 0; /* only best-effort protection was asked */
		return err_set(err, -abi,
			       "%s needs Landlock, which this kernel %s",
			       want_fs ? "-r/-w" : "--no-network",
			       abi == -EOPNOTSUPP ? "has disabled" : "does not provide");
	}
	if (spec->no_network && abi < 4)
		return err_set(err, EOPNOTSUPP,
			       "--no-network needs Landlock ABI 4, this kernel has ABI %d", abi);

	struct sg_landlock_ruleset_attr attr = { 0 };
	uint64_t handled = fs_rights_for_abi(abi);
	if (want_fs)
		attr.handled_access_fs = handled;
	if (spec->no_network)
		attr.handled_access_net =
			LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
	if (abi >= 6) {
		if (spec->scope_signals)
			attr.scoped |= LANDLOCK_SCOPE_SIGNAL;
		if (spec->scope_abstract)
			attr.scoped |= LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET;
	}
	/* Any Landlock domain also stops the command from ptracing or opening
	 * /proc/PID/mem of processes outside it (the supervisor among them),
	 * whatever its uid. Without other rules, make one that handles a single
	 * right and grants it everywhere. */
	bool placeholder = false;
	if (spec->always_domain && !attr.handled_access_fs && !attr.handled_access_net &&
	    !attr.scoped) {
		attr.handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_BLOCK;
		placeholder = true;
	}
	if (!attr.handled_access_fs && !attr.handled_access_net && !attr.scoped)
		return 0;

	_cleanup_close_ int ruleset = (int)ll_create_ruleset(&attr, sizeof(attr), 0);
	if (ruleset < 0)
		return err_sys(err, errno, "landlock: cannot create a ruleset");
	for (size_t i = 0; want_fs && i < spec->n_read; i++) {
		int r = add_path_rule(ruleset, spec->read_paths[i], ACCESS_DIR_READ, handled, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; want_fs && i < spec->n_write; i++) {
		int r = add_path_rule(ruleset, spec->write_paths[i], ACCESS_DIR_WRITE, handled,
				      err);
		if (r < 0)
			return r;
	}
	if (placeholder) {
		int r = add_path_rule(ruleset, "/", LANDLOCK_ACCESS_FS_MAKE_BLOCK,
				      LANDLOCK_ACCESS_FS_MAKE_BLOCK, err);
		if (r < 0)
			return r;
	}
	*out = steal_fd(&ruleset);
	return 0;
}

int landlock_enforce(int ruleset_fd)
{
	if (ruleset_fd < 0)
		return 0;
	if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) < 0)
		return -errno;
	return 0;
}
