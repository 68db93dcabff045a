#include "childmem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include "compat.h"
#include "util.h"

int childmem_id_valid(int listener, uint64_t id)
{
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
		return -errno;
	return 0;
}

/* Reads are done first and validated after: if the notification is still
 * pending afterwards, the pid cannot have been recycled in between, so the
 * bytes came from the trapped process. */
ssize_t childmem_read(const struct childmem *m, uint64_t addr, void *buf, size_t len)
{
	if (len > CHILDMEM_MAX)
		return -E2BIG;
	if (len == 0)
		return childmem_id_valid(m->listener, m->id);
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	ssize_t n = process_vm_readv(m->pid, &local, 1, &remote, 1, 0);
	int saved = errno;
	int v = childmem_id_valid(m->listener, m->id);
	if (v < 0)
		return v;
	if (n < 0)
		return saved == ESRCH ? -ENOENT : -saved;
	return n;
}

/* Most strings (paths) are short: the first read stops at this, or at the
 * end of the page if nearer, instead of copying the rest of the page. */
#define CSTR_FIRST_READ 256u

ssize_t childmem_read_cstr(const struct childmem *m, uint64_t addr, char *buf, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	if (cap - 1 > CHILDMEM_MAX)
		return -E2BIG;
	size_t got = 0;
	ssize_t r = -ENAMETOOLONG;
	/* Chunks never cross a page: a string may end just before an
	 * unmapped page. One NOTIF_ID_VALID after all of them (as
	 * childmem_read: still pending, so the pid was not recycled). */
	while (got < cap - 1) {
		uint64_t at = addr + got;
		size_t want = 4096 - (size_t)(at & 4095);
		if (got == 0 && want > CSTR_FIRST_READ)
			want = CSTR_FIRST_READ;
		if (want > cap - 1 - got)
			want = cap - 1 - got;
		struct iovec local = { .iov_base = buf + got, .iov_len = want };
		struct iovec remote = { .iov_base = (void *)(uintptr_t)at, .iov_len = want };
		ssize_t n = process_vm_readv(m->pid, &local, 1, &remote, 1, 0);
		if (n < 0) {
			r = errno == ESRCH ? -ENOENT : -errno;
			break;
		}
		if (n == 0)
			break;
		char *nul = memchr(buf + got, '\0', (size_t)n);
		if (nul) {
			got = (size_t)(nul - buf);
			r = (ssize_t)got;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	int v = childmem_id_valid(m->listener, m->id);
	return v < 0 ? v : r;
}

/* Is [addr, addr+len) covered by writable mappings of the process whose
 * maps file is fd? /proc/PID/mem would write through read-only mappings
 * (it forces access, like a debugger); a worker may only write what the
 * process itself could. PROCMAP_QUERY asks the kernel for one mapping at a
 * time; older kernels get the text of the whole map parsed. */
static int range_writable_text(int fd, uint64_t addr, size_t len)
{
	FILE *f = fdopen(dup(fd), "r");
	if (!f)
		return -errno;
	uint64_t at = addr, end = addr + len;
	char line[512];
	while (at < end && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		char perms[5];
		if (sscanf(line, "%llx-%llx %4s", &lo, &hi, perms) != 3 || hi <= at)
			continue;
		if (lo > at || perms[1] != 'w')
			break; /* a hole or a read-only page at `at` */
		at = hi;
	}
	fclose(f);
	return at >= end ? 0 : -EFAULT;
}

static int range_writable(int fd, uint64_t addr, size_t len)
{
	uint64_t at = addr, end = addr + len;
	while (at < end) {
		struct procmap_query q = { .size = sizeof(q), .query_addr = at };
		if (ioctl(fd, PROCMAP_QUERY, &q) < 0) {
			if (errno == ENOTTY || errno == EINVAL)
				return range_writable_text(fd, addr, len);
			return errno == ENOENT ? -EFAULT : -errno; /* ENOENT: no mapping */
		}
		if (!(q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE) || q.vma_start > at)
			return -EFAULT;
		at = q.vma_end;
	}
	return 0;
}

/* Writes must not land in a recycled pid: open the process's memory (and
 * its map) first, validate the notification, then write through that
 * handle, all or nothing as far as the kernel lets us tell. */
ssize_t childmem_write(const struct childmem *m, uint64_t addr, const void *buf, size_t len)
{
	if (len > CHILDMEM_MAX)
		return -E2BIG;
	if (addr > INT64_MAX - len)
		return -EFAULT; /* not an offset pwrite could take */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)m->pid);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)m->pid);
	_cleanup_close_ int maps = open(path, O_RDONLY | O_CLOEXEC);
	if (maps < 0)
		return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
	int v = childmem_id_valid(m->listener, m->id);
	if (v < 0 || (v = range_writable(maps, addr, len)) < 0)
		return v;
	ssize_t n = pwrite(fd, buf, len, (off_t)addr);
	if (n < 0)
		return errno == EIO ? -EFAULT : -errno;
	if ((size_t)n < len)
		return -EFAULT; /* ran into an unmapped page: not all written */
	return n;
}
