/* Egress by domain name: what each sandbox's resolver may answer, and what it learned.
 *
 * A sandbox's policy (networkPolicy, normalized by apid_parse_net_policy) has two kinds of rule.
 * Address rules (IPv4/CIDR[:port]) become nftables rules in the sandbox's chain (net.c). Domain
 * rules (example.com, *.example.com) are enforced here, by the resolver apid runs on the bridge
 * gateway (dns.c): a query for a name the policy denies is answered NXDOMAIN and never leaves
 * the host; the A records of an allowed name's answer are added to the sandbox's nftables set
 * (timeout from the record's TTL, bounded), and the chain accepts only addresses in that set
 * (plus its address rules). Since the chain also drops DNS and DNS-over-TLS to anyone else, an
 * address is reachable under `deny` only after an allowed name resolved to it here.
 *
 * The learned addresses are kept with the name that brought them, so a policy change re-checks
 * each one: removing a name closes its addresses at once, not when their TTL runs out.
 *
 * The egress API (GET/PATCH/DELETE /policy, OpenSandbox's egress-api.yaml) is served by apid on
 * the sandbox's port 18080 route, never by anything inside the sandbox, which can neither reach
 * apid nor read the per-sandbox key that route asks for. A change is written to the sandbox's
 * net.json before it is answered, so it survives an apid restart (apid_net_resync). */
#include "apid.h"
#include "dns_wire.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#define LEARN_MAX 4096 /* learned (name, address) pairs per sandbox; the oldest goes first */
#define TTL_MIN 30     /* seconds: a 0-5 s TTL must still outlive the connect that follows it */
#define TTL_MAX 3600   /* answers are capped to this, so no client caches past its set entry */
#define GRACE 30       /* seconds an entry outlives the TTL the client was told */

struct learned {
    char name[DNS_NAME_MAX];
    uint32_t ip; /* network order */
    int64_t exp_ms;
};

struct eg {
    char id[65];
    uint32_t addr; /* network order */
    json_t *policy;
    struct learned *l;
    size_t nl;
    unsigned long long allowed, denied;
};

static struct eg **sbs;
static size_t nsbs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *sandboxes_dir;
static uint8_t secret[32]; /* keys the per-sandbox egress API keys (apid_egress_token) */

/* The secret lives in <data-dir>/egress.key (0600, made once), so every sandbox's key is the same
 * across restarts and can be handed out from the create on, even while its image is pulled. */
int
apid_egress_init(const char *dir, const char *data_dir, sbx_error_t *err)
{
    free(sandboxes_dir);
    sandboxes_dir = xstrdup(dir);
    cleanup_free char *p = xasprintf("%s/egress.key", data_dir);
    cleanup_close int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0)
        return safe_read(fd, secret, sizeof(secret)) == (ssize_t)sizeof(secret)
                   ? 0
                   : sbx_make_error(err, 0, "%s: not %zu bytes (remove it to make a new one)", p,
                                    sizeof(secret));
    if (errno != ENOENT)
        return sbx_make_error(err, errno, "open %s", p);
    if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret))
        return sbx_make_error(err, errno, "getrandom");
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || safe_write(fd, secret, sizeof(secret)) < 0 || fsync(fd) < 0)
        return sbx_make_error(err, errno, "write %s", p);
    return 0;
}

/* HMAC-SHA256(secret, id) in hex: nothing per sandbox to store, and no key of one sandbox says
 * anything about another's. Never handed to the sandbox (its agent token is a different one). */
char *
apid_egress_token(const char *id)
{
    uint8_t md[32];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), secret, sizeof(secret), (const uint8_t *)id, strlen(id), md, &n) ||
        n != sizeof(md))
        return NULL;
    char *hex = xmalloc0(2 * sizeof(md) + 1);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return hex;
}

static struct eg *
find_id(const char *id)
{
    for (size_t i = 0; i < nsbs; i++)
        if (!strcmp(sbs[i]->id, id))
            return sbs[i];
    return NULL;
}

static struct eg *
find_addr(uint32_t addr)
{
    for (size_t i = 0; i < nsbs; i++)
        if (sbs[i]->addr == addr)
            return sbs[i];
    return NULL;
}

