/* libFuzzer target: PAI response bodies (ListCodeSources, ListWorkspaces) → records.
 * The body comes from the network, so every byte sequence must parse or fail cleanly. */
#include <stddef.h>
#include <stdint.h>

#include "provider.h"
#include "providers/providers_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct prov_page pg = {0};

	/* Both redaction modes: show_secrets skips the redaction walk, which is its own path. */
	pai_parse_codesources(body, size, 0, &pg);
	prov_page_free(&pg);
	pai_parse_codesources(body, size, 1, &pg);
	prov_page_free(&pg);
	pai_parse_workspaces(body, size, &pg);
	prov_page_free(&pg);
	pai_classify_error(400, body, size);
	return 0;
}
