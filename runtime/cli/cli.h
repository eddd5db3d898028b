#ifndef SBX_CLI_H
#define SBX_CLI_H

#include "container.h"

#include <signal.h>
#include <ctype.h>

/* Exit statuses, docker-run compatible. */
#define EXIT_RUNTIME 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127
#define EXIT_TIMEOUT 124

struct sbx_global {
    const char *root; /* state root */
    const char *log_file;
    bool log_json;
    bool systemd_cgroup;
};

extern struct sbx_global sbx_global;

/* Reports an error the way every verb does: "sbxrun: msg" on stderr (and the JSON log if set). */
void cli_error(sbx_error_t *err);
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_run(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_state(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_spec(int argc, char **argv);
int cmd_update(int argc, char **argv);

#endif
