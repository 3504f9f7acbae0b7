#define _GNU_SOURCE /* memmem */
/* main: options, configuration, the check at mount, then the FUSE loop. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs.h"
#include <fuse_lowlevel.h>

#include "config.h"
#include "fuseio.h"
#include "http.h"
#include "log.h"
#include "mountpoint.h"
#include "provider.h"
#include "notify.h"
#include "tree.h"

struct cli {
	char *config;
	char *dir_ttl, *attr_ttl, *neg_ttl, *timeout, *retries, *parallel;
	char *profile, *logfile, *cafile;
	int delay_connect;
	int allow_other;
	int show_secrets;
	int nonempty;
	int noauto_unmount;
	int help;
	int version;
};

#define CLI_OPT(t, p) CLI_OPT_VAL(t, p, 1)
#define CLI_OPT_VAL(t, p, v)                                                                       \
	{                                                                                          \
		t, offsetof(struct cli, p), v                                                      \
	}

static const struct fuse_opt cli_opts[] = {
    CLI_OPT("config=%s", config),
    CLI_OPT("dir_ttl=%s", dir_ttl),
    CLI_OPT("attr_ttl=%s", attr_ttl),
    CLI_OPT("neg_ttl=%s", neg_ttl),
    CLI_OPT("timeout=%s", timeout),
    CLI_OPT("retries=%s", retries),
    CLI_OPT("parallel=%s", parallel),
    CLI_OPT("profile=%s", profile),
    CLI_OPT("logfile=%s", logfile),
    CLI_OPT("cafile=%s", cafile),
    FUSE_OPT_KEY("allow_other", 1),
    CLI_OPT("delay_connect", delay_connect),
    CLI_OPT("show_secrets", show_secrets),
    CLI_OPT("nonempty", nonempty),
    CLI_OPT_VAL("auto_unmount", noauto_unmount, 0),
    CLI_OPT_VAL("noauto_unmount", noauto_unmount, 1),
    CLI_OPT("-h", help),
    CLI_OPT("--help", help),
    CLI_OPT("-V", version),
    CLI_OPT("--version", version),
    FUSE_OPT_END,
};

/* Option names that would carry a secret: refused, so it never shows in ps or /proc/mounts,
 * and never echoed back (libfuse's own "unknown option" message would print it). */
static int secret_option(const char *arg)
{
	static const char *const words[] = {"secret", "token", "password", "access_key", NULL};
	size_t len = strcspn(arg, "=");

	for (size_t i = 0; words[i]; i++)
		if (memmem(arg, len, words[i], strlen(words[i])))
			return 1;
	return 0;
}

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cli *c = data;

	(void)outargs;
	if (key == 1) {
		c->allow_other = 1;
		return 1; /* libfuse needs it too */
	}
	if (key == FUSE_OPT_KEY_OPT && secret_option(arg)) {
		fprintf(stderr,
			"codesrcfs: credentials are not accepted as -o options (they would "
			"show in ps and /proc/mounts): put '%.*s' in the configuration file or the "
			"environment\n",
			(int)strcspn(arg, "="), arg);
		return -1;
	}
	return 1;
}

struct settings {
	long dir_ttl, attr_ttl, neg_ttl, timeout, retries, parallel;
};

