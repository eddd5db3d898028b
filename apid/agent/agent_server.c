/* The agent's single-threaded epoll server: connections (keep-alive, reads and writes, idle
 * deadlines), command pipes, signals and reaping, timers. One thread keeps the idle footprint
 * tiny (the agent runs in every sandbox); all sockets and pipes are non-blocking, and disk I/O
 * for files is done inline because it is bounded per event. The files it is made of:
 * agent_srv.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_srv.h"

struct ag_server ag_srv;

void
ag_ep_set(int fd, struct ag_ev *ev, uint32_t events, bool add)
{
    struct epoll_event e = {.events = events, .data.ptr = ev};
    if (epoll_ctl(ag_srv.ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &e) < 0 && !add)
        epoll_ctl(ag_srv.ep, EPOLL_CTL_ADD, fd, &e);
}

static void
conn_reset(struct ag_conn *c)
{
    ag_req_free(&c->req);
    c->have_req = false;
    c->st = S_HEAD;
    c->bmode = B_NONE;
    c->resp_done = c->streaming = false;
    ag_upload_free(c->up);
    c->up = NULL;
    if (c->dl_fd >= 0)
        close(c->dl_fd);
    c->dl_fd = -1;
    c->dl_left = 0;
    c->watch = W_NONE;
    c->out.len = 0;
    c->out_off = 0;
    /* Idle connections should not pin large buffers (idle RSS budget). */
    if (c->out.cap > 64 * 1024)
        ag_buf_free(&c->out);
    if (c->in.len == 0 && c->in.cap > 16 * 1024)
        ag_buf_free(&c->in);
    c->deadline = ag_mono_ms() + IDLE_MS;
}

void
ag_conn_close(struct ag_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->cmd) {
        /* The command keeps running; its output still goes to the log. A terminal's user is
         * gone, though: its session gets the hangup a closed terminal gives. */
        if (c->cmd->pty)
            ag_pty_hangup(c->cmd);
        if (c->cmd->paused)
            ag_cmd_pause(c->cmd, false);
        c->cmd->conn = NULL;
        c->cmd = NULL;
    }
    epoll_ctl(ag_srv.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    ag_srv.nconns--;
}

static void
conn_mask(struct ag_conn *c)
{
    uint32_t m = EPOLLRDHUP;
    if (c->st == S_HEAD || c->st == S_BODY || (c->ws && !c->resp_done))
        m |= EPOLLIN;
    if (c->out.len > c->out_off || (c->st == S_RESP && c->dl_left && c->out.len == c->out_off))
        m |= EPOLLOUT;
    if (m != c->mask) {
        ag_ep_set(c->fd, &c->ev, m, false);
        c->mask = m;
    }
}

/* Returns true when everything queued has been written. */
static bool
conn_flush(struct ag_conn *c)
{
    while (c->out.len > c->out_off) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return false;
            ag_conn_close(c);
            return false;
        }
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    if (c->cmd && c->cmd->paused)
        ag_cmd_pause(c->cmd, false);
    while (c->dl_left) {
        off_t off = (off_t)c->dl_off;
        size_t want = c->dl_left > (1u << 20) ? (1u << 20) : (size_t)c->dl_left;
        ssize_t n = sendfile(c->fd, c->dl_fd, &off, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return false;
            ag_conn_close(c);
            return false;
        }
        if (n == 0) { /* file shrank under us: the promised length cannot be kept */
            ag_conn_close(c);
            return false;
        }
        c->dl_off += (uint64_t)n;
        c->dl_left -= (uint64_t)n;
    }
    return true;
}

void
ag_conn_drive(struct ag_conn *c)
{
    if (c->ws) {
        if (!c->resp_done)
            ag_ws_input(c);
        if (!c->dead && conn_flush(c) && c->resp_done) {
            ag_conn_close(c);
            return;
        }
        if (!c->dead)
            conn_mask(c);
        return;
    }
    for (int guard = 0; guard < 1000 && !c->dead; guard++) {
        if (c->st == S_RESP) {
            if (!conn_flush(c))
                break;
            if (!c->resp_done)
                break;
            if (c->close_after) {
                ag_conn_close(c);
                return;
            }
            conn_reset(c);
        }
        if (c->st == S_HEAD) {
            if (c->in.len == 0)
                break;
            char *e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
            if (e == NULL) {
                if (c->in.len > HEAD_MAX) {
                    c->close_after = true;
                    c->req.keepalive = false;
                    ag_reply_err(c, 431, "INVALID_REQUEST_BODY",
                                 "request head larger than %d bytes", HEAD_MAX);
                    continue;
                }
                c->deadline = ag_mono_ms() + SLOW_MS;
                break;
            }
            size_t hl = (size_t)(e - c->in.p) + 4;
            const char *why = "bad request";
            int rc = ag_parse_head(&c->req, c->in.p, hl, &why);
            ag_buf_consume(&c->in, hl);
            c->have_req = true;
            if (rc) {
                c->close_after = true;
                c->req.keepalive = false;
                ag_reply_err(c, rc, "INVALID_REQUEST_BODY", "%s", why);
                continue;
            }
            ag_on_head(c);
            continue;
        }
        if (c->st == S_BODY) {
            c->deadline = ag_mono_ms() + SLOW_MS;
            if (!ag_body_feed(c)) {
                if (c->st == S_BODY) {
                    /* need more input; 100-continue may be pending */
                    if (c->out.len > c->out_off)
                        conn_flush(c);
                    break;
                }
                continue;
            }
            ag_dispatch(c);
            continue;
        }
    }
    if (!c->dead)
        conn_mask(c);
}

