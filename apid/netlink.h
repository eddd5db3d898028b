/* Netlink helpers shared by apid (bridge, cleanup) and sbx-launcher's monitors (each sandbox's
 * veth). Kept apart from net.c so the launcher links libnl only, not nftables and the rest. */
#ifndef APID_NETLINK_H
#define APID_NETLINK_H

#include <jansson.h>
#include <netlink/route/link.h>
#include <stdbool.h>
#include <netlink/netlink.h>
#include <sys/types.h>

#include "sbx.h"

int apid_nl_fail(sbx_error_t *err, int nlerr, const char *what);
/* A NETLINK_ROUTE socket, close-on-exec. */
struct nl_sock *apid_nl_open(sbx_error_t *err);
void apid_cleanup_nl_sockp(struct nl_sock **sk);
#define cleanup_nl_sock __attribute__((cleanup(apid_cleanup_nl_sockp)))
int apid_link_delete(const char *name);
/* Forgets the neighbour (ARP) entry for ip on dev; an error when there is none. */
int apid_neigh_delete(const char *dev, const char *ip);
/* Gives link the address cidr ("10.88.0.1/16") and brings it up; takes over the reference to
 * link. An address the link already has is an error unless exist_ok. `what` names the link in
 * errors ("eth0 address", "eth0 up"). */
int apid_nl_addr_up(struct nl_sock *sk, struct rtnl_link *link, const char *cidr, bool exist_ok,
                    const char *what, sbx_error_t *err);
/* libsbx net_setup hook (runs in the monitor between clone and the child's release): the veth
 * pair described by net.json (data), peer born in pid's netns as eth0, address and route. */
int apid_net_child_setup(pid_t pid, void *data, sbx_error_t *err);

#endif
