/* fuseio: the session's reads and writes of /dev/fuse, through which the daemon asks the
 * kernel for what libfuse means to ask and does not (libfuse before 3.17): look-ups and
 * readdirs of one directory in parallel. */
#ifndef CODESRCFS_FUSEIO_H
#define CODESRCFS_FUSEIO_H

struct fuse_session;

/* Take over the reads and writes of se, mounted already, so that its INIT answer asks for
 * parallel look-ups and readdirs when the kernel offers them. 0 or -errno (se unchanged). */
int fuseio_parallel_dirops(struct fuse_session *se);

#endif
