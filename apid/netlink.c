/* Netlink for sandbox networking: see netlink.h and the overview at the top of net.c. */
#include "netlink.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

int
apid_nl_fail(sbx_error_t *err, int nlerr, const char *what)
{
    return sbx_make_error(err, 0, "%s: %s", what, nl_geterror(nlerr));
}

struct nl_sock *
apid_nl_open(sbx_error_t *err)
{
    struct nl_sock *sk = nl_socket_alloc();
    if (!sk) {
        sbx_make_error(err, ENOMEM, "netlink socket");
        return NULL;
    }
    int r = nl_connect(sk, NETLINK_ROUTE);
    if (r < 0) {
        nl_socket_free(sk);
        apid_nl_fail(err, r, "netlink connect");
        return NULL;
    }
    /* libnl opens without SOCK_CLOEXEC; nothing of apid's may leak into a sandbox. */
    fcntl(nl_socket_get_fd(sk), F_SETFD, FD_CLOEXEC);
    return sk;
}

void
apid_cleanup_nl_sockp(struct nl_sock **sk)
{
    if (*sk)
        nl_socket_free(*sk);
}

int
apid_link_delete(const char *name)
{
    cleanup_nl_sock struct nl_sock *sk = apid_nl_open(NULL);
    if (!sk)
        return -1;
    struct rtnl_link *l = rtnl_link_alloc();
    rtnl_link_set_name(l, name);
    int r = rtnl_link_delete(sk, l);
    rtnl_link_put(l);
    return r;
}

int
apid_neigh_delete(const char *dev, const char *ip)
{
    unsigned idx = if_nametoindex(dev);
    cleanup_nl_sock struct nl_sock *sk = idx ? apid_nl_open(NULL) : NULL;
    struct nl_addr *a = NULL;
    if (!sk || nl_addr_parse(ip, AF_INET, &a) < 0)
        return -1;
    struct rtnl_neigh *n = rtnl_neigh_alloc();
    rtnl_neigh_set_ifindex(n, (int)idx);
    rtnl_neigh_set_dst(n, a);
    int r = rtnl_neigh_delete(sk, n, 0);
    rtnl_neigh_put(n);
    nl_addr_put(a);
    return r;
}

/* ---------- monitor side: runs in the single-threaded monitor, between clone and release
 * ---------- */

static int
set_port_isolated(struct nl_sock *sk, int ifindex, sbx_error_t *err)
{
    struct nl_msg *m = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
    struct ifinfomsg ifi = {.ifi_family = AF_BRIDGE, .ifi_index = ifindex};
    int r = nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
    struct nlattr *pi = r < 0 ? NULL : nla_nest_start(m, IFLA_PROTINFO | NLA_F_NESTED);
    if (!pi || nla_put_u8(m, IFLA_BRPORT_ISOLATED, 1) < 0) {
        nlmsg_free(m);
        return sbx_make_error(err, ENOMEM, "isolated port message");
    }
    nla_nest_end(m, pi);
    r = nl_send_auto(sk, m);
    nlmsg_free(m);
    if (r >= 0)
        r = nl_wait_for_ack(sk);
    return r < 0 ? apid_nl_fail(err, r, "isolate bridge port") : 0;
}

/* A netlink socket stays in the network namespace it was created in. setns() moves only the
 * calling thread, so a throw-away thread joins the sandbox's netns to create one and the
 * monitor itself never leaves the host's (a forked helper did this before: ~1 ms slower). */
struct netns_sock {
    pid_t pid;
    struct nl_sock *sk;
    sbx_error_t err;
};

static void *
netns_sock_thread(void *arg)
{
    struct netns_sock *n = arg;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)n->pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
        sbx_make_error(&n->err, errno, "join the sandbox netns");
    else
        n->sk = apid_nl_open(&n->err);
    return NULL;
}

