/* libFuzzer target: Codeup response bodies (ListNamespaces, ListRepositories,
 * ListOrganizations) → records, with and without a group, since the group filter compares
 * fullPath prefixes. */
#include <stddef.h>
#include <stdint.h>

#include "provider.h"
#include "providers/providers_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct prov_page pg = {0};
	int top;

	for (top = 0; top < 2; top++) {
		codeup_parse_namespaces(body, size, "org", top, top, &pg);
		prov_page_free(&pg);
	}
	codeup_parse_repositories(body, size, "org", NULL, NULL, 0, &pg);
	prov_page_free(&pg);
	codeup_parse_repositories(body, size, "org", "org/test-group", "36932", 1, &pg);
	prov_page_free(&pg);
	codeup_parse_organizations(body, size, &pg);
	prov_page_free(&pg);
	codeup_classify_error(403, body, size);
	return 0;
}
