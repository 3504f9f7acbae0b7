/* libFuzzer target: meta.json rendering (recursive redaction of credential fields) and the
 * ISO 8601 time parser, both fed straight from response bodies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "provider.h"
#include "providers/providers_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct json_object *obj;
	char *s, *m;

	/* Times are short; a NUL-terminated copy of the whole input is what the parsers pass. */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	provjson_time(s);
	free(s);

	/* json-c's own depth limit (32 by default) bounds the redaction walk's recursion. */
	tok = json_tokener_new();
	if (!tok)
		return 0;
	obj =
	    json_tokener_parse_ex(tok, (const char *)data, (int)(size > 1 << 20 ? 1 << 20 : size));
	json_tokener_free(tok);
	if (!obj)
		return 0;
	m = redact_meta_json(obj, 0);
	free(m);
	m = redact_meta_json(obj, 1);
	free(m);
	json_object_put(obj);
	return 0;
}
