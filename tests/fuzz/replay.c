/* Replays inputs through a fuzz target without libFuzzer, so every build
 * (gcc included, sanitized or not) runs the committed corpus in ctest:
 *   fuzz_replay_<target> FILE|DIR...
 * Each file is one input; a directory means each regular file in it, in
 * name order. Fails when an argument cannot be read or no input was found
 * (an empty run proves nothing); a failing input aborts in the target. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "util.h"

static int replay_file(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t size = (size_t)st.st_size;
	/* Never 0 bytes to malloc; a copy of its own, so ASan sees overreads. */
	_cleanup_free_ uint8_t *data = malloc(size ? size : 1);
	if (!data)
		return -1;
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, data + got, size - got);
		if (n <= 0) {
			fprintf(stderr, "fuzz_replay: %s: short read\n", path);
			return -1;
		}
		got += (size_t)n;
	}
	LLVMFuzzerTestOneInput(data, size);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_dir(const char *dir, unsigned *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	int r = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (r == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			r = replay_file(path);
			(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "fuzz_replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		int r = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count)
					    : (count++, replay_file(argv[i]));
		if (r < 0)
			return 1;
	}
	if (count == 0) {
		fprintf(stderr, "fuzz_replay: no inputs\n");
		return 1;
	}
	printf("fuzz_replay: %u inputs replayed\n", count);
	return 0;
}
