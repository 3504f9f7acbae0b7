#define _GNU_SOURCE /* close_range, pipe2 */
/* mountpoint: checked before the mount (empty, nothing mounted there, no dead mount) and
 * guarded after it.
 *
 * Why a guard of our own beside libfuse's auto_unmount: that option leaves the job to
 * fusermount3, which (3.14) takes the daemon for dead only when opening the mount point
 * fails with ENOTCONN. Once the daemon has answered opendir with ENOSYS (fs.c), the kernel
 * opens directories without asking it, so that open succeeds on a dead mount and the
 * mount stays; and a user's mount without allow_other cannot be opened by fusermount3 at
 * all. The guard asks the mount nothing: it waits for the end of a pipe whose write end
 * only the daemon holds, and then unmounts if the same file system is still there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "mountpoint.h"

#define MOUNTINFO "/proc/self/mountinfo"

#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static void mountpoint_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* One line: id parent MAJ:MIN root MOUNTPOINT options [optional fields...] - TYPE source
 * super-options. 1 when it is a mount on mp, with e filled. */
static int mountpoint_line(char *line, const char *mp, struct mountpoint_entry *e)
{
	char *save = NULL, *dev = NULL, *tok = strtok_r(line, " \n", &save);
	int field = 0, dash = 0;

	for (; tok; tok = strtok_r(NULL, " \n", &save), field++) {
		if (field == 2) {
			dev = tok;
		} else if (field == 4) {
			mountpoint_unescape(tok);
			if (strcmp(tok, mp) != 0)
				return 0;
		} else if (field > 5 && dash) {
			snprintf(e->dev, sizeof(e->dev), "%s", dev);
			snprintf(e->type, sizeof(e->type), "%s", tok);
			return 1;
		} else if (field > 5 && strcmp(tok, "-") == 0) {
			dash = 1;
		}
	}
	return 0;
}

int mountpoint_find(const char *path, const char *mp, struct mountpoint_entry *e)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return -errno;
	/* Later lines are later mounts: the last one on mp is the one in sight. */
	while (getline(&line, &cap, f) > 0)
		if (mountpoint_line(line, mp, e))
			found = 1;
	free(line);
	fclose(f);
	return found;
}

/* 1 when the directory holds nothing but . and ..; one we cannot read counts as empty:
 * fusermount3 judges who may mount where. */
static int mountpoint_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *ent;
	int empty = 1;

	if (!d)
		return 1;
	while (empty && (ent = readdir(d)))
		empty = strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* Something is mounted on mp: a dead FUSE mount (statfs always asks the daemon, where a
 * stat may be answered from the kernel's cache), or a live one. */
static int mountpoint_taken(const char *mp, const struct mountpoint_entry *e)
{
	struct statfs sf;

	if (statfs(mp, &sf) < 0 && errno == ENOTCONN) {
		fprintf(stderr,
			"codesrcfs: mount point %s: a dead %s mount is still there (Transport "
			"endpoint is not connected); clear it with: fusermount3 -u %s\n",
			mp, strcmp(e->type, "fuse.codesrcfs") == 0 ? "codesrcfs" : e->type, mp);
		return -ENOTCONN;
	}
	fprintf(stderr,
		"codesrcfs: mount point %s is already a mount point (%s): unmount it first, or "
		"choose another directory\n",
		mp, e->type);
	return -EBUSY;
}

int mountpoint_check(const char *mp, int nonempty)
{
	struct mountpoint_entry e;
	struct stat st;

	if (!mp) {
		fprintf(stderr, "codesrcfs: no mount point given (see codesrcfs --help)\n");
		return -EINVAL;
	}
	if (mountpoint_find(MOUNTINFO, mp, &e) == 1)
		return mountpoint_taken(mp, &e);
	if (stat(mp, &st) < 0) {
		fprintf(stderr, "codesrcfs: mount point %s: %s\n", mp, strerror(errno));
		return -ENOTDIR;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "codesrcfs: mount point %s: not a directory\n", mp);
		return -ENOTDIR;
	}
	if (!nonempty && !mountpoint_empty(mp)) {
		fprintf(stderr,
			"codesrcfs: mount point %s is not empty: choose an empty directory, or "
			"add -o nonempty to mount over what it holds\n",
			mp);
		return -ENOTEMPTY;
	}
	return 0;
}

/* ps and pgrep -f tell the guard from the daemon: its command line, the memory argv's
 * strings fill one after the other, becomes its name. */
static void guard_title(char **argv)
{
	char *end;

	if (!argv || !argv[0])
		return;
	end = argv[0];
	for (int i = 0; argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	memset(argv[0], 0, (size_t)(end - argv[0]));
	snprintf(argv[0], (size_t)(end - argv[0]), "codesrcfs-guard");
}

/* Keep fd (as 3) and nothing else of the daemon's: not its /dev/fuse, which would keep
 * a dead mount alive, nor the caller's terminal or pipes. */
static void guard_detach(int fd, char **argv)
{
	int null;

	prctl(PR_SET_NAME, "codesrcfs-guard");
	guard_title(argv);
	if (fd < 3)
		fd = fcntl(fd, F_DUPFD, 3);
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (fd != 3)
		dup2(fd, 3);
	if (close_range(4, ~0U, 0) < 0)
		for (long i = 4, n = sysconf(_SC_OPEN_MAX); i < n; i++)
			close((int)i);
	setsid();
	signal(SIGTERM, SIG_IGN); /* it ends when the daemon does, not before */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}

static void guard_run(const char *mp, const char *dev, int fd, char **argv)
{
	struct mountpoint_entry e;
	char c;

	guard_detach(fd, argv);
	while (read(3, &c, 1) < 0 && errno == EINTR)
		;
	close(3);
	/* Same device: the mount this daemon made, not one made on mp since. */
	if (mountpoint_find(MOUNTINFO, mp, &e) != 1 || strcmp(e.dev, dev) != 0)
		_exit(0);
	if (geteuid() == 0) {
		umount2(mp, MNT_DETACH | UMOUNT_NOFOLLOW);
	} else {
		char *fm[] = {"fusermount3", "-u", "-z", "-q", "--", (char *)mp, NULL};

		execv("/usr/bin/fusermount3", fm);
		execvp("fusermount3", fm);
	}
	_exit(0);
}

int mountpoint_guard(const char *mp, char **argv)
{
	struct mountpoint_entry e;
	int p[2], err;
	pid_t pid;

	if (mountpoint_find(MOUNTINFO, mp, &e) != 1)
		return -ENOENT;
	/* The write end stays open for as long as the daemon lives, fuse_daemonize's fork
	 * included; close-on-exec keeps it out of the fusermount3 that libfuse runs. */
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid == 0)
		guard_run(mp, e.dev, p[0], argv);
	err = pid < 0 ? -errno : 0;
	close(p[0]);
	if (err)
		close(p[1]);
	return err;
}
