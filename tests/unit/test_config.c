/* config: the INI file, the environment, defaults and every refusal. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfgcheck.h"
#include "config.h"
#include "provider.h"

#include "conf_helpers.h"

/* The section of the cloud named name in config c. */
#define PROV(c, name) (*config_prov(&(c), name))

static char tmpdir[] = "/tmp/codesrcfs-test-config-XXXXXX";

static int clear_env(void **state)
{
	(void)state;
	unset_cloud_env(providers);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return remove_tree(tmpdir);
}

/* Loads text as an explicit file; returns config_load's result, err filled. */
static int load_text(struct config *c, const char *text, mode_t mode, char *err, size_t errlen,
		     char **path_out)
{
	char *path = write_file_in(tmpdir, text, mode);
	int rc = config_load(c, path, 1, err, errlen);

	if (path_out)
		*path_out = path;
	else
		free(path);
	return rc;
}

/* Expects text to be refused with an error that holds want (where "@" stands for the
 * file's path) and no secret. */
static void expect_error(const char *text, mode_t mode, const char *want)
{
	struct config c;
	char err[512], *path, *expect, *at;

	memset(err, 0, sizeof(err));
	assert_int_equal(load_text(&c, text, mode, err, sizeof(err), &path), -EINVAL);
	expect = strdup(want);
	while ((at = strchr(expect, '@'))) {
		char *next;

		*at = '\0';
		assert_true(asprintf(&next, "%s%s%s", expect, path, at + 1) > 0);
		free(expect);
		expect = next;
	}
	if (!strstr(err, expect))
		fail_msg("error \"%s\" lacks \"%s\"", err, expect);
	assert_null(strstr(err, SECRET));
	assert_null(strchr(err, '\n'));
	assert_null(c.path);
	assert_null(c.prov); /* nothing is left of a refused configuration */
	assert_int_equal(c.nprov, 0);
	free(expect);
	free(path);
}

static const char good_conf[] =
    "# codesrcfs test configuration\n"
    "; another comment\n"
    "\n"
    "[pai]\n"
    "access_key_id     = LTAItest\n"
    "access_key_secret = " SECRET "pai   ; inline comment\n"
    "security_token    =                     ; optional, STS\n"
    "region            = cn-shanghai\n"
    "endpoint          = https://aiworkspace.cn-shanghai.aliyuncs.com/   ; optional\n"
    "workspaces        = 1234, 5678          ; optional; default: all visible\n"
    "\n"
    "  [ volc ]  \n"
    "\taccess_key = AKtest\n"
    "secret_key=" SECRET "volc\n"
    "security_token = " SECRET "sts\n"
    "workspaces = 000ce713ebd2487a9b4666c7ed81abcd\n"
    "[codeup]\n"
    "token         = pt-" SECRET "\n"
    "organizations = 99d1abcd71d4 aaaa,bbbb\n";

static void test_good_file(void **state)
{
	struct config c;
	char err[256] = "", *path;

	(void)state;
	assert_int_equal(load_text(&c, good_conf, 0600, err, sizeof(err), &path), 0);
	assert_string_equal(err, "");
	assert_string_equal(c.path, path);
	assert_true(PROV(c, "pai").enabled);
	assert_string_equal(PROV(c, "pai").key_id, "LTAItest");
	assert_string_equal(PROV(c, "pai").secret, SECRET "pai");
	assert_null(PROV(c, "pai").token);
	assert_string_equal(PROV(c, "pai").region, "cn-shanghai");
	assert_string_equal(PROV(c, "pai").endpoint,
			    "https://aiworkspace.cn-shanghai.aliyuncs.com");
	assert_int_equal(PROV(c, "pai").nscopes, 2);
	assert_string_equal(PROV(c, "pai").scopes[0], "1234");
	assert_string_equal(PROV(c, "pai").scopes[1], "5678");
	assert_true(PROV(c, "volc").enabled);
	assert_string_equal(PROV(c, "volc").key_id, "AKtest");
	assert_string_equal(PROV(c, "volc").secret, SECRET "volc");
	assert_string_equal(PROV(c, "volc").token, SECRET "sts");
	assert_string_equal(PROV(c, "volc").region, "cn-beijing");
	assert_string_equal(PROV(c, "volc").endpoint, "https://open.volcengineapi.com");
	assert_int_equal(PROV(c, "volc").nscopes, 1);
	assert_true(PROV(c, "codeup").enabled);
	assert_null(PROV(c, "codeup").key_id);
	assert_string_equal(PROV(c, "codeup").secret, "pt-" SECRET);
	assert_string_equal(PROV(c, "codeup").endpoint, "https://openapi-rdc.aliyuncs.com");
	assert_int_equal(PROV(c, "codeup").nscopes, 3);
	assert_string_equal(PROV(c, "codeup").scopes[2], "bbbb");
	config_free(&c);
	config_free(&c); /* idempotent */
	free(path);
}