static void
conn_read(struct ag_conn *c)
{
    if (ag_buf_reserve(&c->in, READ_CHUNK) < 0) {
        ag_conn_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in.p + c->in.len, READ_CHUNK, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ag_conn_close(c);
        return;
    }
    if (n > 0) {
        c->in.len += (size_t)n;
        ag_conn_drive(c);
    }
}

static void
on_accept(void)
{
    for (;;) {
        int fd = accept4(ag_srv.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (ag_srv.nconns >= AG_MAX_CONNS || ag_srv.stopping) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct ag_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->dl_fd = -1;
        c->ev = (struct ag_ev){EV_CONN, 0, c};
        c->mask = EPOLLIN | EPOLLRDHUP;
        c->deadline = ag_mono_ms() + SLOW_MS;
        ag_ep_set(fd, &c->ev, c->mask, true);
        c->next = ag_srv.conns;
        ag_srv.conns = c;
        ag_srv.nconns++;
    }
}

static void
reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == ag_srv.entry_pid) {
            ag_srv.entry_pid = 0;
            ag_srv.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            ag_srv.stopping = true;
            ag_srv.stop_deadline = ag_mono_ms() + 1000;
            continue;
        }
        ag_cmd_reaped(pid, st);
    }
}

static void
on_signal(void)
{
    struct signalfd_siginfo si;
    bool chld = false;
    while (read(ag_srv.sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            chld = true;
        } else if (ag_srv.entry_pid > 0) {
            kill(-ag_srv.entry_pid,
                 (int)si.ssi_signo); /* the entrypoint decides; we exit with it */
        } else if (!ag_srv.stopping) {
            ag_srv.stopping = true;
            ag_srv.exit_code = 0;
            ag_srv.stop_deadline = ag_mono_ms() + 500;
        }
    }
    if (chld)
        reap();
}

