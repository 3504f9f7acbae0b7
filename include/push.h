/* push: a file's bytes stored in the kernel's page cache as soon as the kernel learns the
 * file, so that its first read needs no round trip to the daemon. One thread of its own
 * sends them: a FUSE notification never comes from a request's thread. */
#ifndef CODESRCFS_PUSH_H
#define CODESRCFS_PUSH_H

#include <stdint.h>

#include "tree.h"

struct fuse_session;
struct push;

/* Push the files of t through session se. NULL when it cannot: files are then read. */
struct push *push_start(struct fuse_session *se, struct tree *t);
/* Queue file ino, which the kernel has just learned (p NULL: nothing to do). */
void push_file(struct push *p, uint64_t ino);
/* Stop, let go of what still waited, and free p; before the session ends. */
void push_stop(struct push *p);

#endif