static void test_defaults(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(load_text(&c,
				   "[pai]\naccess_key_id=a\naccess_key_secret=" SECRET "\n"
				   "[volc]\naccess_key=b\nsecret_key=" SECRET "\n"
				   "[codeup]\ntoken=" SECRET "\n",
				   0600, err, sizeof(err), NULL),
			 0);
	assert_string_equal(PROV(c, "pai").region, "cn-hangzhou");
	assert_string_equal(PROV(c, "pai").endpoint,
			    "https://aiworkspace.cn-hangzhou.aliyuncs.com");
	assert_null(PROV(c, "pai").scopes);
	assert_int_equal(PROV(c, "pai").nscopes, 0);
	assert_string_equal(PROV(c, "volc").region, "cn-beijing");
	assert_string_equal(PROV(c, "volc").endpoint, "https://open.volcengineapi.com");
	assert_string_equal(PROV(c, "codeup").endpoint, "https://openapi-rdc.aliyuncs.com");
	assert_null(PROV(c, "codeup").scopes);
	config_free(&c);
}

static void test_crlf_bom_and_lists(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(load_text(&c,
				   "\xef\xbb\xbf[codeup]\r\ntoken = " SECRET "\r\n"
				   "organizations = a, b\tc,,d ,a\r\n",
				   0600, err, sizeof(err), NULL),
			 0);
	assert_int_equal(PROV(c, "codeup").nscopes, 4);
	assert_string_equal(PROV(c, "codeup").scopes[0], "a");
	assert_string_equal(PROV(c, "codeup").scopes[1], "b");
	assert_string_equal(PROV(c, "codeup").scopes[2], "c");
	assert_string_equal(PROV(c, "codeup").scopes[3], "d");
	assert_false(PROV(c, "pai").enabled);
	assert_false(PROV(c, "volc").enabled);
	config_free(&c);
}

static void test_unknown_section_and_key(void **state)
{
	(void)state;
	expect_error("[pai]\naccess_key_id = x\n[foo]\n", 0600,
		     "@:3: unknown section [foo] (expected pai, volc or codeup)");
	expect_error("[codeup]\n\n; c\nregion = x\n", 0600,
		     "@:4: unknown key 'region' in [codeup]");
	expect_error("[pai]\nfoo = bar\n", 0600, "@:2: unknown key 'foo' in [pai]");
	expect_error("[volc]\naccess_key_id = x\n", 0600,
		     "@:2: unknown key 'access_key_id' in [volc]");
	/* A pasted secret must not come back as a "key" name. */
	expect_error("[volc]\nTmpJ" SECRET "aGVsbG8==\n", 0600, "@:2: unknown key in [volc]");
	expect_error("[" SECRET "]\n", 0600, "@:1: unknown section");
	expect_error("token = x\n", 0600, "@:1: key outside of any section");
	expect_error("[pai\n", 0600, "@:1: malformed section header");
	expect_error("[pai] x\n", 0600, "@:1: malformed section header");
	expect_error("[pai]\naccess_key_id = a\naccess_key_id = b\n", 0600,
		     "@:3: 'access_key_id' set twice in [pai]");
}

