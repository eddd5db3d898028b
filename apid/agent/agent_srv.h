/* The agent server's state and the interfaces between the files that make it up:
 *   agent_server.c   the epoll loop, connections, timers, signals, reaping
 *   agent_http.c     HTTP/1.1 framing: request heads and bodies, responses, chunked streams
 *   agent_route.c    the routing table, authentication, body limits, dispatch
 *   agent_cmd.c      commands: output, logs, status, /command routes
 *   agent_spawn.c    starting processes as the sandbox user (commands, the entrypoint)
 *   agent_session.c  bash sessions (/session routes)
 *   agent_pty.c      interactive terminals (GET /pty over agent_ws.c's WebSocket framing)
 *   agent_metrics.c  /metrics and /metrics/watch
 *   agent_files.c    /files and /directories
 *   agent_upload.c   POST /files/upload (agent_multipart.c parses)
 * One thread: nothing here is locked. */
#ifndef SBX_AGENT_SRV_H
#define SBX_AGENT_SRV_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "agent.h"
#include "agent_stream.h"

enum { EV_LISTEN = 1, EV_SIGNAL, EV_CONN, EV_PIPE };
struct ag_ev {
    int kind;
    int which; /* pipe: 0 stdout (a terminal's master), 1 stderr, 2 session state, 3 exec status */
    void *obj;
};

enum { S_HEAD, S_BODY, S_RESP };                /* connection states */
enum { B_NONE, B_BUFFER, B_UPLOAD, B_DISCARD }; /* what a request's body is read into */
enum { W_NONE, W_WATCH, W_ONESHOT };            /* metrics */

#define HEAD_MAX (16 * 1024)
#define READ_CHUNK (64 * 1024)
#define OUT_HIGH (1u << 20) /* queued output above which a command's pipes are not read */
#define PING_MS 3000
#define EXIT_GRACE_MS 50 /* after the shell exits, wait this long for its pipes to reach EOF */
#define TERM_GRACE_MS 2000
#define IDLE_MS 75000
#define SLOW_MS 30000

struct ag_cmd;
struct ag_sess;

struct ag_conn {
    struct ag_ev ev;
    int fd;
    struct ag_conn *next;
    int st;
    bool dead;
    struct ag_buf in;
    struct ag_buf out;
    size_t out_off;
    struct ag_req req;
    bool have_req;
    int route;
    char arg[128];
    int bmode;
    uint64_t blimit, bleft, btotal;
    struct ag_chunked ch;
    struct ag_upload *up;
    bool resp_done, close_after, streaming;
    int dl_fd;
    uint64_t dl_off, dl_left;
    struct ag_cmd *cmd;
    int watch;
    struct ag_cpu_sample prev;
    int64_t tick;
    int64_t deadline;
    uint32_t mask;
    bool ws; /* upgraded to a WebSocket (GET /pty): c->in holds frames, c->out gets frames */
};

struct ag_cmd {
    struct ag_cmd *next;
    char id[33];
    char *content;
    pid_t pid;
    bool running; /* not reaped yet */
    bool finished;
    int wstatus;
    int exit_code;
    char err[512];
    struct timespec t_start, t_end;
    int64_t mono_start, exit_seen;
    int fds[4];
    struct ag_ev evs[4];
    struct ag_lsplit ls[2];
    struct ag_buf log;
    uint64_t log_dropped; /* whole lines trimmed from the front of log */
    struct ag_conn *conn;
    int64_t deadline, kill_at;
    bool background, timed_out, interrupted, paused, spawn_failed;
    struct ag_sess *sess;
    struct ag_buf state;
    bool pty;          /* on a terminal: fds[0] is the master, output is raw bytes */
    struct ag_buf pin; /* input for the master that it did not take yet (bounded) */
};

struct ag_sess {
    struct ag_sess *next;
    char id[33];
    char *cwd;
    struct ag_buf state;
    struct ag_cmd *cmd;
};

struct ag_server {
    const struct ag_config *cfg;
    int ep, lfd, sfd, devnull;
    struct ag_ev lev, sev;
    struct ag_conn *conns;
    int nconns;
    struct ag_cmd *cmds;
    int nrunning, nfinished;
    struct ag_sess *sessions;
    int nsessions;
    pid_t entry_pid;
    bool entry_given; /* an entrypoint was started (argv or POST /entrypoint): at most once */
    bool stopping;
    int exit_code;
    int64_t stop_deadline;
    struct ag_cpu_sample last;
    const char *shell;
    struct ag_buf scratch;
};
extern struct ag_server ag_srv;

typedef void (*ag_handler)(struct ag_conn *c, struct ag_req *r);

/* agent_server.c */
void ag_ep_set(int fd, struct ag_ev *ev, uint32_t events, bool add);
/* Sends what c has queued and reads on as its state allows; may close c (c->dead). */
void ag_conn_drive(struct ag_conn *c);
void ag_conn_close(struct ag_conn *c);

