/* mountpoint: reading /proc/self/mountinfo, whose mount points are escaped. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mountpoint.h"

/* Lines as the kernel writes them: optional fields of any number before the "-". */
static const char mountinfo[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "40 27 0:35 / /mnt/my\\040src rw,nosuid master:3 shared:9 - tmpfs none rw\n"
    "41 27 0:36 / /mnt/tab\\011and\\134slash rw - fuse.sshfs host: rw\n"
    "42 40 0:37 / /mnt/my\\040src ro,nosuid,nodev - fuse.codesrcfs codesrcfs ro\n"
    "43 27 0:38 / /mnt/truncated rw\n";

static void write_mountinfo(char *path)
{
	int fd;

	strcpy(path, "/tmp/test_mountpoint.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, mountinfo, sizeof(mountinfo) - 1), sizeof(mountinfo) - 1);
	close(fd);
}

static void test_find_last_mount_with_escapes(void **state)
{
	char path[64];
	struct mountpoint_entry e;

	(void)state;
	write_mountinfo(path);
	/* Two mounts on one point: the later one is what a path reaches. */
	assert_int_equal(mountpoint_find(path, "/mnt/my src", &e), 1);
	assert_string_equal(e.dev, "0:37");
	assert_string_equal(e.type, "fuse.codesrcfs");
	assert_int_equal(mountpoint_find(path, "/mnt/tab\tand\\slash", &e), 1);
	assert_string_equal(e.type, "fuse.sshfs");
	assert_int_equal(mountpoint_find(path, "/", &e), 1);
	assert_string_equal(e.type, "ext4");
	unlink(path);
}

static void test_find_nothing(void **state)
{
	char path[64];
	struct mountpoint_entry e;

	(void)state;
	write_mountinfo(path);
	assert_int_equal(mountpoint_find(path, "/mnt/my\\040src", &e), 0); /* as written */
	assert_int_equal(mountpoint_find(path, "/mnt/my", &e), 0);
	assert_int_equal(mountpoint_find(path, "/mnt/truncated", &e), 0); /* no "-" field */
	assert_int_equal(mountpoint_find(path, "/nowhere", &e), 0);
	unlink(path);
	assert_int_equal(mountpoint_find(path, "/", &e), -ENOENT);
}

static void test_find_in_this_process(void **state)
{
	struct mountpoint_entry e;

	(void)state;
	assert_int_equal(mountpoint_find("/proc/self/mountinfo", "/proc", &e), 1);
	assert_string_equal(e.type, "proc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find_last_mount_with_escapes),
	    cmocka_unit_test(test_find_nothing),
	    cmocka_unit_test(test_find_in_this_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