/* A name comes back as written: capitals kept, bytes outside printable ASCII escaped, with
 * the names expected; one that looks like a pasted credential does not come back. */
static void test_names_as_written(void **state)
{
	(void)state;
	expect_error("[PAI]\n", 0600, "@:1: unknown section [PAI] (expected pai, volc or codeup)");
	expect_error("[codeup]\nToken = x\n", 0600,
		     "@:2: unknown key 'Token' in [codeup] (expected token, endpoint or "
		     "organizations)");
	expect_error("[pai]\nAccess_Key_ID = x\n", 0600,
		     "@:2: unknown key 'Access_Key_ID' in [pai] (expected access_key_id, "
		     "access_key_secret, security_token, region, endpoint or workspaces)");
	expect_error("[codeup]\nto\x01k\xc3\xa9n = x\n", 0600,
		     "@:2: unknown key 'to\\x01k\\xc3\\xa9n' in [codeup]");
	expect_error("[p\x7f\\ai]\n", 0600, "@:1: unknown section [p\\x7f\\x5cai] (expected");
	expect_error("[volc]\nsecret-key = x\n", 0600, "@:2: unknown key 'secret-key' in [volc]");
	expect_error("[pai]\nregion2 = x\n", 0600, "@:2: unknown key 'region2' in [pai]");
	/* Pasted credentials, with the '=' of their base64 padding. */
	expect_error("[volc]\nTmpJ" SECRET "aGVsbG8==\n", 0600,
		     "@:2: unknown key in [volc] (not shown: it looks like a credential; expected "
		     "access_key, secret_key");
	expect_error("[codeup]\nabcdefghij" SECRET "klmnop=\n", 0600, "not shown");
	expect_error("[codeup]\nx" SECRET "abcdefghijklmnopqrstuvw=\n", 0600, "not shown");
	expect_error("[codeup]\nAbcDefGhi9=\n", 0600, "not shown");
	expect_error("[" SECRET "]\n", 0600,
		     "@:1: unknown section (not shown: it looks like a credential; expected pai, "
		     "volc or codeup)");
	/* "key: value" is no key, whatever follows the colon. */
	expect_error("[pai]\naccess_key_secret:abc" SECRET "=\n", 0600,
		     "@:2: expected 'key = value'");
}

static void test_garbage_line(void **state)
{
	(void)state;
	expect_error("[pai]\nthis is not valid\n", 0600,
		     "@:2: expected 'key = value', '[section]' or a comment");
	expect_error("[pai]\naccess_key_secret: " SECRET "\n", 0600, "@:2: expected");
	expect_error("[pai]\naccess key secret = " SECRET "\n", 0600,
		     "@:2: expected 'key = value'");
	expect_error("[pai]\n= " SECRET "\n", 0600, "@:2: expected 'key = value'");
}

static void test_bad_values(void **state)
{
	char *big, *text;

	(void)state;
	expect_error("[pai]\naccess_key_secret = " SECRET "\x01x\n", 0600,
		     "@:2: value of 'access_key_secret' in [pai] contains control characters");
	big = malloc(5001);
	memset(big, 'A', 5000);
	big[5000] = '\0';
	assert_true(asprintf(&text, "[codeup]\ntoken = %s\n", big) > 0);
	expect_error(text, 0600, "@:2: value of 'token' in [codeup] is too long");
	free(text);
	free(big);
	expect_error("[pai]\naccess_key_id=a\naccess_key_secret=" SECRET "\nregion=cn/evil\n", 0600,
		     "[pai] region is not a valid region id");
}

