/* Sandbox networking: the bridge, one veth per sandbox, IPAM and the nftables policy.
 *
 * Layout (defaults; --bridge / --subnet change them):
 *   bridge sbx0 with the gateway 10.88.0.1/16; sandbox i gets 10.88.x.y/16 on eth0, default route
 *   via the gateway. 10.88.0.0/16 is podman's default range, which rarely collides with office
 *   or home LANs (192.168/16, 10.0/16, 172.16/12 are the usual ones).
 *
 * Isolation is layered so that no single mechanism carries it alone:
 *   - every host-side veth is an *isolated* bridge port (IFLA_BRPORT_ISOLATED): the bridge
 *     never forwards between two isolated ports, so sandbox→sandbox frames die at L2, where
 *     nftables' inet hooks cannot see them (that would need br_netfilter);
 *   - table `inet sbx` drops everything a sandbox sends to the host itself (input hook: every host
 *     address, apid's port included) except replies to connections the host opened (the proxy),
 *     and every forwarded packet from a sandbox unless its egress map entry says otherwise;
 *   - link-local destinations (169.254.0.0/16: the cloud metadata service and its credentials;
 *     fe80::/10; fd00:ec2::254) are dropped by a chain that no egress policy can reach, so they
 *     stay closed even for a sandbox whose policy allows everything (see nft_base);
 *   - egress that is allowed leaves through masquerade NAT.
 *
 * The veth is created by the sandbox's monitor process (apid_net_child_setup, called by libsbx
 * between clone and the child's release) with one RTM_NEWLINK whose peer is born inside the
 * sandbox netns as eth0 — no rename race, and the pair disappears by itself with the netns. The
 * monitor then sets eth0's address and route through a netlink socket made inside that netns.
 *
 * apid's own state: addresses live in the store's `address` column (allocated under one lock,
 * so never handed out twice, freed with the row), the per-sandbox policy in <sandbox dir>/net.json.
 * At start-up the nft table is rebuilt from scratch and refilled from the store, so a crash can
 * leave no stale rule behind. */
#include "apid.h"
#include "netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#define NFT_TABLE "sbx"

static struct {
    bool enabled;
    char bridge[IFNAMSIZ];
    uint32_t net, mask; /* host order */
    int prefix;
    char gateway[INET_ADDRSTRLEN];
    char subnet[INET_ADDRSTRLEN + 4];
    char owned_path[PATH_MAX];
    bool own_bridge, own_table;
    uint32_t cursor; /* next host number to try: rotate so a freed address is not reused at once */
    bool forward_on;
} N;
static struct sbx_lockfile bridge_lock = SBX_LOCKFILE_INIT, table_lock = SBX_LOCKFILE_INIT;
static pthread_mutex_t ipam_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nft_ctx *nft;

/* ---------- helpers ---------- */

int
apid_net_parse_subnet(const char *cidr, uint32_t *net, int *prefix, sbx_error_t *err)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", cidr ? cidr : "");
    char *slash = strchr(buf, '/');
    int64_t p;
    struct in_addr a;
    if (!slash || parse_int64(slash + 1, 0, 32, &p) < 0)
        return sbx_make_error(err, 0, "subnet `%s`: expected IPV4/PREFIX", cidr);
    *slash = '\0';
    if (inet_pton(AF_INET, buf, &a) != 1)
        return sbx_make_error(err, 0, "subnet `%s`: not an IPv4 address", cidr);
    uint32_t mask = p ? 0xffffffffu << (32 - p) : 0;
    if (ntohl(a.s_addr) & ~mask)
        return sbx_make_error(err, 0, "subnet `%s`: host bits are set", cidr);
    *net = ntohl(a.s_addr);
    *prefix = (int)p;
    return 0;
}