static struct nl_sock *
nl_open_in_netns(pid_t pid, sbx_error_t *err)
{
    struct netns_sock n = {.pid = pid};
    pthread_t th;
    int r = pthread_create(&th, NULL, netns_sock_thread, &n);
    if (r) {
        sbx_make_error(err, r, "thread for the sandbox netns");
        return NULL;
    }
    pthread_join(th, NULL);
    if (!n.sk)
        *err = n.err;
    return n.sk;
}

int
apid_nl_addr_up(struct nl_sock *sk, struct rtnl_link *link, const char *cidr, bool exist_ok,
                const char *what, sbx_error_t *err)
{
    char msg[64];
    struct nl_addr *la = NULL;
    struct rtnl_addr *ad = rtnl_addr_alloc();
    nl_addr_parse(cidr, AF_INET, &la);
    rtnl_addr_set_ifindex(ad, rtnl_link_get_ifindex(link));
    rtnl_addr_set_local(ad, la);
    int r = rtnl_addr_add(sk, ad, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_addr_put(ad);
    nl_addr_put(la);
    if (r < 0 && !(exist_ok && r == -NLE_EXIST)) {
        rtnl_link_put(link);
        snprintf(msg, sizeof(msg), "%s address", what);
        return apid_nl_fail(err, r, msg);
    }
    struct rtnl_link *chg = rtnl_link_alloc();
    rtnl_link_set_flags(chg, IFF_UP);
    r = rtnl_link_change(sk, link, chg, 0);
    rtnl_link_put(chg);
    rtnl_link_put(link);
    if (r < 0) {
        snprintf(msg, sizeof(msg), "%s up", what);
        return apid_nl_fail(err, r, msg);
    }
    return 0;
}

static int
configure_inside(pid_t pid, json_t *plan, sbx_error_t *err)
{
    cleanup_nl_sock struct nl_sock *sk = nl_open_in_netns(pid, err);
    if (!sk)
        return -1;
    struct rtnl_link *eth = NULL;
    int r = rtnl_link_get_kernel(sk, 0, "eth0", &eth);
    if (r < 0)
        return apid_nl_fail(err, r, "eth0 in the sandbox");
    int idx = rtnl_link_get_ifindex(eth);
    cleanup_free char *cidr =
        xasprintf("%s/%d", json_string_value(json_object_get(plan, "address")),
                  (int)json_integer_value(json_object_get(plan, "prefix")));
    if ((r = apid_nl_addr_up(sk, eth, cidr, false, "eth0", err)) < 0)
        return r;
    struct nl_addr *gw = NULL, *dst = NULL;
    struct rtnl_route *rt = rtnl_route_alloc();
    struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
    nl_addr_parse("0.0.0.0/0", AF_INET, &dst);
    nl_addr_parse(json_string_value(json_object_get(plan, "gateway")), AF_INET, &gw);
    rtnl_route_set_family(rt, AF_INET);
    rtnl_route_set_dst(rt, dst);
    rtnl_route_nh_set_ifindex(nh, idx);
    rtnl_route_nh_set_gateway(nh, gw);
    rtnl_route_add_nexthop(rt, nh);
    r = rtnl_route_add(sk, rt, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_route_put(rt);
    nl_addr_put(dst);
    nl_addr_put(gw);
    if (r < 0)
        return apid_nl_fail(err, r, "default route");
    return 0;
}

/* The bridge port state of ifindex (BR_STATE_*), -1 if unknown. A raw RTM_GETLINK: libnl's link
 * cache does not parse a bridge port's IFLA_INFO_SLAVE_DATA. sk must not auto-ack. */
static int
port_state(struct nl_sock *sk, int ifindex)
{
    struct nl_msg *m = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST);
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ifindex};
    if (!m || nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 || nl_send_auto(sk, m) < 0) {
        nlmsg_free(m);
        return -1;
    }
    nlmsg_free(m);
    struct sockaddr_nl from;
    unsigned char *buf = NULL;
    int n = nl_recv(sk, &from, &buf, NULL), state = -1;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct nlattr *tb[IFLA_MAX + 1], *li[IFLA_INFO_MAX + 1], *bp[IFLA_BRPORT_MAX + 1];
    if (n > 0 && nlmsg_ok(h, n) && h->nlmsg_type == RTM_NEWLINK &&
        nlmsg_parse(h, sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL) == 0 && tb[IFLA_LINKINFO] &&
        nla_parse_nested(li, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL) == 0 &&
        li[IFLA_INFO_SLAVE_DATA] &&
        nla_parse_nested(bp, IFLA_BRPORT_MAX, li[IFLA_INFO_SLAVE_DATA], NULL) == 0 &&
        bp[IFLA_BRPORT_STATE])
        state = nla_get_u8(bp[IFLA_BRPORT_STATE]);
    free(buf);
    return state;
}

