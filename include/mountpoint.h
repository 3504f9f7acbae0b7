/* mountpoint: the directory a mount goes on, checked before it does, and guarded after,
 * so that a daemon that dies leaves no dead mount behind. */
#ifndef CODESRCFS_MOUNTPOINT_H
#define CODESRCFS_MOUNTPOINT_H

struct mountpoint_entry {
	char dev[32];  /* major:minor, unique while the file system lives */
	char type[64]; /* fuse.codesrcfs, ext4, ... */
};

/* The last mount on mp (an absolute path) in the mountinfo file at path: 1 with *e, 0 when
 * none is listed, -errno when the file cannot be read. */
int mountpoint_find(const char *path, const char *mp, struct mountpoint_entry *e);
/* 0 when mp is a directory nothing is mounted on, empty unless nonempty; else one line on
 * stderr naming the problem (a dead mount with the command that clears it) and -errno. */
int mountpoint_check(const char *mp, int nonempty);
/* Start the process that unmounts mp, just mounted, once every copy of this daemon is
 * gone with the mount still in place (kill -9, a crash); it takes main's argv to show its
 * own name in ps. 0 or -errno. */
int mountpoint_guard(const char *mp, char **argv);

#endif