static void
fmt_ip(uint32_t host_order, char out[INET_ADDRSTRLEN])
{
    struct in_addr a = {.s_addr = htonl(host_order)};
    inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

/* Runs nft commands as one transaction. */
static int
nft_run(const char *cmds, sbx_error_t *err)
{
    pthread_mutex_lock(&nft_lock);
    int r = nft_run_cmd_from_buffer(nft, cmds);
    const char *e = nft_ctx_get_error_buffer(nft);
    if (r != 0)
        r = sbx_make_error(err, 0, "nftables: %s", e && *e ? e : "command failed");
    pthread_mutex_unlock(&nft_lock);
    return r;
}

static bool
nft_table_exists(void)
{
    return nft_run("list table inet " NFT_TABLE, NULL) == 0;
}

static void
save_owned(void)
{
    cleanup_free char *txt =
        xasprintf("%s%s", N.own_bridge ? "bridge\n" : "", N.own_table ? "table\n" : "");
    write_file(N.owned_path, txt, strlen(txt), NULL);
}

/* ---------- bridge ---------- */

static int
bridge_setup(sbx_error_t *err)
{
    cleanup_nl_sock struct nl_sock *sk = apid_nl_open(err);
    if (!sk)
        return -1;
    struct rtnl_link *br = NULL;
    int r = rtnl_link_get_kernel(sk, 0, N.bridge, &br);
    if (r < 0) {
        struct rtnl_link *nb = rtnl_link_bridge_alloc();
        rtnl_link_set_name(nb, N.bridge);
        /* A bridge without an address of its own takes the lowest of its ports' and changes it
         * as sandboxes come and go; every sandbox then sends to a gateway MAC that no longer
         * answers until its ARP entry expires (5-15 s of lost packets, seen as 13 s stalls and
         * lost SYNs). An explicit, locally administered address never changes. */
        unsigned char mac[6] = {0x02, 0x53, 0x42, 0x58, 0x00, 0x01};
        if (getrandom(mac + 2, 4, 0) != 4)
            memcpy(mac + 2, "SBX0", 4);
        struct nl_addr *ma = nl_addr_build(AF_LLC, mac, sizeof(mac));
        rtnl_link_set_addr(nb, ma);
        nl_addr_put(ma);
        r = rtnl_link_add(sk, nb, NLM_F_CREATE | NLM_F_EXCL);
        rtnl_link_put(nb);
        if (r < 0)
            return apid_nl_fail(err, r, "create bridge");
        N.own_bridge = true;
        save_owned();
        log_info("net: created bridge %s", N.bridge);
        if ((r = rtnl_link_get_kernel(sk, 0, N.bridge, &br)) < 0)
            return apid_nl_fail(err, r, "bridge");
    } else if (!rtnl_link_is_bridge(br)) {
        rtnl_link_put(br);
        return sbx_make_error(err, 0, "--bridge %s exists and is not a bridge", N.bridge);
    }
    /* The gateway address; EEXIST when a previous apid left it there. */
    cleanup_free char *gw = xasprintf("%s/%d", N.gateway, N.prefix);
    return apid_nl_addr_up(sk, br, gw, true, "bridge", err);
}

/* ---------- nftables ---------- */

static int
nft_base(sbx_error_t *err)
{
    /* Rebuilt as a whole: "add table" makes the delete valid when the table is missing, and the
     * whole buffer is one kernel transaction, so there is no window with a half policy. */
    /* Two kinds of chain. `input` and `guard` protect the host and the link-local services
     * whatever a sandbox's policy says; `forward` applies the per-sandbox egress policy, whose
     * rules (chains sb_*) are reached only by the jumps of its egress map. Netfilter runs every
     * base chain of a hook in priority order and a verdict ends only the base chain it is given
     * in: an `accept` in a policy chain cannot skip `guard`, while a `drop` anywhere is final.
     * The guards also sit at a lower priority (filter - 10) than `forward` (filter - 5), so they
     * see each packet first and no policy counter or log ever sees a packet they drop.
     *
     * Host addresses need no forward rule: a packet for any address of the host (the gateway,
     * another interface's address, 127.0.0.0/8 when route_localnet is on, a DNAT to a local
     * proxy such as kube2iam's) is delivered locally, through the input hook. There only replies
     * to connections the host opened are let in (apid's proxy to the agents); nothing on the
     * host is exposed to sandboxes, DNS included (images carry their own resolv.conf).
     * Link-local addresses are forwarded like any other when the host has a route to them (the
     * metadata service on most clouds is 169.254.169.254 via the default gateway); `guard`
     * drops them in the forward hook, which sees the address after any DNAT. */
    cleanup_free char *cmds = xasprintf(
        "add table inet " NFT_TABLE "\n"
        "delete table inet " NFT_TABLE "\n"
        "table inet " NFT_TABLE " {\n"
        "  map egress { type ipv4_addr : verdict; }\n"
        "  set closed4 { type ipv4_addr; flags interval; elements = { 169.254.0.0/16 }; }\n"
        "  set closed6 { type ipv6_addr; flags interval;\n"
        "                elements = { fe80::/10, fd00:ec2::254 }; }\n"
        "  chain input {\n"
        "    type filter hook input priority filter - 10; policy accept;\n"
        "    iifname \"%1$s\" ct state established,related accept\n"
        "    iifname \"%1$s\" drop\n"
        "  }\n"
        "  chain guard {\n"
        "    type filter hook forward priority filter - 10; policy accept;\n"
        "    iifname \"%1$s\" ip daddr @closed4 drop\n"
        "    iifname \"%1$s\" ip6 daddr @closed6 drop\n"
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter - 5; policy accept;\n"
        "    iifname \"%1$s\" oifname \"%1$s\" drop\n"
        "    oifname \"%1$s\" ct state established,related accept\n"
        "    oifname \"%1$s\" drop\n"
        "    iifname \"%1$s\" ip saddr %2$s ip saddr vmap @egress\n"
        "    iifname \"%1$s\" drop\n"
        "  }\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        "    ip saddr %2$s oifname != \"%1$s\" masquerade\n"
        "  }\n"
        "}\n",
        N.bridge, N.subnet);
    return nft_run(cmds, err);
}

/* --open-to-sandboxes: the operator's exceptions to the closed host and link-local addresses,
 * inserted ahead of the drops of `input` (the host's own addresses) and `guard` (link-local). An
 * accept there ends only that base chain: forwarded traffic still meets the sandbox's policy. */
static int
open_to_sandboxes(const char *list, sbx_error_t *err)
{
    if (!list || !*list)
        return 0;
    cleanup_free char *copy = xstrdup(list), *cmds = NULL;
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        json_t *in = json_pack("{s:s, s:s}", "action", "allow", "target", t), *rule = NULL;
        int r = apid_parse_net_rule(in, "--open-to-sandboxes", &rule, err);
        json_decref(in);
        const char *cidr = json_string_value(json_object_get(rule, "cidr"));
        if (r < 0 || !cidr) {
            json_decref(rule);
            return r < 0 ? r
                         : sbx_make_error(err, 0, "--open-to-sandboxes `%s`: not an address", t);
        }
        json_int_t port = json_integer_value(json_object_get(rule, "port"));
        cleanup_free char *match =
            port ? xasprintf("ip daddr %s meta l4proto { tcp, udp } th dport %lld", cidr,
                             (long long)port)
                 : xasprintf("ip daddr %s", cidr);
        xappendf(&cmds,
                 "insert rule inet " NFT_TABLE " input iifname \"%1$s\" %2$s accept\n"
                 "insert rule inet " NFT_TABLE " guard iifname \"%1$s\" %2$s accept\n",
                 N.bridge, match);
        json_decref(rule);
        log_warn("net: %s opened to sandboxes (--open-to-sandboxes)", t);
    }
    return nft_run(cmds, err);
}

