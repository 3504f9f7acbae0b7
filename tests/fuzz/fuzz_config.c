/* libFuzzer target: the INI configuration file. The file is the user's, but a parser that
 * crashes or leaks on a typo is still a bug, and the file holds secrets worth not spilling.
 *
 * The input goes to a private temporary file (mode 0600, as config_load demands) and is
 * loaded from there: config_load takes a path, not a buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

extern char **environ;

/* Same prefixes as tests/integration/conftest.py: credentials from the environment would
 * make every input "valid" and hide the file's own paths. */
static const char *const cred_prefixes[] = {"ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_",
					    "VOLCENGINE_",    "VOLC_",	       "CODEUP_TOKEN"};

static char path[] = "/tmp/codesrcfs-fuzz-config-XXXXXX";
static char home[] = "/tmp/codesrcfs-fuzz-home-XXXXXX";
static int fd = -1;

static void unset_credentials(void)
{
	size_t i;
	int again = 1;

	/* unsetenv reshapes environ, so rescan from the start after each removal. */
	while (again) {
		char **e;

		again = 0;
		for (e = environ; *e && !again; e++) {
			for (i = 0; i < sizeof(cred_prefixes) / sizeof(*cred_prefixes); i++) {
				if (!strncmp(*e, cred_prefixes[i], strlen(cred_prefixes[i]))) {
					char *name = strndup(*e, strcspn(*e, "="));

					if (!name)
						abort();
					unsetenv(name);
					free(name);
					again = 1;
					break;
				}
			}
		}
	}
}

static void cleanup(void)
{
	unlink(path);
	rmdir(home);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	unset_credentials();
	/* config_load also reads the vendors' files under $HOME (~/.aliyun, ~/.volc): point
	 * HOME at an empty directory so the result depends on the input alone. */
	if (!mkdtemp(home) || setenv("HOME", home, 1))
		abort();
	/* mkstemp creates the file with mode 0600. */
	fd = mkstemp(path);
	if (fd < 0)
		abort();
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char err[256];
	size_t off = 0;

	if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET))
		abort();
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);

		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	memset(&c, 0, sizeof(c));
	config_load(&c, path, 1, err, sizeof(err));
	config_free(&c);
	return 0;
}