static void test_half_credentials(void **state)
{
	(void)state;
	expect_error("[pai]\naccess_key_id = LTAIx\n", 0600,
		     "[pai] access_key_secret is missing (access_key_id is set)");
	expect_error("[pai]\naccess_key_secret = " SECRET "\n", 0600,
		     "[pai] access_key_id is missing (access_key_secret is set)");
	expect_error("[volc]\naccess_key = AK\n", 0600,
		     "[volc] secret_key is missing (access_key is set)");
	expect_error("[volc]\nsecret_key = " SECRET "\n", 0600,
		     "[volc] access_key is missing (secret_key is set)");
	/* The file's half is completed by nothing in the environment either. */
	setenv("VOLCENGINE_SECRET_KEY", SECRET "env", 1);
	expect_error("[pai]\naccess_key_id = LTAIx\n", 0600,
		     "[pai] access_key_secret is missing (access_key_id is set)");
}

static void test_group_readable_refused(void **state)
{
	static const char text[] = "[pai]\naccess_key_id = a\naccess_key_secret = " SECRET "\n";

	(void)state;
	expect_error(text, 0644,
		     "@: holds credentials but is readable by group or others (mode 0644); "
		     "run chmod 600 @");
	expect_error(text, 0640, "(mode 0640)");
	expect_error("[codeup]\ntoken = " SECRET "\n", 0604, "(mode 0604)");
	expect_error("[volc]\nsecurity_token = " SECRET "\n", 0660, "(mode 0660)");
}

/* Whatever the file holds, no one but its owner may change it: an endpoint alone decides
 * where the environment's credentials are sent. */
static void test_writable_by_others_refused(void **state)
{
	(void)state;
	setenv("CODEUP_TOKEN", SECRET, 1);
	expect_error("[codeup]\nendpoint = http://127.0.0.1:9\n", 0666,
		     "@: can be changed by group or others (mode 0666); run chmod go-w @");
	expect_error("[codeup]\nendpoint = http://127.0.0.1:9\n", 0620, "(mode 0620)");
	expect_error("[codeup]\nendpoint = http://127.0.0.1:9\n", 0602, "(mode 0602)");
}

/* Ids that are no ids: "." and ".." would be dot segments of a request path. */
static void test_dot_scopes_refused(void **state)
{
	char *text, big[300];

	(void)state;
	expect_error("[codeup]\ntoken = " SECRET "\norganizations = org-1, ..\n", 0600,
		     "@:3: value of 'organizations' in [codeup] lists '.' or '..', which is no id");
	expect_error("[pai]\nworkspaces = .\n", 0600, "@:2: value of 'workspaces' in [pai] lists");
	memset(big, 'w', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_true(asprintf(&text, "[volc]\nworkspaces = a %s\n", big) > 0);
	expect_error(text, 0600,
		     "@:2: value of 'workspaces' in [volc] holds an id that is too long");
	free(text);
}

static void test_env_dot_scope_refused(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	setenv("CODEUP_TOKEN", SECRET, 1);
	setenv("ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID", "..", 1);
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment variable ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID lists "
				 "'.' or '..', which is no id");
}

/* Key ids and endpoints are not secrets: such a file may be world-readable. */
static void test_readable_without_secrets(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET, 1);
	assert_int_equal(load_text(&c, "[pai]\naccess_key_id = LTAIx\nsecurity_token =\n", 0644,
				   err, sizeof(err), NULL),
			 0);
	assert_true(PROV(c, "pai").enabled);
	config_free(&c);
}

static void test_missing_and_directory(void **state)
{
	struct config c;
	char err[256], *path;

	(void)state;
	assert_true(asprintf(&path, "%s/does-not-exist", tmpdir) > 0);
	assert_int_equal(config_load(&c, path, 1, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	/* The default file may be absent: the environment alone is fine. */
	setenv("CODEUP_TOKEN", SECRET, 1);
	assert_int_equal(config_load(&c, path, 0, err, sizeof(err)), 0);
	assert_null(c.path);
	assert_true(PROV(c, "codeup").enabled);
	config_free(&c);
	free(path);
	assert_true(asprintf(&path, "%s/nodir/config", tmpdir) > 0);
	assert_int_equal(config_load(&c, path, 0, err, sizeof(err)), 0);
	config_free(&c);
	free(path);
	assert_int_equal(config_load(&c, tmpdir, 1, err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, "Is a directory"));
	assert_int_equal(config_load(&c, tmpdir, 0, err, sizeof(err)), -EISDIR);
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), 0);
	assert_null(c.path);
	config_free(&c);
}

