/* Test driver of `sbx mcp` (client/mcp.c) for tests/api/t_mcp.sh: the bridge alone, with the
 * environment the sbx CLI passes it (SBX_URL, SBX_API_KEY). */
#include "../../client/mcp.h"

#include <stdlib.h>

int
main(void)
{
    return sbx_mcp_stdio(getenv("SBX_URL"), getenv("SBX_API_KEY"));
}
