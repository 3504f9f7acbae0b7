/* fuseio: libfuse's custom io over the session's own device, for one reason.
 *
 * libfuse wants FUSE_CAP_PARALLEL_DIROPS by default but, before 3.17 (Debian 12 has 3.14),
 * never passes FUSE_PARALLEL_DIROPS in its INIT answer. The kernel then takes a mutex of a
 * directory's inode around every look-up and readdir in it, uninterruptibly: a reader of a
 * directory behind another whose request waits on the network can be neither answered nor
 * interrupted (not even by SIGKILL) until that one is (docs/design.md §3, Interrupts). The
 * tree serves concurrent requests of one directory itself (one fetch, the others wait
 * interruptibly), so the flag is set here on its way to the kernel. */
#include <errno.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <unistd.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "fuseio.h"

/* The INIT request seen (its unique), and whether the kernel offered parallel dirops. One
 * session per process; INIT comes once, before any other request. */
static uint64_t fuseio_init_unique;
static int fuseio_offered;

static ssize_t fuseio_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;
	const struct fuse_init_in *init = (const void *)(in + 1);

	(void)userdata;
	if (n >= (ssize_t)(sizeof(*in) + sizeof(*init)) && in->opcode == FUSE_INIT) {
		__atomic_store_n(&fuseio_offered, !!(init->flags & FUSE_PARALLEL_DIROPS),
				 __ATOMIC_SEQ_CST);
		__atomic_store_n(&fuseio_init_unique, in->unique, __ATOMIC_SEQ_CST);
	}
	return n;
}

static ssize_t fuseio_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	const struct fuse_out_header *out = iov[0].iov_base;
	struct fuse_init_out *init;

	(void)userdata;
	/* libfuse sends the header and the INIT answer as two pieces, the answer its own copy. */
	if (count >= 2 && iov[0].iov_len >= sizeof(*out) && out->error == 0 &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(init->flags) &&
	    out->unique == __atomic_load_n(&fuseio_init_unique, __ATOMIC_SEQ_CST) &&
	    __atomic_load_n(&fuseio_offered, __ATOMIC_SEQ_CST)) {
		init = iov[1].iov_base;
		init->flags |= FUSE_PARALLEL_DIROPS;
	}
	return writev(fd, iov, count);
}

int fuseio_parallel_dirops(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {.read = fuseio_read, .writev = fuseio_writev};

	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}