static void usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-o OPTION[,OPTION...]] MOUNTPOINT\n"
	       "       %s --refresh PATH\n"
	       "       %s --help | --version\n"
	       "       fusermount3 -u MOUNTPOINT\n\n"
	       "Mounts the code sources of Alibaba Cloud PAI, Volcengine and Codeup as\n"
	       "read-only directories: pai/<workspace>/<name>/{meta.json,url,branch}, ...\n\n"
	       "codesrcfs options:\n"
	       "    -o config=PATH       configuration file (default\n"
	       "                         $XDG_CONFIG_HOME/codesrcfs/config, else\n"
	       "                         ~/.config/codesrcfs/config)\n"
	       "    -o dir_ttl=S         seconds a directory listing is trusted (60)\n"
	       "    -o attr_ttl=S        seconds attributes are trusted (60)\n"
	       "    -o neg_ttl=S         seconds a missing name is remembered (10)\n"
	       "    -o timeout=S         bound on one API request, connect included (15)\n"
	       "    -o retries=N         retries of a failed request (4)\n"
	       "    -o parallel=N        page requests in flight for one listing (8)\n"
	       "    -o delay_connect     skip the check at mount (credentials, configured ids)\n"
	       "    -o show_secrets      do not redact credential fields in meta.json\n"
	       "    -o profile=NAME      profile of ~/.aliyun/config.json to use for pai\n"
	       "    -o logfile=PATH      append log lines to PATH (reopened on SIGHUP)\n"
	       "    -o cafile=PATH       PEM bundle of the certificate authorities to trust\n"
	       "                         for https:// (default: the system's)\n"
	       "    -o nonempty          allow mounting over a non-empty directory\n"
	       "    -o noauto_unmount    keep the mount when the daemon dies (default:\n"
	       "                         auto_unmount, the mount goes with it)\n"
	       "    -f                   stay in the foreground\n"
	       "    -d                   debug output (implies -f)\n\n"
	       "Credentials come from the configuration file and the environment\n"
	       "(ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET,\n"
	       "ALIBABA_CLOUD_SECURITY_TOKEN, VOLCENGINE_ACCESS_KEY, VOLCENGINE_SECRET_KEY,\n"
	       "CODEUP_TOKEN); the environment wins. See codesrcfs(1).\n\n"
	       "--refresh PATH lists the directory PATH of a mount again now and prints what\n"
	       "changed: + name, - name, ~ name (its files changed).\n\n"
	       "FUSE options:\n",
	       prog, prog, prog);
	fuse_cmdline_help();
}

