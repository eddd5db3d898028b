/* The MCP server of `sbx mcp` (stdio transport), defined in mcp.c when it is built in. main.c has a
 * weak fallback that reports it missing. Returns the process exit code. */
#ifndef SBX_MCP_H
#define SBX_MCP_H

int sbx_mcp_stdio(const char *url, const char *api_key);

#endif
