/* notify: what the daemon tells the kernel unasked, from one thread of its own (a
 * notification sent from a request's thread can wait on a lock the kernel holds for that
 * very request). It stores a file's bytes in the page cache as soon as the kernel learns
 * the file, and passes on what the tree says has gone stale. */
#ifndef CODESRCFS_NOTIFY_H
#define CODESRCFS_NOTIFY_H

#include <stdint.h>

#include "tree.h"

struct fuse_session;
struct notify;

/* Notify the kernel of session se about tree t, whose watch this becomes. NULL when it
 * cannot: files are then read, and stale copies last until their timeouts. */
struct notify *notify_start(struct fuse_session *se, struct tree *t);
/* Queue file ino, which the kernel has just learned, for its bytes (n NULL: nothing). */
void notify_file(struct notify *n, uint64_t ino);
/* Wait (a bounded while) until the kernel has been told every stale copy queued so far, so
 * that what a request changed shows to the next reader (n NULL: return at once). */
void notify_sync(struct notify *n);
/* Stop watching t, let go of what still waited, and free n; before the session ends. */
void notify_stop(struct notify *n);

#endif
