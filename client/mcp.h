/* `sbx mcp`: MCP over stdio for clients that launch a local command (Claude Code, Cursor,
 * Codex, ...), bridged to sbx-apid's streamable HTTP MCP endpoint. */
#ifndef SBX_CLIENT_MCP_H
#define SBX_CLIENT_MCP_H

/* Reads newline-delimited JSON-RPC messages on stdin, POSTs each to <url>/mcp (url NULL or "":
 * http://127.0.0.1:8080; a url already ending in /mcp is used as is) with the API key header,
 * and writes every answer as one line on stdout; logs go to stderr. Keeps the server's
 * Mcp-Session-Id and initializes again when the server has forgotten it (apid restarted).
 * Requests are served concurrently (a long run_command does not hold up a ping). Returns 0 at
 * the end of stdin, 1 when it cannot start (bad URL, libcurl). */
int sbx_mcp_stdio(const char *url, const char *api_key);

#endif