/* A whole number in [min, max], or a clear line and -EINVAL. */
static int parse_num(const char *name, const char *s, long def, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr,
			"codesrcfs: bad option %s=%s: expected a whole number from %ld to %ld\n",
			name, s, min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_settings(const struct cli *c, struct settings *s)
{
	const long day = 86400;

	if (parse_num("dir_ttl", c->dir_ttl, 60, 0, 365 * day, &s->dir_ttl) ||
	    parse_num("attr_ttl", c->attr_ttl, 60, 0, 365 * day, &s->attr_ttl) ||
	    parse_num("neg_ttl", c->neg_ttl, 10, 0, 365 * day, &s->neg_ttl) ||
	    parse_num("timeout", c->timeout, 15, 1, 3600, &s->timeout) ||
	    parse_num("retries", c->retries, 4, 0, 100, &s->retries) ||
	    parse_num("parallel", c->parallel, 8, 1, 64, &s->parallel))
		return -EINVAL;
	return 0;
}

static const char *check_failure(int err)
{
	switch (-err) {
	case EACCES:
	case EPERM:
		return "the credentials were rejected";
	case ETIMEDOUT:
		return "the endpoint did not answer in time";
	default:
		return "the endpoint could not be reached or answered with an error";
	}
}

struct mount {
	struct config conf;
	struct http *http;
	struct provider **provs; /* one per cloud with credentials */
	size_t nprovs;
	struct tree *tree;
	struct fs fs;
	struct fuse_session *se;
	int signals_set; /* libfuse complains when asked to remove handlers it never set */
};

static int open_providers(struct mount *m, const struct settings *s, const struct cli *cli)
{
	struct http_opts ho = {
	    .timeout_s = s->timeout,
	    .retries = (int)s->retries,
	    .max_body = PROV_MAX_BODY,
	    .user_agent = "codesrcfs/" CODESRCFS_VERSION,
	    .max_host_conns = (int)s->parallel,
	    .cafile = cli->cafile,
	};
	struct provider_env env = {.show_secrets = cli->show_secrets, .dir_ttl = s->dir_ttl};
	char err[768];
	int r;

	m->http = http_new(&ho);
	if (!m->http) {
		fprintf(stderr, "codesrcfs: cannot set up the HTTP client\n");
		return -ENOMEM;
	}
	env.http = m->http;
	r = provider_new_all(&m->conf, &env, &m->provs, &m->nprovs, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "codesrcfs: %s\n", err);
	return r;
}

/* One provider's check at mount, run in a thread of its own. */
struct check_job {
	struct provider *p;
	pthread_t thread;
	int started;
	int r;
	char why[512]; /* the provider's reason, for -ENOENT */
	char net[512]; /* the transport's reason when no answer came, else "" */
};

static void *check_run(void *arg)
{
	struct check_job *j = arg;

	j->r = j->p->ops->check(j->p, j->why, sizeof(j->why));
	/* The reason is the thread's own: copied before the thread ends. */
	snprintf(j->net, sizeof(j->net), "%s", j->r < 0 ? http_last_error() : "");
	return NULL;
}

/* The one line of a failed check: what went wrong, and where what was refused came from. */
static void check_report(const struct mount *m, const struct check_job *j)
{
	const struct prov_conf *pc = config_prov(&m->conf, j->p->name);
	char from[768] = "";

	if (*j->net) {
		fprintf(stderr, "codesrcfs: %s: cannot mount: %s\n", j->p->name, j->net);
		return;
	}
	if (pc && j->r == -ENOENT && *j->why)
		config_describe_scopes(pc, from, sizeof(from));
	else if (pc && (j->r == -EACCES || j->r == -EPERM))
		config_describe_creds(pc, from, sizeof(from));
	fprintf(stderr, "codesrcfs: %s: cannot mount: %s%s%s%s\n", j->p->name,
		j->r == -ENOENT && *j->why ? j->why : check_failure(j->r), *from ? " (" : "", from,
		*from ? ")" : "");
}

/* One cheap authenticated call per provider, as sshfs connects before it mounts, all at
 * once: the mount waits for the slowest, not for their sum. When no answer came, the line
 * names the host and the transport's reason, and what was logged on the way (retries) is
 * dropped; -d shows everything. */
static int check_providers(struct mount *m, int debug)
{
	struct check_job *jobs = calloc(m->nprovs, sizeof(*jobs));
	int r = 0, explained = 1;

	if (!jobs)
		return -ENOMEM;
	if (!debug)
		log_hold();
	for (size_t i = 0; i < m->nprovs; i++) {
		jobs[i].p = m->provs[i];
		jobs[i].started = pthread_create(&jobs[i].thread, NULL, check_run, &jobs[i]) == 0;
		if (!jobs[i].started)
			check_run(&jobs[i]);
	}
	for (size_t i = 0; i < m->nprovs; i++) {
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
		if (jobs[i].r < 0 && !r)
			r = jobs[i].r;
		if (jobs[i].r < 0 && !*jobs[i].net)
			explained = 0;
	}
	if (!debug)
		log_release(!r || !explained);
	for (size_t i = 0; i < m->nprovs; i++)
		if (jobs[i].r < 0)
			check_report(m, &jobs[i]);
	free(jobs);
	return r;
}

static void close_mount(struct mount *m)
{
	if (m->signals_set)
		fuse_remove_signal_handlers(m->se);
	if (m->se)
		fuse_session_destroy(m->se);
	tree_free(m->tree);
	for (size_t i = 0; i < m->nprovs; i++)
		m->provs[i]->ops->destroy(m->provs[i]);
	free(m->provs);
	http_free(m->http);
	config_free(&m->conf);
}

/* The signals one thread of ours takes with sigwait, blocked in every other thread. */
static void signals_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* The FUSE loop's wait (libfuse's semaphore, or its read of the device) ends only on a
 * request or a signal: once the session is told to exit, this one, sent to the loop's
 * thread alone, ends the wait. Its handler has nothing to do. */
#define WAKE_SIGNAL SIGRTMIN

static void wake_handler(int sig)
{
	(void)sig;
}

struct signals {
	struct mount *m;
	pthread_t loop; /* the thread that runs the FUSE loop */
	pthread_t thread;
	int started;
};

/* SIGTERM, SIGINT: unmount and exit now, whatever the network is doing. A listing being
 * paged asks for no further page, every transfer in flight fails at once (its request is
 * answered), and the loop ends without waiting for a request to come (docs/design.md §2).
 * Not from a handler: http_shutdown takes a mutex. */
static void stop_mount(struct signals *s, int sig)
{
	log_msg(LOG_INFO, "%s: unmounting", sig == SIGINT ? "SIGINT" : "SIGTERM");
	tree_quit(s->m->tree);
	http_shutdown(s->m->http);
	fuse_session_exit(s->m->se);
	pthread_kill(s->loop, WAKE_SIGNAL);
}

/* SIGHUP drops every cache, the kernel's copies included; SIGTERM and SIGINT stop the
 * mount. Taken here, not in a handler nor in a FUSE request's thread, so that what they
 * do may take locks. Cancelled only while it waits, never holding the tree's lock. */