static void
chain_name(const char *id, char out[32])
{
    /* Names derive from the id so release needs nothing but the id. */
    snprintf(out, 32, "sb_%.8s%.4s", id, id + 9);
}

static void
sysctl_forward_on(void)
{
    if (N.forward_on)
        return;
    cleanup_free char *cur = NULL;
    if (read_file("/proc/sys/net/ipv4/ip_forward", &cur, NULL, NULL) == 0 && cur[0] == '1') {
        N.forward_on = true;
        return;
    }
    /* Egress needs routing; this is the one host setting sbx changes, and only once a sandbox
     * asks for egress (logged so operators see it). */
    if (write_file("/proc/sys/net/ipv4/ip_forward", "1", 1, NULL) == 0) {
        log_warn("net: enabled net.ipv4.ip_forward for sandbox egress");
        N.forward_on = true;
    }
}

void
apid_net_set_name(const char *id, char out[32])
{
    snprintf(out, 32, "ds_%.8s%.4s", id, id + 9);
}

int
apid_net_nft(const char *cmds, sbx_error_t *err)
{
    if (!N.enabled)
        return 0;
    return nft_run(cmds, err);
}

const char *
apid_net_gateway(void)
{
    return N.enabled ? N.gateway : NULL;
}

/* Lets sandboxes reach apid's resolver (dns.c) once it listens on the gateway's port 53, and
 * nothing else of the host: the input chain's final drop stays. */
