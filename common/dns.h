/*
 * dns.h — asynchronous DNS on a libevent loop (c-ares underneath).
 *
 * One struct dns per event loop.  c-ares sockets are watched through
 * ARES_OPT_SOCK_STATE_CB and driven with ares_process_fd(); a timer follows
 * ares_timeout().  Callbacks are always invoked from the loop, never from
 * inside dns_resolve_*() itself.
 */
#ifndef MXSIFT_DNS_H
#define MXSIFT_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns;

enum dns_status {
	DNS_OK = 0,         /* hosts[] holds at least one MX host (maybe implicit) */
	DNS_NXDOMAIN,       /* the domain does not exist */
	DNS_NULL_MX,        /* RFC 7505 "MX 0 ." — domain accepts no mail */
	DNS_NO_MAIL,        /* no MX and no A/AAAA */
	DNS_ERROR           /* timeout, SERVFAIL, refused ... after retries */
};

struct dns_mx_host {
	char *name;            /* A-label, lowercase, no trailing dot */
	unsigned preference;
};

struct dns_mx_result {
	enum dns_status status;
	int implicit;          /* no MX: hosts[0] is the domain itself (RFC 5321 5.1) */
	size_t nhosts;
	struct dns_mx_host *hosts;   /* sorted by preference, then name */
	char mx_domain[256];   /* registrable domain (libpsl) of hosts[0]; "" unless OK */
	char error[128];       /* c-ares error text when DNS_ERROR */
};

/* Owned by the dns module; valid only during the callback. */
typedef void (*dns_mx_cb)(void *arg, const char *domain, const struct dns_mx_result *r);

/* addrs: IPv6 and IPv4 addresses of the host with port set; n may be 0.
 * status: DNS_OK, DNS_NXDOMAIN/DNS_NO_MAIL (no address), DNS_ERROR. */
typedef void (*dns_addr_cb)(void *arg, const char *host, enum dns_status status,
    const struct sockaddr_storage *addrs, size_t n);

/* server: "host:port", "host" (port 53) or NULL for the system's resolver.
 * Returns NULL and writes err on failure. */
struct dns *dns_new(struct event_base *base, const char *server, char *err, size_t errlen);
void dns_free(struct dns *d);   /* pending callbacks are NOT called */

/* Resolve MX for an A-label domain: MX, falling back to A/AAAA (implicit MX). */
void dns_resolve_mx(struct dns *d, const char *domain, dns_mx_cb cb, void *arg);
/* Resolve A and AAAA of host; port is stored in every returned address. */
void dns_resolve_addrs(struct dns *d, const char *host, int port, dns_addr_cb cb, void *arg);
/* Number of queries in flight. */
size_t dns_pending(const struct dns *d);
/* The adaptive bound on requests with queries out (dns.c's header) now, and
 * the most that had queries out at once since dns_new(). */
void dns_window(const struct dns *d, unsigned *window, unsigned *peak);

/* Registrable domain (libpsl) of host into out; falls back to host itself. */
void dns_mx_domain(const char *host, char *out, size_t outlen);

#endif