static void
eg_free(struct eg *e)
{
    if (!e)
        return;
    json_decref(e->policy);
    free(e->l);
    free(e);
}

/* Name vs one domain rule: "a.b" only itself, "*.a.b" every name below a.b but not a.b. */
static bool
name_matches(const char *pat, const char *name)
{
    if (pat[0] == '*' && pat[1] == '.') {
        size_t pl = strlen(pat + 1), nl = strlen(name);
        return nl > pl && !strcmp(name + nl - pl, pat + 1);
    }
    return !strcmp(pat, name);
}

/* The first domain rule that matches decides; none: the default action. */
bool
apid_egress_name_allowed(json_t *policy, const char *name)
{
    size_t i;
    json_t *r;
    json_array_foreach (json_object_get(policy, "egress"), i, r) {
        const char *d = json_string_value(json_object_get(r, "domain"));
        if (d && name_matches(d, name))
            return !strcmp(json_string_value(json_object_get(r, "action")), "allow");
    }
    const char *def = json_string_value(json_object_get(policy, "defaultAction"));
    return def && !strcmp(def, "allow");
}

bool
apid_egress_has_domains(json_t *policy)
{
    size_t i;
    json_t *r;
    json_array_foreach (json_object_get(policy, "egress"), i, r)
        if (json_object_get(r, "domain"))
            return true;
    return false;
}

void
apid_egress_register(const char *id, const char *addr, json_t *policy)
{
    struct in_addr a;
    if (!addr || inet_pton(AF_INET, addr, &a) != 1)
        return;
    struct eg *e = xmalloc0(sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->addr = a.s_addr;
    e->policy = json_deep_copy(policy ? policy : json_null());
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nsbs; i++) {
        if (!strcmp(sbs[i]->id, id) || sbs[i]->addr == e->addr) {
            eg_free(sbs[i]);
            sbs[i] = sbs[--nsbs];
            i--;
        }
    }
    sbs = xrealloc(sbs, (nsbs + 1) * sizeof(*sbs));
    sbs[nsbs++] = e;
    pthread_mutex_unlock(&lock);
}