int
apid_net_open_dns(sbx_error_t *err)
{
    cleanup_free char *c = xasprintf("insert rule inet " NFT_TABLE " input iifname \"%s\" ip daddr "
                                     "%s meta l4proto { tcp, udp } th dport 53 accept",
                                     N.bridge, N.gateway);
    return nft_run(c, err);
}

/* policy: the normalized networkPolicy (apid_parse_net_policy). Every sandbox with an address gets
 * a chain and an address set, reached through the egress map; the chain is rebuilt whole (flush
 * and refill in one transaction) when the policy changes, so no packet sees half a policy:
 *   established flows of the sandbox        accept (a change applies to new connections)
 *   DNS (53) and DNS-over-TLS (853), tcp/udp drop, when there are domain rules: names go
 *                                           through apid's resolver on the gateway (input hook)
 *   address rules, in order                 accept | drop
 *   addresses learned from allowed names    accept (the set, filled by egress.c)
 *   default                                 accept | drop */
static char *
policy_cmds(const char *id, const char *addr, json_t *policy, const char *extra)
{
    const char *def = json_string_value(json_object_get(policy, "defaultAction"));
    bool def_allow = def && !strcmp(def, "allow");
    json_t *rules = json_object_get(policy, "egress");
    char ch[32], set[32];
    chain_name(id, ch);
    apid_net_set_name(id, set);
    bool domains = apid_egress_has_domains(policy);
    size_t i;
    json_t *ru;
    char *b = NULL;
    xappendf(&b,
             "add chain inet " NFT_TABLE " %1$s\n"
             "flush chain inet " NFT_TABLE " %1$s\n"
             "add set inet " NFT_TABLE " %2$s { type ipv4_addr; flags timeout; }\n"
             "add rule inet " NFT_TABLE " %1$s ct state established,related accept\n",
             ch, set);
    if (domains)
        xappendf(&b,
                 "add rule inet " NFT_TABLE " %s meta l4proto { tcp, udp } th dport "
                 "{ 53, 853 } drop\n",
                 ch);
    json_array_foreach (rules, i, ru) {
        const char *cidr = json_string_value(json_object_get(ru, "cidr"));
        if (!cidr)
            continue;
        const char *act = json_string_value(json_object_get(ru, "action"));
        json_int_t port = json_integer_value(json_object_get(ru, "port"));
        xappendf(&b, "add rule inet " NFT_TABLE " %s ip daddr %s", ch, cidr);
        if (port)
            xappendf(&b, " meta l4proto { tcp, udp } th dport %lld", (long long)port);
        xappendf(&b, " %s\n", !strcmp(act, "allow") ? "accept" : "drop");
    }
    if (!def_allow)
        xappendf(&b, "add rule inet " NFT_TABLE " %s ip daddr @%s accept\n", ch, set);
    xappendf(&b,
             "add rule inet " NFT_TABLE " %s %s\n"
             "add element inet " NFT_TABLE " egress { %s : jump %s }\n%s",
             ch, def_allow ? "accept" : "drop", addr, ch, extra ? extra : "");
    return b;
}

/* `always`: build the chain even for a policy that allows nothing (a change from one that
 * allowed something must replace its chain); a new sandbox that may send nothing needs none, the
 * forward chain's final drop is its policy, and its create saves an nftables transaction. */
static int
policy_apply(const char *id, const char *addr, json_t *policy, const char *extra, bool always,
             sbx_error_t *err)
{
    const char *def = json_string_value(json_object_get(policy, "defaultAction"));
    size_t i;
    json_t *ru;
    bool any_allow = def && !strcmp(def, "allow");
    json_array_foreach (json_object_get(policy, "egress"), i, ru)
        any_allow |= !strcmp(json_string_value(json_object_get(ru, "action")), "allow");
    if (!any_allow && !always)
        return 0;
    if (any_allow)
        sysctl_forward_on();
    cleanup_free char *cmds = policy_cmds(id, addr, policy, extra);
    return nft_run(cmds, err);
}

int
apid_net_apply_policy(const char *id, const char *addr, json_t *policy, const char *extra,
                      sbx_error_t *err)
{
    if (!N.enabled)
        return 0;
    return policy_apply(id, addr, policy, extra, true, err);
}

/* ---------- public: apid side ---------- */

bool
apid_net_enabled(void)
{
    return N.enabled;
}

const char *
apid_net_bridge(void)
{
    return N.bridge;
}