static void test_no_provider(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "no credentials configured for any provider (see codesrcfs(1))");
	expect_error("# nothing\n[pai]\nregion = cn-hangzhou\n[codeup]\norganizations = x\n", 0600,
		     "no credentials configured for any provider (see codesrcfs(1))");
}

static void test_endpoint_in_file(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	expect_error("[codeup]\ntoken = " SECRET "\nendpoint = http://example.com\n", 0600,
		     "@:3: [codeup] endpoint may use http:// only for a loopback host");
	expect_error("[codeup]\ntoken=" SECRET "\nendpoint = https://u:" SECRET "@example.com\n",
		     0600, "@:3: [codeup] endpoint must not contain a user name or password");
	assert_int_equal(load_text(&c,
				   "[codeup]\ntoken = " SECRET "\n"
				   "endpoint = http://127.0.0.1:8080/ ; emulator\n"
				   "[volc]\naccess_key=a\nsecret_key=" SECRET "\n"
				   "endpoint=http://[::1]:9000\n",
				   0600, err, sizeof(err), NULL),
			 0);
	assert_string_equal(PROV(c, "codeup").endpoint, "http://127.0.0.1:8080");
	assert_string_equal(PROV(c, "volc").endpoint, "http://[::1]:9000");
	config_free(&c);
}