static void *signal_thread(void *arg)
{
	struct signals *s = arg;
	sigset_t set;
	int sig, old;

	signals_set(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		if (sig == SIGHUP) {
			log_reopen();
			log_msg(LOG_INFO, "SIGHUP: dropping every cache");
			tree_flush(s->m->tree);
		} else {
			stop_mount(s, sig);
		}
		pthread_setcancelstate(old, NULL);
	}
	return NULL;
}

/* From here on the signal thread takes SIGHUP, SIGTERM and SIGINT: they are blocked in
 * this thread (the loop's) before any thread the loop needs starts, so every thread
 * inherits the mask (libfuse's workers block them too). One that came before the loop was
 * taken by libfuse's handler, which ended the session already. */
static void signals_start(struct signals *s, struct mount *m)
{
	struct sigaction sa = {.sa_handler = wake_handler}; /* no SA_RESTART: the wait ends */
	sigset_t set;

	s->m = m;
	s->loop = pthread_self();
	signals_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(WAKE_SIGNAL, &sa, NULL);
	s->started = pthread_create(&s->thread, NULL, signal_thread, s) == 0;
	if (!s->started)
		log_msg(LOG_WARNING, "cannot start the signal thread: SIGHUP, SIGTERM and "
				     "SIGINT wait until the mount is gone");
}

/* After the loop: a stop under way has finished (and woken the loop) when this returns. */
static void signals_stop(struct signals *s)
{
	if (!s->started)
		return;
	pthread_cancel(s->thread);
	pthread_join(s->thread, NULL);
}

static int run_loop(struct mount *m, const struct fuse_cmdline_opts *fo)
{
	struct fuse_session *se = m->se;
	struct fuse_loop_config *lc;
	struct signals sigs = {0};
	int r;

	signals_start(&sigs, m);
	m->fs.notify = notify_start(se, m->tree);
	if (!m->fs.notify)
		log_msg(LOG_WARNING, "cannot start notifying the kernel: files are read, and "
				     "what it keeps lasts until its timeouts");
	if (fo->singlethread) {
		r = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, fo->clone_fd);
		fuse_loop_cfg_set_max_threads(lc, fo->max_threads);
		r = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	signals_stop(&sigs);
	notify_stop(m->fs.notify);
	m->fs.notify = NULL;
	fuse_session_unmount(se);
	/* libfuse reports the signal that ended the loop; SIGTERM and SIGINT are a clean end. */
	return r == 0 || r == SIGTERM || r == SIGINT ? 0 : 1;
}

/* cafile= as an absolute path, so the daemon still finds it after leaving the directory. */
static int resolve_cafile(struct cli *cli)
{
	char *abs;

	if (!cli->cafile)
		return 0;
	abs = realpath(cli->cafile, NULL);
	if (!abs || access(abs, R_OK) < 0) {
		fprintf(stderr, "codesrcfs: cafile=%s: %s\n", cli->cafile, strerror(errno));
		free(abs);
		return -EINVAL;
	}
	free(cli->cafile);
	cli->cafile = abs;
	return 0;
}

static int load_config(struct mount *m, const struct cli *cli)
{
	char err[1024] = "";
	char *path = cli->config ? strdup(cli->config) : config_default_path();
	int r;

	r = config_load_profile(&m->conf, path, cli->config != NULL, cli->profile, err,
				sizeof(err));
	/* From here on the credentials live in m->conf alone: no child inherits them. */
	config_clear_env();
	if (r < 0)
		fprintf(stderr, "codesrcfs: %s\n", err[0] ? err : "cannot read the configuration");
	for (size_t k = 0; r == 0 && k < m->conf.nprov; k++)
		if (log_add_secret(m->conf.prov[k].secret) < 0 ||
		    log_add_secret(m->conf.prov[k].token) < 0) {
			fprintf(stderr, "codesrcfs: out of memory\n");
			r = -ENOMEM;
		}
	free(path);
	return r;
}

/* auto_unmount: fusermount3 stays beside the daemon and unmounts when it dies, so even a
 * kill -9 leaves no dead mount behind (with guard_mount for what it misses). */
static int add_mount_options(struct fuse_args *args, const struct cli *cli)
{
	if (fuse_opt_add_arg(args, "-ofsname=codesrcfs,subtype=codesrcfs,default_permissions,ro"))
		return -ENOMEM;
	if (!cli->noauto_unmount && fuse_opt_add_arg(args, "-oauto_unmount"))
		return -ENOMEM;
	return 0;
}

