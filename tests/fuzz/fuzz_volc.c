/* libFuzzer target: Volcengine response bodies (ListResources, ListWorkspaces) → records. */
#include <stddef.h>
#include <stdint.h>

#include "provider.h"
#include "providers/providers_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct prov_page pg = {0};

	volc_parse_resources(body, size, 0, &pg);
	prov_page_free(&pg);
	volc_parse_resources(body, size, 1, &pg);
	prov_page_free(&pg);
	volc_parse_workspaces(body, size, &pg);
	prov_page_free(&pg);
	volc_classify_error(400, body, size);
	return 0;
}
