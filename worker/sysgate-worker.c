/* sysgate-worker: the plugin host (docs/sdk-c.md#plugins-sysgate-worker).
 * Loads a handler plugin, a shared object exporting
 *
 *	int sysgate_plugin_init(sg_worker *w, const char *arg);
 *
 * lets it register its handlers on a new worker, then serves the run like
 * any other worker. The SDK is linked in statically and its public (SG_API)
 * symbols are exported from this executable, so a plugin needs no
 * libsysgate of its own: its sg_* references resolve to this host. */
#include <dlfcn.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sysgate.h>

#define PROG "sysgate-worker"
#define PLUGIN_INIT_SYMBOL "sysgate_plugin_init"

enum { EXIT_RUN_FAILED = 1, EXIT_USAGE = 2 };

typedef int (*plugin_init_fn)(sg_worker *w, const char *arg);

struct options {
	const char *plugin; /* as given on the command line */
	const char *arg;    /* NULL when --arg was not given */
	const char *name;   /* NULL: derived from the plugin's file name */
};

enum parse_result { PARSE_RUN, PARSE_DONE, PARSE_USAGE };

static void print_help(void)
{
	printf("Usage: " PROG " --plugin FILE.so [--arg STR] [--name NAME]\n"
	       "Hosts a sysgate handler plugin as a worker process; started by\n"
	       "`sysgate run --worker '" PROG " --plugin FILE.so ...' -- CMD`.\n"
	       "\n"
	       "  --plugin FILE.so  the plugin to load (a name without '/' is taken from the\n"
	       "                    current directory); it must export\n"
	       "                    int " PLUGIN_INIT_SYMBOL "(sg_worker *w, const char *arg)\n"
	       "  --arg STR         passed to " PLUGIN_INIT_SYMBOL " (NULL when not given)\n"
	       "  --name NAME       worker name (default: FILE's base name without .so;\n"
	       "                    a name passed by the supervisor takes precedence)\n"
	       "  -h, --help        show this help and exit\n"
	       "  --version         show the version and exit\n"
	       "\n"
	       "Exit status: 0 when the supervisor ended the run, 1 when loading the plugin,\n"
	       "its initialization or the run failed, 2 on a usage error.\n");
}

static enum parse_result parse_args(int argc, char **argv, struct options *opts)
{
	enum { OPT_PLUGIN = 256, OPT_ARG, OPT_NAME, OPT_VERSION };
	static const struct option longopts[] = {
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "arg", required_argument, NULL, OPT_ARG },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	opterr = 0; /* our own one-line messages */
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PLUGIN:
			opts->plugin = optarg;
			break;
		case OPT_ARG:
			opts->arg = optarg;
			break;
		case OPT_NAME:
			opts->name = optarg;
			break;
		case 'h':
			print_help();
			return PARSE_DONE;
		case OPT_VERSION:
			printf(PROG " %s\n", SYSGATE_VERSION);
			return PARSE_DONE;
		case ':':
			fprintf(stderr, PROG ": option '%s' needs an argument (see --help)\n",
				argv[optind - 1]);
			return PARSE_USAGE;
		default:
			if (optopt)
				fprintf(stderr, PROG ": unknown option '-%c' (see --help)\n",
					optopt);
			else
				fprintf(stderr, PROG ": unknown option '%s' (see --help)\n",
					argv[optind - 1]);
			return PARSE_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n", argv[optind]);
		return PARSE_USAGE;
	}
	if (!opts->plugin) {
		fprintf(stderr, PROG ": missing --plugin FILE.so (see --help)\n");
		return PARSE_USAGE;
	}
	if (!*opts->plugin) {
		fprintf(stderr, PROG ": --plugin needs a file name, not an empty string\n");
		return PARSE_USAGE;
	}
	return PARSE_RUN;
}

/* The plugin's base name without a trailing ".so", as a new string; NULL if
 * out of memory. */
static char *plugin_default_name(const char *plugin)
{
	const char *slash = strrchr(plugin, '/');
	const char *base = slash ? slash + 1 : plugin;
	size_t len = strlen(base);
	if (len > 3 && strcmp(base + len - 3, ".so") == 0)
		len -= 3;
	return strndup(base, len);
}

/* dlopen() searches the library path for a name without '/': make such a
 * name a file in the current directory, as --plugin FILE promises. */
static char *plugin_load_path(const char *plugin)
{
	if (strchr(plugin, '/'))
		return strdup(plugin);
	size_t len = strlen(plugin);
	char *path = malloc(len + 3);
	if (path) {
		memcpy(path, "./", 2);
		memcpy(path + 2, plugin, len + 1);
	}
	return path;
}

/* Loads the plugin and finds its entry point; NULL after printing why. */
static plugin_init_fn plugin_load(const char *plugin)
{
	char *path = plugin_load_path(plugin);
	if (!path) {
		fprintf(stderr, PROG ": plugin \"%s\": out of memory\n", plugin);
		return NULL;
	}
	/* Never dlclose()d: the plugin's code runs until the process exits. */
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	free(path);
	if (!handle) {
		fprintf(stderr, PROG ": cannot load plugin \"%s\": %s\n", plugin, dlerror());
		return NULL;
	}
	dlerror();
	void *sym = dlsym(handle, PLUGIN_INIT_SYMBOL);
	const char *error = dlerror();
	if (!sym) {
		fprintf(stderr, PROG ": plugin \"%s\" has no " PLUGIN_INIT_SYMBOL "(): %s\n",
			plugin, error ? error : "the symbol is NULL");
		return NULL;
	}
	return (plugin_init_fn)sym;
}

int main(int argc, char **argv)
{
	struct options opts = { NULL, NULL, NULL };
	switch (parse_args(argc, argv, &opts)) {
	case PARSE_RUN:
		break;
	case PARSE_DONE:
		return 0;
	case PARSE_USAGE:
		return EXIT_USAGE;
	}

	plugin_init_fn init = plugin_load(opts.plugin);
	if (!init)
		return EXIT_RUN_FAILED;

	char *default_name = opts.name ? NULL : plugin_default_name(opts.plugin);
	if (!opts.name && !default_name) {
		fprintf(stderr, PROG ": plugin \"%s\": out of memory\n", opts.plugin);
		return EXIT_RUN_FAILED;
	}
	sg_worker *w = sg_worker_new(opts.name ? opts.name : default_name);
	free(default_name);
	if (!w) {
		fprintf(stderr, PROG ": plugin \"%s\": cannot create the worker: out of memory\n",
			opts.plugin);
		return EXIT_RUN_FAILED;
	}

	int r = init(w, opts.arg);
	if (r != 0) {
		int e = r < 0 && r != INT_MIN ? -r : r;
		fprintf(stderr, PROG ": plugin \"%s\": " PLUGIN_INIT_SYMBOL "() failed: %s (%d)\n",
			opts.plugin, strerror(e), r);
		sg_worker_free(w);
		return EXIT_RUN_FAILED;
	}

	r = sg_worker_run(w); /* prints its own cause on failure */
	sg_worker_free(w);
	return r == 0 ? 0 : EXIT_RUN_FAILED;
}