/* agent_http.c */
/* A chunked response: its head now, then chunks, then the end. */
void ag_stream_begin(struct ag_conn *c, const char *ctype);
void ag_stream_chunk(struct ag_conn *c, const char *p, size_t n);
void ag_stream_end(struct ag_conn *c);
void ag_send_event(struct ag_conn *c, const struct ag_event *ev);
/* Feeds buffered input to the body decoder: true when the body is complete; on an error a reply
 * is queued and the connection is in S_RESP. */
bool ag_body_feed(struct ag_conn *c);

/* agent_route.c */
/* Authenticates and routes the request whose head was just read, and prepares for its body (or
 * queues the error reply). */
void ag_on_head(struct ag_conn *c);
/* Runs the handler of the request whose body is complete. */
void ag_dispatch(struct ag_conn *c);

/* agent_cmd.c */
struct spawn_req {
    const char *command;
    const char *cwd;
    const json_t *envs;
    bool has_uid, has_gid;
    uid_t uid;
    gid_t gid;
    int64_t timeout_ms;
    bool background;
    struct ag_sess *sess;
    const char *script; /* session wrapper; command passed as $1 */
    bool pty;
    int pty_master;
    int slave; /* with pty: the terminal's slave side, the command's stdin, stdout and stderr */
};
/* Reads the fields POST /command and /session/{id}/run share from j into *sr; false after
 * queueing a 400 (or 429 when --max-commands are running). */
bool ag_parse_run(struct ag_conn *c, const json_t *j, struct spawn_req *sr);
/* Streams a command's events on c (foreground) or just init/complete (background). */
void ag_cmd_attach(struct ag_conn *c, struct ag_cmd *cmd);
void ag_cmd_pause(struct ag_cmd *cmd, bool pause);
void ag_cmd_kill(struct ag_cmd *cmd, int sig);
/* Reads the pipe cmd->fds[i] (once, or until EOF/EAGAIN when drain). */
void ag_cmd_read(struct ag_cmd *cmd, int i, bool drain);
/* Finishes a command whose process was reaped once its pipes are done (or EXIT_GRACE_MS). */
void ag_cmd_check(struct ag_cmd *cmd);
/* The command that pid was, now reaped with status st: false when none. */
bool ag_cmd_reaped(pid_t pid, int st);
/* Timeouts and kill deadlines; lowers *next to the next one due. */
void ag_cmd_timers(int64_t now, int64_t *next);
/* Evicts the oldest finished commands beyond AG_MAX_FINISHED. */
void ag_cmd_gc(void);
void ag_h_command(struct ag_conn *c, struct ag_req *r);
void ag_h_command_delete(struct ag_conn *c, struct ag_req *r);
void ag_h_command_status(struct ag_conn *c, struct ag_req *r);
void ag_h_command_logs(struct ag_conn *c, struct ag_req *r);

/* agent_spawn.c */
/* Starts a command (registered in ag_srv.cmds, its pipes in the loop). NULL with *why set on an
 * internal failure (→ 500); failures inside the child (chdir, setuid, exec) arrive later on the
 * exec-status pipe and end it with spawn_failed. */
struct ag_cmd *ag_cmd_spawn(const struct spawn_req *sr, const char **why);
/* Starts argv as the entrypoint (as --user, in its own process group). */
pid_t ag_start_entrypoint(char **argv);
void ag_h_entrypoint(struct ag_conn *c, struct ag_req *r);

/* agent_session.c */
/* The session's command finished: its saved state (exported variables, cwd) is kept. */
void ag_sess_cmd_done(struct ag_cmd *cmd);
void ag_h_session_new(struct ag_conn *c, struct ag_req *r);
void ag_h_session_run(struct ag_conn *c, struct ag_req *r);
void ag_h_session_delete(struct ag_conn *c, struct ag_req *r);

/* agent_pty.c */
void ag_h_pty(struct ag_conn *c, struct ag_req *r);
/* Handles the client's complete frames in c->in. */
void ag_ws_input(struct ag_conn *c);
/* Writes (p, n) and what is pending to the terminal's master (n = 0: on EPOLLOUT). */
int ag_pty_write(struct ag_cmd *cmd, const char *p, size_t n);
/* The terminal's user is gone: SIGHUP to its session, SIGKILL TERM_GRACE_MS later. */
void ag_pty_hangup(struct ag_cmd *cmd);
/* The terminal's command finished: exit frame, close frame. */
void ag_pty_exit(struct ag_conn *c, struct ag_cmd *cmd);

/* agent_metrics.c */
void ag_h_metrics(struct ag_conn *c, struct ag_req *r);
void ag_h_metrics_watch(struct ag_conn *c, struct ag_req *r);
/* A metrics connection's timer: the next sample. */
void ag_metrics_send(struct ag_conn *c);

#endif