static int
net_lock_one(const char *path, const char *what, struct sbx_lockfile *l, sbx_error_t *err)
{
    pid_t holder = 0;
    int r = sbx_lockfile_take(l, path, 0, true, &holder, err);
    if (r <= 0)
        return r;
    cleanup_free char *who = holder ? xasprintf("PID %d", (int)holder) : xstrdup("PID unknown");
    return sbx_make_error(err, 0,
                          "%s in this network namespace is in use by another sbx-apid "
                          "(%s; lock %s)",
                          what, who, path);
}

int
apid_net_lock(const struct apid_config *cfg, sbx_error_t *err)
{
    if (!cfg->bridge || !*cfg->bridge || !strcmp(cfg->bridge, "none"))
        return 0;
    if (strlen(cfg->bridge) >= IFNAMSIZ || strchr(cfg->bridge, '/'))
        return sbx_make_error(err, 0, "--bridge `%s`: not an interface name", cfg->bridge);
    /* Links and nftables tables are per network namespace; the lock names say which one. Its
     * inode is stable while the namespace lives, and the namespace lives while we are in it. */
    struct stat ns;
    if (stat("/proc/self/ns/net", &ns) < 0)
        return sbx_make_error(err, errno, "stat /proc/self/ns/net");
    int r = mkdir_p("/run/sbx", 0711, err);
    if (r < 0)
        return r;
    if (mkdir(APID_NET_LOCK_DIR, 0700) < 0 && errno != EEXIST)
        return sbx_make_error(err, errno, "mkdir `%s`", APID_NET_LOCK_DIR);
    cleanup_free char *bp =
        xasprintf(APID_NET_LOCK_DIR "/ns%lu-bridge-%s.lock", (unsigned long)ns.st_ino, cfg->bridge);
    cleanup_free char *tp =
        xasprintf(APID_NET_LOCK_DIR "/ns%lu-nft-" NFT_TABLE ".lock", (unsigned long)ns.st_ino);
    cleanup_free char *bwhat = xasprintf("bridge %s", cfg->bridge);
    if ((r = net_lock_one(bp, bwhat, &bridge_lock, err)) < 0 ||
        (r = net_lock_one(tp, "nft table inet " NFT_TABLE, &table_lock, err)) < 0) {
        sbx_lockfile_release(&bridge_lock);
        return r;
    }
    return 0;
}

int
apid_net_init(const struct apid_config *cfg, sbx_error_t *err)
{
    if (!cfg->bridge || !*cfg->bridge || !strcmp(cfg->bridge, "none")) {
        log_warn("net: --bridge none: sandboxes get only a loopback interface");
        return 0;
    }
    if (strlen(cfg->bridge) >= IFNAMSIZ)
        return sbx_make_error(err, 0, "--bridge `%s`: name too long", cfg->bridge);
    if (bridge_lock.fd < 0)
        return sbx_make_error(err, 0, "net: the bridge lock is not held (apid_net_lock)");
    snprintf(N.bridge, sizeof(N.bridge), "%s", cfg->bridge);
    int r = apid_net_parse_subnet(cfg->subnet, &N.net, &N.prefix, err);
    if (r < 0)
        return r;
    if (N.prefix < 8 || N.prefix > 29)
        return sbx_make_error(err, 0, "--subnet %s: prefix must be /8../29", cfg->subnet);
    N.mask = 0xffffffffu << (32 - N.prefix);
    fmt_ip(N.net + 1, N.gateway);
    char nb[INET_ADDRSTRLEN];
    fmt_ip(N.net, nb);
    snprintf(N.subnet, sizeof(N.subnet), "%s/%d", nb, N.prefix);
    N.cursor = 2;
    snprintf(N.owned_path, sizeof(N.owned_path), "%s/net-owned", cfg->run_dir);
    cleanup_free char *owned = NULL;
    if (read_file(N.owned_path, &owned, NULL, NULL) == 0) {
        N.own_bridge = strstr(owned, "bridge") != NULL;
        N.own_table = strstr(owned, "table") != NULL;
    }
    nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft)
        return sbx_make_error(err, ENOMEM, "nftables context");
    nft_ctx_buffer_output(nft);
    nft_ctx_buffer_error(nft);
    if ((r = bridge_setup(err)) < 0)
        return sbx_error_wrap(err, "net: bridge %s", N.bridge);
    if (!nft_table_exists()) {
        N.own_table = true;
        save_owned();
    }
    if ((r = nft_base(err)) < 0 || (r = open_to_sandboxes(cfg->open_to_sandboxes, err)) < 0)
        return sbx_error_wrap(err, "net: nft table inet " NFT_TABLE);
    N.enabled = true;
    log_info("net: bridge %s, gateway %s, subnet %s", N.bridge, N.gateway, N.subnet);
    return 0;
}

