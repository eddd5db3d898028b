/* sbxrun verbs that act on a running sandbox's cgroup: pause, resume, ps, stats. Each takes the
 * verb's argv (argv[0] is the verb) and returns the process exit code: 0 ok, 1 for a bad usage or
 * an unknown/stopped sandbox (message "sbxrun: ..." on stderr). */
#ifndef SBX_CLI_CGROUP_CMDS_H
#define SBX_CLI_CGROUP_CMDS_H

int cmd_pause(int argc, char **argv, const char *state_root);
int cmd_resume(int argc, char **argv, const char *state_root);
/* ps ID [--format json|table]: the host pids in the sandbox. */
int cmd_ps(int argc, char **argv, const char *state_root);
/* stats ID: one JSON object {"id","memory_current","memory_peak","cpu_usec","pids","oom_kills",
 * "frozen"}; -1 marks a value this host does not provide. */
int cmd_stats(int argc, char **argv, const char *state_root);

#endif
