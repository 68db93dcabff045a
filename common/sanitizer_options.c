/* AddressSanitizer defaults for worker programs (examples, plugin host, test
 * and bench workers), read by the runtime of the
 * Sanitize build only (nothing calls this otherwise). ASAN_OPTIONS in the
 * environment still overrides them.
 *
 * detect_leaks=0: at exit LeakSanitizer reads /proc/self/task and ptraces
 * the threads, which the worker sandbox denies (docs/worker-sandbox.md#syscalls): every exit would
 * become "LeakSanitizer has encountered a fatal error" and exit status 1,
 * and the tests could not tell an ordinary exit from a failure. */
const char *__asan_default_options(void);

__attribute__((visibility("default"), used)) const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}