/* The IPAM table is the set of live addresses: loaded from the store's non-terminal rows at
 * start, grown under ipam_lock here, shrunk by apid_net_release. Rows carry the address, so the
 * store is what makes it durable; a sandbox not yet (or never: warm pool) in the store holds its
 * address in memory only and cannot leak it across a restart. */
static char **live;
static size_t n_live;

static bool
live_has(const char *ip)
{
    for (size_t i = 0; i < n_live; i++)
        if (!strcmp(live[i], ip))
            return true;
    return false;
}

static void
live_add(const char *ip)
{
    live = xrealloc(live, (n_live + 1) * sizeof(*live));
    live[n_live++] = xstrdup(ip);
}

static void
live_del(const char *ip)
{
    for (size_t i = 0; i < n_live; i++) {
        if (!strcmp(live[i], ip)) {
            free(live[i]);
            live[i] = live[--n_live];
            return;
        }
    }
}

int
apid_net_load(struct apid_store *st, sbx_error_t *err)
{
    if (!N.enabled)
        return 0;
    struct apid_sandbox **all = NULL;
    size_t n = 0;
    int r = apid_store_all(st, &all, &n, err);
    pthread_mutex_lock(&ipam_lock);
    for (size_t i = 0; r == 0 && i < n; i++)
        if (all[i]->address && !apid_state_terminal(all[i]->state) && !live_has(all[i]->address))
            live_add(all[i]->address);
    pthread_mutex_unlock(&ipam_lock);
    apid_sandbox_list_free(all, n);
    return r;
}

size_t
apid_net_live_count(void)
{
    pthread_mutex_lock(&ipam_lock);
    size_t n = n_live;
    pthread_mutex_unlock(&ipam_lock);
    return n;
}

int
apid_net_alloc(const char *id, char **addr, char **veth, sbx_error_t *err)
{
    pthread_mutex_lock(&ipam_lock);
    uint32_t cands = (~N.mask) - 2; /* host numbers 2..broadcast-1: .0 net, .1 gateway */
    uint32_t pick = 0;
    char ip[INET_ADDRSTRLEN];
    for (uint32_t k = 0; k < cands; k++) {
        uint32_t h = 2 + (N.cursor - 2 + k) % cands;
        fmt_ip(N.net + h, ip);
        if (!live_has(ip)) {
            pick = h;
            break;
        }
    }
    int r = 0;
    if (!pick) {
        r = apid_fail(err, E_UNAVAILABLE, "the sandbox subnet %s has no free address", N.subnet);
    } else {
        live_add(ip);
        N.cursor = pick + 1;
        *addr = xstrdup(ip);
        char v[IFNAMSIZ];
        apid_net_veth_name(id, v);
        *veth = xstrdup(v);
    }
    pthread_mutex_unlock(&ipam_lock);
    return r;
}

void
apid_net_veth_name(const char *id, char out[IFNAMSIZ])
{
    snprintf(out, IFNAMSIZ, "vsbx%.8s%.2s", id, id + 9);
}

json_t *
apid_net_plan(const char *id, const char *addr, json_t *policy)
{
    char veth[IFNAMSIZ];
    apid_net_veth_name(id, veth);
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:O}", "mode", "bridge", "bridge", N.bridge,
                     "veth", veth, "address", addr, "prefix", N.prefix, "gateway", N.gateway,
                     "policy", policy ? policy : json_null());
}

int
apid_net_attach(const char *id, const char *addr, json_t *policy, sbx_error_t *err)
{
    if (!N.enabled || !addr)
        return 0;
    int r = policy_apply(id, addr, policy, NULL, false, err);
    if (r == 0)
        apid_egress_register(id, addr, policy);
    return r;
}