void
apid_egress_forget(const char *id)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nsbs; i++) {
        if (!strcmp(sbs[i]->id, id)) {
            eg_free(sbs[i]);
            sbs[i] = sbs[--nsbs];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

int
apid_egress_query(uint32_t src, const char *name, char id_out[65])
{
    pthread_mutex_lock(&lock);
    struct eg *e = find_addr(src);
    int r = -1;
    if (e) {
        r = apid_egress_name_allowed(e->policy, name) ? 1 : 0;
        if (r)
            e->allowed++;
        else
            e->denied++;
        if (id_out)
            snprintf(id_out, 65, "%s", e->id);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

static char *
element_cmd(char *cmds, const char *set, uint32_t ip, int64_t secs)
{
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, a, sizeof(a));
    xappendf(&cmds, "add element inet sbx %s { %s timeout %llds }\n", set, a,
             (long long)(secs > 0 ? secs : 1));
    return cmds;
}

void
apid_egress_learn(uint32_t src, const char *name, const uint8_t ip[4], uint32_t ttl)
{
    int64_t now = apid_now_ms();
    int64_t secs = (int64_t)(ttl < TTL_MIN ? TTL_MIN : ttl > TTL_MAX ? TTL_MAX : ttl) + GRACE;
    int64_t exp = now + secs * 1000;
    uint32_t addr;
    memcpy(&addr, ip, 4);
    char set[32];
    cleanup_free char *cmds = NULL;
    pthread_mutex_lock(&lock);
    struct eg *e = find_addr(src);
    /* Checked again: the policy may have changed while the query was upstream. */
    if (!e || !apid_egress_name_allowed(e->policy, name)) {
        pthread_mutex_unlock(&lock);
        return;
    }
    apid_net_set_name(e->id, set);
    size_t i, oldest = 0;
    for (i = 0; i < e->nl; i++) {
        if (e->l[i].ip == addr && !strcmp(e->l[i].name, name))
            break;
        if (e->l[i].exp_ms < e->l[oldest].exp_ms)
            oldest = i;
    }
    if (i < e->nl) {
        if (e->l[i].exp_ms >= exp) { /* never shorten: the kernel takes the last timeout */
            pthread_mutex_unlock(&lock);
            return;
        }
    } else if (e->nl == LEARN_MAX) {
        i = oldest;
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &e->l[i].ip, a, sizeof(a));
        /* The address may be held by another name too; that one's next answer re-adds it. */
        xappendf(&cmds, "delete element inet sbx %s { %s }\n", set, a);
    } else {
        e->l = xrealloc(e->l, (e->nl + 1) * sizeof(*e->l));
        i = e->nl++;
    }
    snprintf(e->l[i].name, sizeof(e->l[i].name), "%s", name);
    e->l[i].ip = addr;
    /* Before the walk below, which reads this entry too: a new slot's expiry was whatever
     * realloc left there, and a garbage expiry made a timeout nftables refuses. */
    e->l[i].exp_ms = exp;
    /* Another name may hold the same address longer: the set keeps the longest. */
    int64_t longest = exp;
    for (size_t k = 0; k < e->nl; k++)
        if (e->l[k].ip == addr && e->l[k].exp_ms > longest)
            longest = e->l[k].exp_ms;
    cmds = element_cmd(cmds, set, addr, (longest - now + 999) / 1000);
    pthread_mutex_unlock(&lock);
    sbx_error_t err = NULL;
    if (apid_net_nft(cmds, &err) < 0) {
        log_warn("egress: sandbox address set %s: %s", set, err->msg);
        sbx_error_release(&err);
    }
}

static int
by_ip(const void *a, const void *b)
{
    uint32_t x = ((const struct learned *)a)->ip, y = ((const struct learned *)b)->ip;
    return x < y ? -1 : x > y;
}

/* The set's contents for a policy: every learned pair whose name it still allows, each address
 * with the latest expiry among its names. Sorted by address, the names of one address are
 * neighbours, so one pass finds each address's latest expiry (a pass per pair over all pairs
 * was 16 million steps at LEARN_MAX, under the lock). The order of e->l is free: learning
 * searches it whole. Called with the lock held. */
static char *
refill_cmds(struct eg *e, json_t *policy)
{
    char set[32];
    apid_net_set_name(e->id, set);
    int64_t now = apid_now_ms();
    char *cmds = NULL;
    xappendf(&cmds, "flush set inet sbx %s\n", set);
    size_t keep = 0;
    for (size_t i = 0; i < e->nl; i++)
        if (e->l[i].exp_ms > now && apid_egress_name_allowed(policy, e->l[i].name))
            e->l[keep++] = e->l[i];
    e->nl = keep;
    if (e->nl)
        qsort(e->l, e->nl, sizeof(*e->l), by_ip);
    for (size_t i = 0; i < e->nl;) {
        int64_t longest = e->l[i].exp_ms;
        size_t k = i + 1;
        for (; k < e->nl && e->l[k].ip == e->l[i].ip; k++)
            if (e->l[k].exp_ms > longest)
                longest = e->l[k].exp_ms;
        cmds = element_cmd(cmds, set, e->l[i].ip, (longest - now + 999) / 1000);
        i = k;
    }
    return cmds;
}

/* ---------- the egress API ---------- */

static const char *
mode_of(json_t *policy)
{
    const char *def = json_string_value(json_object_get(policy, "defaultAction"));
    return def && !strcmp(def, "allow") ? "allow_all" : "deny_all";
}

/* The policy as clients wrote it: {defaultAction, egress:[{action, target}]}. */
static json_t *
public_policy(json_t *policy)
{
    json_t *rules = json_array();
    size_t i;
    json_t *r;
    json_array_foreach (json_object_get(policy, "egress"), i, r)
        json_array_append_new(rules, json_pack("{s:O, s:O}", "action", json_object_get(r, "action"),
                                               "target", json_object_get(r, "target")));
    return json_pack("{s:O, s:o}", "defaultAction", json_object_get(policy, "defaultAction"),
                     "egress", rules);
}

static json_t *
status_json(json_t *policy, bool with_policy)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "status", "ok", "mode", mode_of(policy),
                          "enforcementMode", "dns+nft");
    if (with_policy)
        json_object_set_new(o, "policy", public_policy(policy));
    return o;
}

