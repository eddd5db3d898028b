/* `sbx exec -it`: an interactive terminal in the sandbox. */
#include "cli.h"

int
cli_exec_tty(char **id, char **argv, const struct exec_opts *o, int *code, sbx_error_t *err)
{
    sbx_make_error(err, 0, "-t: interactive terminals are not supported yet");
    return -EX_USAGE;
}