/* Idempotent; every step tolerates "already gone". */
void
apid_net_release(const char *id, const char *addr, const char *veth)
{
    if (!N.enabled)
        return;
    char ch[32], set[32];
    chain_name(id, ch);
    apid_net_set_name(id, set);
    apid_egress_forget(id);
    if (addr) {
        /* The host's ARP entry for the address still names the gone sandbox's MAC, for up to a
         * minute (REACHABLE, then STALE + probes). A sandbox that gets the address next would be
         * unreachable from apid meanwhile (connect times out: the agent never looks ready). The
         * allocation cursor makes quick reuse rare, but it restarts at the subnet's start with
         * apid, so after a restart every create reused a just-freed address. */
        apid_neigh_delete(N.bridge, addr);
        pthread_mutex_lock(&ipam_lock);
        live_del(addr);
        pthread_mutex_unlock(&ipam_lock);
        cleanup_free char *c1 = xasprintf("delete element inet " NFT_TABLE " egress { %s }", addr);
        nft_run(c1, NULL);
    }
    /* "add" first makes each delete valid whether or not the chain and set exist (a sandbox
     * that was never allowed anything has neither), so this is one transaction that succeeds. */
    cleanup_free char *c2 =
        xasprintf("add chain inet " NFT_TABLE " %1$s\nflush chain inet " NFT_TABLE " %1$s\n"
                  "delete chain inet " NFT_TABLE " %1$s\n"
                  "add set inet " NFT_TABLE " %2$s { type ipv4_addr; flags timeout; }\n"
                  "delete set inet " NFT_TABLE " %2$s",
                  ch, set);
    nft_run(c2, NULL);
    /* The pair goes away with the sandbox netns, but netns teardown is asynchronous in the
     * kernel; deleting the host end makes the release immediate and observable. */
    if (veth && *veth)
        apid_link_delete(veth);
}

/* After recovery: policy rules for every live sandbox, and no host veth on the bridge that no
 * live sandbox owns. */
int
apid_net_resync(struct apid_store *st, const char *sandboxes_dir, sbx_error_t *err)
{
    if (!N.enabled)
        return 0;
    struct apid_sandbox **all = NULL;
    size_t n = 0;
    int r = apid_store_all(st, &all, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (!all[i]->address || apid_state_terminal(all[i]->state))
            continue;
        cleanup_free char *p = xasprintf("%s/%s/net.json", sandboxes_dir, all[i]->id);
        json_t *plan = json_load_file(p, 0, NULL);
        sbx_error_t e = NULL;
        json_t *pol = json_object_get(plan, "policy");
        if (policy_apply(all[i]->id, all[i]->address, pol, NULL, false, &e) < 0) {
            log_err("net: sandbox %s: %s", all[i]->id, e->msg);
            sbx_error_release(&e);
        } else {
            apid_egress_register(all[i]->id, all[i]->address, pol);
        }
        json_decref(plan);
    }
    cleanup_nl_sock struct nl_sock *sk = apid_nl_open(NULL);
    struct nl_cache *cache = NULL;
    if (sk && rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache) == 0) {
        int bidx = rtnl_link_name2i(cache, N.bridge);
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
            struct rtnl_link *l = (struct rtnl_link *)o;
            const char *name = rtnl_link_get_name(l);
            if (!name || strncmp(name, "vsbx", 4) || rtnl_link_get_master(l) != bidx)
                continue;
            bool live = false;
            for (size_t i = 0; i < n && !live; i++)
                live = all[i]->veth && !strcmp(all[i]->veth, name) &&
                       !apid_state_terminal(all[i]->state);
            if (!live) {
                log_warn("net: removing stale sandbox link %s", name);
                rtnl_link_delete(sk, l);
            }
        }
        nl_cache_free(cache);
    }
    apid_sandbox_list_free(all, n);
    return 0;
}

void
apid_net_shutdown(bool in_use)
{
    if (!N.enabled) {
        sbx_lockfile_release(&table_lock);
        sbx_lockfile_release(&bridge_lock);
        return;
    }
    /* Running sandboxes outlive apid and keep their network; with none left, remove exactly
     * what apid created and nothing else. */
    if (!in_use) {
        if (N.own_table)
            nft_run("delete table inet " NFT_TABLE, NULL);
        if (N.own_bridge)
            apid_link_delete(N.bridge);
        unlink(N.owned_path);
    }
    nft_ctx_free(nft);
    nft = NULL;
    N.enabled = false;
    sbx_lockfile_release(&table_lock);
    sbx_lockfile_release(&bridge_lock);
}