bool
apid_egress_known(const char *id)
{
    pthread_mutex_lock(&lock);
    bool k = find_id(id) != NULL;
    pthread_mutex_unlock(&lock);
    return k;
}

/* Rewrites net.json's policy (tmp + rename: a crash leaves the old file or the new one). */
static int
save_policy(const char *id, json_t *policy, sbx_error_t *err)
{
    cleanup_free char *p = xasprintf("%s/%s/net.json", sandboxes_dir, id);
    cleanup_free char *tmp = xasprintf("%s.tmp", p);
    json_t *plan = json_load_file(p, 0, NULL);
    if (!json_is_object(plan)) {
        json_decref(plan);
        return sbx_make_error(err, 0, "read %s", p);
    }
    json_object_set(plan, "policy", policy);
    int r = json_dump_file(plan, tmp, JSON_COMPACT);
    json_decref(plan);
    if (r < 0 || rename(tmp, p) < 0) {
        unlink(tmp);
        return sbx_make_error(err, errno, "write %s", p);
    }
    return 0;
}

/* Applies a new policy: nftables first (chain and set in one transaction), then the file, then
 * memory. A failure leaves the old policy in force everywhere. */
static int
replace_policy(struct eg *e, json_t *policy, sbx_error_t *err)
{
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &e->addr, a, sizeof(a));
    cleanup_free char *refill = refill_cmds(e, policy);
    int r = apid_net_apply_policy(e->id, a, policy, refill, err);
    if (r == 0)
        r = save_policy(e->id, policy, err);
    if (r < 0)
        return apid_fail(err, E_UNKNOWN, "egress policy of sandbox %s: %s", e->id, (*err)->msg);
    json_decref(e->policy);
    e->policy = json_incref(policy);
    return 0;
}

/* The policy with `rules` (taken) in place of its rules, applied; *out: the new status. */
static int
replace_rules(struct eg *e, json_t *rules, json_t **out, sbx_error_t *err)
{
    json_t *np = json_pack("{s:O, s:o}", "defaultAction",
                           json_object_get(e->policy, "defaultAction"), "egress", rules);
    int r = replace_policy(e, np, err);
    json_decref(np);
    if (r == 0)
        *out = status_json(e->policy, true);
    return r;
}

int
apid_egress_get(const char *id, json_t **out, sbx_error_t *err)
{
    pthread_mutex_lock(&lock);
    struct eg *e = find_id(id);
    if (e)
        *out = status_json(e->policy, true);
    pthread_mutex_unlock(&lock);
    return e ? 0 : apid_fail(err, E_NOT_FOUND, "sandbox %s has no egress policy", id);
}

static bool
names_target(json_t *rules, const char *t)
{
    size_t i;
    json_t *x;
    json_array_foreach (rules, i, x)
        if (!strcmp(json_string_value(json_object_get(x, "target")), t))
            return true;
    return false;
}

/* Incoming rules first, then the old ones whose target they do not name. */
static json_t *
merge_rules(json_t *old, json_t *incoming, sbx_error_t *err)
{
    json_t *merged = json_deep_copy(incoming);
    size_t i;
    json_t *x;
    json_array_foreach (old, i, x)
        if (!names_target(incoming, json_string_value(json_object_get(x, "target"))))
            json_array_append(merged, x);
    if (json_array_size(merged) > APID_MAX_EGRESS_RULES) {
        apid_fail(err, E_INVALID_PARAMETER,
                  "the merged policy would have %zu rules; at most %d are allowed",
                  json_array_size(merged), APID_MAX_EGRESS_RULES);
        json_decref(merged);
        return NULL;
    }
    return merged;
}

/* The old rules but those whose target `targets` names. Compared as normalized, so
 * "Example.COM." removes "example.com". */