/* Runs timers; returns ms until the next one (-1: none). */
static int
timers(void)
{
    int64_t now = ag_mono_ms(), next = now + 60000;
#define NEXT(t)                                                                                    \
    do {                                                                                           \
        if ((t) > 0 && (t) < next)                                                                 \
            next = (t);                                                                            \
    } while (0)
    ag_cmd_timers(now, &next);
    for (struct ag_conn *c = ag_srv.conns; c; c = c->next) {
        if (c->dead)
            continue;
        if (c->cmd && !c->ws && now >= c->tick) {
            struct ag_event ping = {.type = "ping",
                                    .text = "pong",
                                    .textlen = 4,
                                    .timestamp = ag_now_ms(),
                                    .execution_time = -1};
            ag_send_event(c, &ping);
            c->tick = now + PING_MS;
            ag_conn_drive(c);
        } else if (c->watch && now >= c->tick) {
            ag_metrics_send(c);
            ag_conn_drive(c);
        }
        if (c->dead)
            continue;
        if ((c->cmd && !c->ws) || c->watch)
            NEXT(c->tick);
        else if (c->ws)
            ; /* a terminal may sit idle for as long as its user likes */
        else if (c->st != S_RESP || (c->out.len == c->out_off && !c->dl_left)) {
            if (now >= c->deadline && !(c->st == S_RESP && !c->resp_done)) {
                ag_conn_close(c);
                continue;
            }
            NEXT(c->deadline);
        }
    }
    if (ag_srv.stopping)
        NEXT(ag_srv.stop_deadline);
#undef NEXT
    int64_t d = next - now;
    return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

static void
gc(void)
{
    for (struct ag_conn **pp = &ag_srv.conns; *pp;) {
        struct ag_conn *c = *pp;
        if (c->dead) {
            *pp = c->next;
            conn_reset(c);
            ag_buf_free(&c->in);
            ag_buf_free(&c->out);
            free(c);
            continue;
        }
        pp = &c->next;
    }
    ag_cmd_gc();
}

static int
listen_on(const char *spec)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= sizeof(host)) {
        fprintf(stderr, "sbx-agent: bad --listen %s (want ADDR:PORT)\n", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    int port = atoi(colon + 1);
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    int fam;
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, *h ? h : "0.0.0.0", &s4->sin_addr) == 1) {
        fam = AF_INET;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
        fam = AF_INET6;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else {
        fprintf(stderr, "sbx-agent: bad listen address %s\n", host);
        return -1;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
        fprintf(stderr, "sbx-agent: listen %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Signals through a signalfd, the listening socket. */
static int
server_setup(const struct ag_config *cfg)
{
    memset(&ag_srv, 0, sizeof(ag_srv));
    ag_srv.cfg = cfg;
    ag_srv.shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
    ag_srv.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (ag_srv.devnull < 0) {
        perror("sbx-agent: /dev/null");
        return -1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    ag_srv.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    ag_srv.ep = epoll_create1(EPOLL_CLOEXEC);
    ag_srv.lfd = listen_on(cfg->listen);
    if (ag_srv.sfd < 0 || ag_srv.ep < 0 || ag_srv.lfd < 0)
        return -1;
    ag_srv.lev = (struct ag_ev){EV_LISTEN, 0, NULL};
    ag_srv.sev = (struct ag_ev){EV_SIGNAL, 0, NULL};
    ag_ep_set(ag_srv.lfd, &ag_srv.lev, EPOLLIN, true);
    ag_ep_set(ag_srv.sfd, &ag_srv.sev, EPOLLIN, true);
    return 0;
}

/* Whether to leave the loop: once stopping, after what is queued has gone out (bounded). */
static bool
stop_now(void)
{
    if (!ag_srv.stopping)
        return false;
    if (ag_srv.lfd >= 0) {
        epoll_ctl(ag_srv.ep, EPOLL_CTL_DEL, ag_srv.lfd, NULL);
        close(ag_srv.lfd);
        ag_srv.lfd = -1;
    }
    for (struct ag_conn *c = ag_srv.conns; c; c = c->next)
        if (!c->dead && (c->out.len > c->out_off || c->dl_left))
            return ag_mono_ms() >= ag_srv.stop_deadline;
    return true;
}

static void
on_event(struct ag_ev *ev, uint32_t e)
{
    switch (ev->kind) {
    case EV_LISTEN: on_accept(); break;
    case EV_SIGNAL: on_signal(); break;
    case EV_PIPE: {
        struct ag_cmd *cmd = ev->obj;
        if (cmd->pty && ev->which == 0 && (e & EPOLLOUT))
            ag_pty_write(cmd, NULL, 0);
        if (cmd->fds[ev->which] >= 0 && (e & ~EPOLLOUT)) {
            ag_cmd_read(cmd, ev->which, false);
            ag_cmd_check(cmd);
        }
        break;
    }
    case EV_CONN: {
        struct ag_conn *c = ev->obj;
        if (c->dead)
            break;
        if (e & EPOLLIN)
            conn_read(c);
        if (c->dead)
            break;
        if (e & EPOLLOUT)
            ag_conn_drive(c);
        if (!c->dead && (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !(e & EPOLLIN))
            ag_conn_close(c); /* peer went away; a running command is left alone */
        break;
    }
    }
}

int
ag_server_run(const struct ag_config *cfg)
{
    if (server_setup(cfg) < 0)
        return 1;
    if (cfg->entry) {
        ag_srv.entry_given = true;
        ag_srv.entry_pid = ag_start_entrypoint(cfg->entry);
        if (ag_srv.entry_pid < 0) {
            perror("sbx-agent: fork entrypoint");
            return 1;
        }
    }
    struct epoll_event evs[64];
    for (;;) {
        int timeout = timers();
        if (stop_now())
            break;
        int n = epoll_wait(ag_srv.ep, evs, 64, timeout);
        if (n < 0 && errno != EINTR) {
            perror("sbx-agent: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        gc();
    }
    /* Commands must not outlive the agent (in host mode nobody else would reap or bound them). */
    for (struct ag_cmd *cmd = ag_srv.cmds; cmd; cmd = cmd->next)
        ag_cmd_kill(cmd, SIGKILL);
    for (struct ag_conn *c = ag_srv.conns; c; c = c->next)
        if (!c->dead)
            ag_conn_close(c);
    gc();
    return ag_srv.exit_code;
}