static void test_check_endpoint(void **state)
{
	static const char *const good[] = {
	    "https://example.com",
	    "https://example.com/",
	    "https://example.com:8443",
	    "HTTPS://Example.COM",
	    "https://[2001:db8::1]:443",
	    "https://10.0.0.1",
	    "http://127.0.0.1",
	    "http://127.1.2.3:8080/",
	    "http://localhost",
	    "http://LOCALHOST:9000",
	    "http://[::1]",
	    "http://[::1]:8080/",
	};
	static const char *const bad[] = {
	    "",
	    "example.com",
	    "http://example.com",
	    "http://10.0.0.1",
	    "http://128.0.0.1",
	    "http://localhost.evil.com",
	    "http://127.0.0.1.evil.com",
	    "http://[::2]",
	    "http://::1",
	    "ftp://example.com",
	    "file:///etc/passwd",
	    "https://",
	    "https:///path",
	    "https://:443",
	    "https://user@example.com",
	    "https://user:pw@example.com",
	    "https://example.com/path",
	    "https://example.com//",
	    "https://example.com?x=1",
	    "https://example.com#frag",
	    "https://example.com:0",
	    "https://example.com:65536",
	    "https://example.com:",
	    "https://example.com:+80",
	    "https://example.com:8o",
	    "https://exa mple.com",
	    "https://example.com\n",
	    "https://[::1",
	    "https://[::1]x",
	    "https://[zz]",
	    "https://ex%41mple.com",
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (cfgcheck_endpoint(good[i], err, sizeof(err)))
			fail_msg("refused %s: %s", good[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (cfgcheck_endpoint(bad[i], err, sizeof(err)) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
		assert_true(err[0] != '\0');
		assert_null(strstr(err, "pw"));
	}
	assert_int_equal(cfgcheck_endpoint(NULL, NULL, 0), -EINVAL);
}

static void test_env_overrides_file(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid", 1);
	setenv("ALIBABA_CLOUD_REGION_ID", "cn-shenzhen", 1);
	setenv("VOLCENGINE_REGION", "cn-shanghai", 1);
	setenv("ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID", "org1,org2", 1);
	assert_int_equal(load_text(&c,
				   "[pai]\naccess_key_id = fileid\naccess_key_secret = " SECRET
				   "\nregion = cn-hangzhou\n"
				   "[volc]\naccess_key = a\nsecret_key = " SECRET "\n"
				   "[codeup]\ntoken = " SECRET "\norganizations = fileorg\n",
				   0600, err, sizeof(err), NULL),
			 0);
	assert_string_equal(PROV(c, "pai").key_id, "envid");
	assert_string_equal(PROV(c, "pai").secret, SECRET);
	assert_string_equal(PROV(c, "pai").region, "cn-shenzhen");
	assert_string_equal(PROV(c, "pai").endpoint,
			    "https://aiworkspace.cn-shenzhen.aliyuncs.com");
	assert_string_equal(PROV(c, "volc").region, "cn-shanghai");
	assert_int_equal(PROV(c, "codeup").nscopes, 2);
	assert_string_equal(PROV(c, "codeup").scopes[1], "org2");
	config_free(&c);
}

/* Where each credential and the list of ids came from, as a refusal at mount names them. */
static void test_origins_in_file_and_environment(void **state)
{
	static const char text[] =
	    "[pai]\naccess_key_id = fileid\n; comment\naccess_key_secret = " SECRET
	    "\nsecurity_token = " SECRET "sts\nworkspaces = 1, 2\n"
	    "[codeup]\ntoken = " SECRET "\norganizations = o\n";
	struct config c;
	char err[256], buf[512], *path, *want;

	(void)state;
	assert_int_equal(load_text(&c, text, 0600, err, sizeof(err), &path), 0);
	config_describe_creds(&PROV(c, "pai"), buf, sizeof(buf));
	assert_true(asprintf(&want,
			     "access_key_id from %s:2, access_key_secret from %s:4, "
			     "security_token from %s:5",
			     path, path, path) > 0);
	assert_string_equal(buf, want);
	free(want);
	config_describe_scopes(&PROV(c, "pai"), buf, sizeof(buf));
	assert_true(asprintf(&want, "workspaces from %s:6", path) > 0);
	assert_string_equal(buf, want);
	free(want);
	config_describe_creds(&PROV(c, "volc"), buf, sizeof(buf));
	assert_string_equal(buf, ""); /* nothing configured */
	config_describe_scopes(&PROV(c, "volc"), buf, sizeof(buf));
	assert_string_equal(buf, "");
	config_free(&c);

	/* The environment wins key by key, and says so; the file's token goes with its pair. */
	setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid", 1);
	setenv("ALICLOUD_ACCESS_KEY_SECRET", SECRET "env", 1);
	setenv("CODEUP_TOKEN", SECRET "envtoken", 1);
	setenv("ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID", "o1,o2", 1);
	assert_int_equal(config_load(&c, path, 1, err, sizeof(err)), 0);
	config_describe_creds(&PROV(c, "pai"), buf, sizeof(buf));
	assert_string_equal(buf,
			    "access_key_id from ALIBABA_CLOUD_ACCESS_KEY_ID in the environment, "
			    "access_key_secret from ALICLOUD_ACCESS_KEY_SECRET in the "
			    "environment");
	assert_null(PROV(c, "pai").token_from);
	config_describe_creds(&PROV(c, "codeup"), buf, sizeof(buf));
	assert_string_equal(buf, "token from CODEUP_TOKEN in the environment");
	config_describe_scopes(&PROV(c, "codeup"), buf, sizeof(buf));
	assert_string_equal(buf, "organizations from ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID in the "
				 "environment");
	assert_null(strstr(buf, SECRET));
	config_free(&c);

	/* Half from each: each half names its own origin. */
	clear_env(NULL);
	setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET "env", 1);
	assert_int_equal(config_load(&c, path, 1, err, sizeof(err)), 0);
	config_describe_creds(&PROV(c, "pai"), buf, sizeof(buf));
	assert_true(asprintf(&want,
			     "access_key_id from %s:2, access_key_secret from "
			     "ALIBABA_CLOUD_ACCESS_KEY_SECRET in the environment",
			     path) > 0);
	assert_string_equal(buf, want);
	free(want);
	config_free(&c);
	free(path);
}

/* A key from the aliyun CLI's file names the file and its profile. */
static void test_origin_of_a_vendor_file(void **state)
{
	char *home, *dir, *file, *want, buf[512], err[256];
	const char *old = getenv("HOME");
	char *saved = old ? strdup(old) : NULL;
	struct config c;
	FILE *f;

	(void)state;
	assert_true(asprintf(&home, "%s/home-XXXXXX", tmpdir) > 0);
	assert_non_null(mkdtemp(home));
	assert_true(asprintf(&dir, "%s/.aliyun", home) > 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_true(asprintf(&file, "%s/config.json", dir) > 0);
	f = fopen(file, "w");
	assert_non_null(f);
	fprintf(f, "{\"current\":\"work\",\"profiles\":[{\"name\":\"work\",\"mode\":\"AK\","
		   "\"access_key_id\":\"LTAIx\",\"access_key_secret\":\"" SECRET "\"}]}");
	fclose(f);
	assert_int_equal(chmod(file, 0600), 0);
	setenv("HOME", home, 1);
	setenv("CODEUP_TOKEN", SECRET, 1);
	assert_int_equal(config_load_profile(&c, NULL, 0, NULL, err, sizeof(err)), 0);
	config_describe_creds(&PROV(c, "pai"), buf, sizeof(buf));
	assert_true(asprintf(&want,
			     "access_key_id from %s profile 'work', access_key_secret from %s "
			     "profile 'work'",
			     file, file) > 0);
	assert_string_equal(buf, want);
	config_free(&c);
	if (saved)
		setenv("HOME", saved, 1);
	else
		unsetenv("HOME");
	free(saved);
	free(want);
	free(file);
	free(dir);
	free(home);
}

static void test_env_variants_order(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	setenv("ALICLOUD_ACCESS_KEY_ID", "third", 1);
	setenv("ALIBABACLOUD_ACCESS_KEY_ID", "second", 1);
	setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "", 1); /* empty: the next one counts */
	setenv("ALICLOUD_ACCESS_KEY_SECRET", SECRET "3", 1);
	setenv("VOLC_ACCESSKEY", "oldak", 1);
	setenv("VOLC_SECRETKEY", SECRET "old", 1);
	setenv("VOLCENGINE_SECRET_KEY", SECRET "new", 1);
	setenv("ALIBABA_CLOUD_YUNXIAO_ACCESS_TOKEN", SECRET "yunxiao", 1);
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), 0);
	assert_string_equal(PROV(c, "pai").key_id, "second");
	assert_string_equal(PROV(c, "pai").secret, SECRET "3");
	assert_string_equal(PROV(c, "volc").key_id, "oldak");
	assert_string_equal(PROV(c, "volc").secret, SECRET "new");
	assert_string_equal(PROV(c, "codeup").secret, SECRET "yunxiao");
	config_free(&c);
	setenv("CODEUP_TOKEN", SECRET "codeup", 1);
	setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "first", 1);
	setenv("VOLCENGINE_ACCESS_KEY", "newak", 1);
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), 0);
	assert_string_equal(PROV(c, "pai").key_id, "first");
	assert_string_equal(PROV(c, "volc").key_id, "newak");
	assert_string_equal(PROV(c, "codeup").secret, SECRET "codeup");
	config_free(&c);
}