static json_t *
remove_rules(json_t *old, json_t *targets, sbx_error_t *err)
{
    json_t *kept = json_array();
    size_t i, k;
    json_t *o, *x;
    json_array_foreach (old, i, o) {
        const char *t = json_string_value(json_object_get(o, "target"));
        bool gone = false;
        json_array_foreach (targets, k, x) {
            json_t *probe = json_pack("{s:s, s:O}", "action", "deny", "target", x);
            json_t *norm = NULL;
            if (apid_parse_net_rule(probe, "target", &norm, NULL) == 0)
                gone |= !strcmp(json_string_value(json_object_get(norm, "target")), t);
            gone |= !strcmp(json_string_value(x), t);
            json_decref(norm);
            json_decref(probe);
        }
        if (!gone)
            json_array_append(kept, o);
    }
    return kept;
}

/* Replaces sandbox id's rules by edit(its rules, arg), under the lock. */
static int
edit_rules(const char *id, json_t *(*edit)(json_t *old, json_t *arg, sbx_error_t *err), json_t *arg,
           json_t **out, sbx_error_t *err)
{
    pthread_mutex_lock(&lock);
    struct eg *e = find_id(id);
    int r = -1;
    if (!e) {
        r = apid_fail(err, E_NOT_FOUND, "sandbox %s has no egress policy", id);
    } else {
        json_t *rules = edit(json_object_get(e->policy, "egress"), arg, err);
        if (rules)
            r = replace_rules(e, rules, out, err);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

int
apid_egress_patch(const char *id, json_t *body, json_t **out, sbx_error_t *err)
{
    if (!json_is_array(body) || json_array_size(body) == 0)
        return apid_fail(err, E_INVALID_PARAMETER,
                         "body must be a non-empty JSON array of {action, target} rules");
    if (json_array_size(body) > APID_MAX_EGRESS_RULES)
        return apid_fail(err, E_INVALID_PARAMETER, "body has %zu rules; at most %d are allowed",
                         json_array_size(body), APID_MAX_EGRESS_RULES);
    json_t *incoming = json_array();
    size_t i;
    json_t *x;
    json_array_foreach (body, i, x) {
        char field[32];
        snprintf(field, sizeof(field), "rule [%zu]", i);
        json_t *rule = NULL;
        if (apid_parse_net_rule(x, field, &rule, err) < 0) {
            json_decref(incoming);
            return -1;
        }
        /* The first of several rules for one target wins (egress-api.yaml). */
        if (names_target(incoming, json_string_value(json_object_get(rule, "target"))))
            json_decref(rule);
        else
            json_array_append_new(incoming, rule);
    }
    int r = edit_rules(id, merge_rules, incoming, out, err);
    json_decref(incoming);
    return r;
}

int
apid_egress_delete(const char *id, json_t *body, json_t **out, sbx_error_t *err)
{
    if (!json_is_array(body) || json_array_size(body) == 0)
        return apid_fail(err, E_INVALID_PARAMETER,
                         "body must be a non-empty JSON array of target strings");
    size_t i;
    json_t *x;
    json_array_foreach (body, i, x)
        if (!json_is_string(x))
            return apid_fail(err, E_INVALID_PARAMETER, "body[%zu] must be a target string", i);
    return edit_rules(id, remove_rules, body, out, err);
}

/* Prometheus lines: DNS answers per sandbox (metrics.c). */
char *
apid_egress_metrics(void)
{
    char *s = NULL;
    xappendf(&s, "# HELP sbx_dns_queries_total DNS queries from sandboxes to apid's "
                 "resolver, by sandbox and decision.\n"
                 "# TYPE sbx_dns_queries_total counter\n");
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nsbs; i++)
        xappendf(&s,
                 "sbx_dns_queries_total{sandbox=\"%s\",result=\"allowed\"} %llu\n"
                 "sbx_dns_queries_total{sandbox=\"%s\",result=\"denied\"} %llu\n",
                 sbs[i]->id, sbs[i]->allowed, sbs[i]->id, sbs[i]->denied);
    pthread_mutex_unlock(&lock);
    return s;
}
