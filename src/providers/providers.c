/* providers: the table of clouds. A fourth cloud is one file beside this one that defines
 * its struct prov_desc, and its two lines here (docs/hacking.md). */
#include "providers_i.h"

extern const struct prov_desc pai_desc;
extern const struct prov_desc volc_desc;
extern const struct prov_desc codeup_desc;

const struct prov_desc *const providers[] = {
    &pai_desc,
    &volc_desc,
    &codeup_desc,
    NULL,
};