static void test_env_tokens(void **state)
{
	static const char text[] = "[pai]\naccess_key_id = a\naccess_key_secret = " SECRET "\n"
				   "security_token = " SECRET "filetoken\n";
	struct config c;
	char err[256];

	(void)state;
	setenv("ALIBABA_CLOUD_SECURITY_TOKEN", SECRET "sts", 1);
	setenv("VOLCENGINE_ACCESS_KEY", "ak", 1);
	setenv("VOLCENGINE_SECRET_KEY", SECRET, 1);
	setenv("VOLCENGINE_SESSION_TOKEN", SECRET "volcsts", 1);
	assert_int_equal(load_text(&c, text, 0600, err, sizeof(err), NULL), 0);
	assert_string_equal(PROV(c, "pai").token, SECRET "sts");
	assert_string_equal(PROV(c, "volc").token, SECRET "volcsts");
	config_free(&c);
	/* A key pair from the environment does not inherit the file's STS token. */
	clear_env(NULL);
	setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid", 1);
	setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET "env", 1);
	assert_int_equal(load_text(&c, text, 0600, err, sizeof(err), NULL), 0);
	assert_null(PROV(c, "pai").token);
	config_free(&c);
}

static void test_env_bad_value(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	setenv("CODEUP_TOKEN", SECRET "\x02", 1);
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment variable CODEUP_TOKEN contains control characters");
	setenv("CODEUP_TOKEN", "x", 1);
	setenv("ALIBABA_CLOUD_REGION_ID", "../x", 1);
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "[pai] region is not a valid region id");
}