/* With auto_unmount, the fusermount3 that libfuse runs lives as long as the daemon and
 * inherits every descriptor not marked close-on-exec: the connections the check at mount
 * opened would stay open in it after the daemon closed them. */
static void cloexec_all(void)
{
	DIR *d;
	struct dirent *e;

	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	d = opendir("/proc/self/fd"); /* kernels before 5.11 */
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (fd > 2 && fd != dirfd(d))
			fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	}
	if (d)
		closedir(d);
}

static int setup(struct mount *m, struct fuse_args *args, struct cli *cli,
		 const struct fuse_cmdline_opts *fo)
{
	struct settings s;
	struct tree_opts to = {0};

	if (cli->show_secrets && cli->allow_other) {
		fprintf(stderr, "codesrcfs: show_secrets with allow_other would show every "
				"credential in meta.json to every user of this machine: refused\n");
		return -EINVAL;
	}
	if (parse_settings(cli, &s) < 0 || mountpoint_check(fo->mountpoint, cli->nonempty) < 0 ||
	    resolve_cafile(cli) < 0 || load_config(m, cli) < 0 || open_providers(m, &s, cli) < 0)
		return -EINVAL;
	to.dir_ttl = s.dir_ttl;
	to.attr_ttl = s.attr_ttl;
	to.neg_ttl = s.neg_ttl;
	to.parallel = (int)s.parallel;
	to.uid = getuid();
	to.gid = getgid();
	m->tree = tree_new(m->provs, m->nprovs, &to);
	if (!m->tree)
		return -ENOMEM;
	m->fs =
	    (struct fs){.tree = m->tree,
			.attr_ttl = (double)s.attr_ttl,
			.dir_attr_ttl = (double)(s.dir_ttl < s.attr_ttl ? s.dir_ttl : s.attr_ttl),
			.neg_ttl = (double)s.neg_ttl,
			.uid = to.uid,
			.gid = to.gid};
	if (add_mount_options(args, cli) < 0)
		return -ENOMEM;
	m->se = fuse_session_new(args, fs_operations(), sizeof(struct fuse_lowlevel_ops), &m->fs);
	if (!m->se)
		return -EINVAL; /* libfuse said why */
	if (cli->allow_other)
		log_msg(LOG_WARNING, "allow_other: every user of this machine can read what these "
				     "credentials can list");
	if (!cli->delay_connect && check_providers(m, fo->debug) < 0)
		return -EACCES;
	/* Before the mount shows: whoever sees it may stop us at once, and a default
	 * SIGTERM would leave the mount point dead. */
	if (fuse_set_signal_handlers(m->se) != 0)
		return -EIO;
	m->signals_set = 1;
	cloexec_all();
	if (fuse_session_mount(m->se, fo->mountpoint) != 0)
		return -EIO;
	if (fuseio_parallel_dirops(m->se) < 0)
		log_msg(LOG_WARNING, "the kernel serialises the requests of each directory: a "
				     "reader waiting behind another cannot be interrupted");
	return 0;
}

/* path, when relative, made absolute against the working directory: the daemon leaves it
 * for / (fuse_daemonize), and a log file is opened again on SIGHUP. */
static int make_absolute(const char *name, char **path)
{
	char *cwd, *abs = NULL;
	int r = -ENOMEM;

	if (!*path || !**path || **path == '/')
		return 0;
	cwd = get_current_dir_name();
	if (!cwd) {
		fprintf(stderr, "codesrcfs: cannot make %s=%s absolute: %s\n", name, *path,
			strerror(errno));
		return -errno;
	}
	if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") ? cwd : "", *path) >= 0) {
		free(*path);
		*path = abs;
		r = 0;
	}
	free(cwd);
	return r;
}

/* Every path option the daemon keeps; a new one is one more line. */
static int absolute_paths(struct cli *c)
{
	if (make_absolute("config", &c->config) < 0 || make_absolute("logfile", &c->logfile) < 0)
		return -EINVAL;
	return 0;
}

