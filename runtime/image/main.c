/* sbx-image: pull, load, list and remove OCI images in sbx's store (`sbxrun pull` and the other
 * image verbs exec it). */
#include <stdio.h>

int
main(void)
{
    fprintf(stderr, "sbx-image: not implemented yet\n");
    return 125;
}