/* The host end gets its carrier when eth0 comes up, but its queueing discipline, operstate and
 * the bridge port's forwarding state change only when the kernel's linkwatch work runs, later
 * and under rtnl_lock; until then the bridge drops what it should forward to the sandbox. With
 * 16 creates at once, 7 of 64 first connections to a new sandbox lost their SYN and waited out
 * TCP's 1 s retransmission. So the network counts as set up once the port forwards, the last
 * of those steps (bounded: a late port delays the first packets, never the sandbox). */
static void
wait_port_forwarding(struct nl_sock *sk, int ifindex, const char *name)
{
    nl_socket_disable_auto_ack(sk);
    int64_t deadline = sbx_monotonic_ms() + 2000;
    do {
        int st = port_state(sk, ifindex);
        if (st == BR_STATE_FORWARDING || st < 0)
            return;
        usleep(100);
    } while (sbx_monotonic_ms() < deadline);
    fprintf(stderr, "sbx-monitor: %s: bridge port not forwarding after 2 s; continuing\n", name);
}

int
apid_net_child_setup(pid_t pid, void *data, sbx_error_t *err)
{
    json_t *plan = data;
    const char *bridge = json_string_value(json_object_get(plan, "bridge"));
    const char *veth = json_string_value(json_object_get(plan, "veth"));
    if (!bridge || !veth)
        return sbx_make_error(err, EINVAL, "net.json: bridge and veth required");
    cleanup_nl_sock struct nl_sock *sk = apid_nl_open(err);
    if (!sk)
        return -1;
    struct rtnl_link *br = NULL;
    int r = rtnl_link_get_kernel(sk, 0, bridge, &br);
    if (r < 0)
        return apid_nl_fail(err, r, "sandbox bridge");
    int bidx = rtnl_link_get_ifindex(br);
    unsigned mtu = rtnl_link_get_mtu(br);
    rtnl_link_put(br);

    /* One RTM_NEWLINK: the host end joins the bridge up, the peer is born in the sandbox's netns
     * already named eth0 (IFLA_NET_NS_PID), so nothing ever has to be moved or renamed. */
    struct rtnl_link *link = rtnl_link_veth_alloc();
    struct rtnl_link *peer = rtnl_link_veth_get_peer(link);
    rtnl_link_set_name(link, veth);
    rtnl_link_set_mtu(link, mtu);
    rtnl_link_set_master(link, bidx);
    rtnl_link_set_flags(link, IFF_UP);
    rtnl_link_set_name(peer, "eth0");
    rtnl_link_set_mtu(peer, mtu);
    rtnl_link_set_ns_pid(peer, pid);
    r = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(peer);
    rtnl_link_put(link);
    if (r < 0)
        return apid_nl_fail(err, r, "create veth");
    struct rtnl_link *host = NULL;
    if ((r = rtnl_link_get_kernel(sk, 0, veth, &host)) < 0)
        return apid_nl_fail(err, r, "host veth");
    int hidx = rtnl_link_get_ifindex(host);
    rtnl_link_put(host);
    if ((r = set_port_isolated(sk, hidx, err)) < 0)
        goto undo;

    if ((r = configure_inside(pid, plan, err)) < 0) {
        sbx_error_wrap(err, "sandbox network");
        goto undo;
    }
    wait_port_forwarding(sk, hidx, veth); /* sk's last use: it may stop auto-acking */
    return 0;
undo:
    apid_link_delete(veth);
    return r;
}