/* auto_unmount's other half: what fusermount3 misses (see mountpoint.c). */
static void guard_mount(const struct cli *c, const struct fuse_cmdline_opts *fo, char **argv)
{
	if (c->noauto_unmount || mountpoint_guard(fo->mountpoint, argv) == 0)
		return;
	log_msg(LOG_WARNING,
		"cannot guard %s: should this daemon die, fusermount3 -u %s clears "
		"the mount it leaves",
		fo->mountpoint, fo->mountpoint);
}

/* Without -f and logfile=, lines go to syslog; where nothing listens (a container, a
 * minimal system) they would vanish without a word. */
static void warn_lost_logs(const struct cli *c, const struct fuse_cmdline_opts *fo)
{
	if (fo->foreground || c->logfile || log_syslog_reachable())
		return;
	fprintf(stderr,
		"codesrcfs: warning: no syslog daemon listens on %s: the log of this mount is "
		"lost; use -o logfile=PATH (or -f) to keep it\n",
		_PATH_LOG);
}

/* codesrcfs --refresh PATH: the daemon serving PATH lists that directory again now and
 * answers what changed, as the value of an extended attribute only it serves; other
 * mounts are left alone. A single call with the largest buffer the kernel passes, so the
 * daemon lists once. */
static int refresh_main(int argc, char *argv[])
{
	const char *path;
	char *buf;
	ssize_t n;

	if (argc != 3) {
		fprintf(stderr, "codesrcfs: usage: codesrcfs --refresh PATH\n");
		return 1;
	}
	path = argv[2];
	buf = malloc(FS_XATTR_MAX);
	if (!buf) {
		fprintf(stderr, "codesrcfs: out of memory\n");
		return 1;
	}
	n = getxattr(path, FS_REFRESH_XATTR, buf, FS_XATTR_MAX);
	if (n < 0 && (errno == ENODATA || errno == ENOTSUP))
		fprintf(stderr, "codesrcfs: %s is not on a codesrcfs mount\n", path);
	else if (n < 0 && errno == ENOTDIR)
		fprintf(stderr,
			"codesrcfs: %s is not a directory that lists children (a cloud, "
			"workspace, organization or group)\n",
			path);
	else if (n < 0)
		fprintf(stderr, "codesrcfs: cannot refresh %s: %s\n", path, strerror(errno));
	else if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n || fflush(stdout) != 0) {
		fprintf(stderr, "codesrcfs: cannot write the changes: %s\n", strerror(errno));
		n = -1;
	}
	free(buf);
	return n < 0 ? 1 : 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fo = {0};
	struct cli cli = {0};
	struct mount m = {0};
	sigset_t hup;
	int ret = 1;

	/* No core dump and no ptrace by the same user: the memory holds the credentials. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Blocked before any thread exists, so every thread inherits the mask. */
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &hup, NULL);

	if (argc > 1 && !strcmp(argv[1], "--refresh"))
		return refresh_main(argc, argv);

	if (fuse_opt_parse(&args, &cli, cli_opts, cli_proc) != 0)
		goto out;
	if (cli.help || cli.version) {
		if (cli.help)
			usage(argv[0]);
		else
			printf("codesrcfs %s (libfuse %s)\n", CODESRCFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (absolute_paths(&cli) < 0 || fuse_parse_cmdline(&args, &fo) != 0)
		goto out;
	log_open(fo.debug, 1);
	if (cli.logfile && log_set_file(cli.logfile) < 0) {
		fprintf(stderr, "codesrcfs: cannot open log file %s: %s\n", cli.logfile,
			strerror(errno));
		goto out;
	}
	if (setup(&m, &args, &cli, &fo) < 0)
		goto out;
	/* Its engine thread would not survive the fork; its connections do. */
	http_pause(m.http);
	guard_mount(&cli, &fo, argv);
	warn_lost_logs(&cli, &fo);
	if (fuse_daemonize(fo.foreground) != 0)
		goto unmount;
	log_open(fo.debug, fo.foreground);
	ret = run_loop(&m, &fo);
	goto out;
unmount:
	fuse_session_unmount(m.se);
out:
	close_mount(&m);
	free(fo.mountpoint);
	free(cli.config);
	free(cli.dir_ttl);
	free(cli.attr_ttl);
	free(cli.neg_ttl);
	free(cli.timeout);
	free(cli.retries);
	free(cli.parallel);
	free(cli.profile);
	free(cli.logfile);
	free(cli.cafile);
	fuse_opt_free_args(&args);
	log_forget_secrets();
	return ret;
}