static void test_provider_disabled(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(load_text(&c, "[volc]\nworkspaces = ws1\n[codeup]\ntoken = " SECRET "\n",
				   0600, err, sizeof(err), NULL),
			 0);
	assert_false(PROV(c, "pai").enabled);
	assert_false(PROV(c, "volc").enabled);
	assert_true(PROV(c, "codeup").enabled);
	config_free(&c);
}

static void test_default_path(void **state)
{
	char *p, *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	(void)state;
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	p = config_default_path();
	assert_string_equal(p, "/xdg/codesrcfs/config");
	free(p);
	setenv("XDG_CONFIG_HOME", "relative", 1);
	setenv("HOME", "/home/u", 1);
	p = config_default_path();
	assert_string_equal(p, "/home/u/.config/codesrcfs/config");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	p = config_default_path();
	assert_string_equal(p, "/home/u/.config/codesrcfs/config");
	free(p);
	if (home)
		setenv("HOME", home, 1);
	free(home);
}

/* One section per cloud of providers[], in its order, found by name. */
static void test_prov_names(void **state)
{
	struct config c;
	char err[256];
	size_t k;

	(void)state;
	setenv("CODEUP_TOKEN", SECRET, 1);
	assert_int_equal(config_load(&c, NULL, 0, err, sizeof(err)), 0);
	for (k = 0; providers[k]; k++)
		assert_ptr_equal(c.prov[k].desc, providers[k]);
	assert_int_equal(c.nprov, k);
	assert_int_equal(k, 3);
	assert_string_equal(PROV(c, "pai").desc->name, "pai");
	assert_string_equal(PROV(c, "volc").desc->name, "volc");
	assert_string_equal(PROV(c, "codeup").desc->name, "codeup");
	assert_null(config_prov(&c, "nope"));
	config_free(&c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, clear_env, clear_env)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_good_file),
	    T(test_defaults),
	    T(test_crlf_bom_and_lists),
	    T(test_unknown_section_and_key),
	    T(test_names_as_written),
	    T(test_origins_in_file_and_environment),
	    T(test_origin_of_a_vendor_file),
	    T(test_garbage_line),
	    T(test_bad_values),
	    T(test_half_credentials),
	    T(test_group_readable_refused),
	    T(test_readable_without_secrets),
	    T(test_writable_by_others_refused),
	    T(test_dot_scopes_refused),
	    T(test_env_dot_scope_refused),
	    T(test_missing_and_directory),
	    T(test_no_provider),
	    T(test_endpoint_in_file),
	    T(test_check_endpoint),
	    T(test_env_overrides_file),
	    T(test_env_variants_order),
	    T(test_env_tokens),
	    T(test_env_bad_value),
	    T(test_provider_disabled),
	    T(test_default_path),
	    T(test_prov_names),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
