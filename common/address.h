/*
 * address.h — parse, check and normalise one email address (pure, no I/O).
 *
 * Accepts RFC 5321/5322 addr-spec as mailbox providers accept it: dot-atom or
 * quoted local part, a domain name (IDN U-labels converted to A-labels with
 * libidn2).  Leading/trailing white space is trimmed; the domain is
 * lowercased; the local part is kept as given.  Anything with CR, LF, NUL or
 * another control character is rejected, so such bytes can never reach a
 * socket.  Each rejection names its rule (address_err_name()).
 */
#ifndef MXSIFT_ADDRESS_H
#define MXSIFT_ADDRESS_H

#include <stddef.h>

#define ADDR_LOCAL_MAX   64
#define ADDR_DOMAIN_MAX  253
#define ADDR_PATH_MAX    254   /* whole address, RFC 5321 4.5.3.1.3 */

enum addr_err {
	ADDR_OK = 0,
	ADDR_EMPTY,
	ADDR_CONTROL_CHAR,      /* CR, LF, NUL, other C0/DEL */
	ADDR_NO_AT,
	ADDR_LOCAL_EMPTY,
	ADDR_LOCAL_TOO_LONG,
	ADDR_LOCAL_BAD_CHAR,
	ADDR_LOCAL_DOTS,        /* leading, trailing or consecutive dots */
	ADDR_QUOTED_BAD,        /* malformed quoted-string */
	ADDR_DOMAIN_EMPTY,
	ADDR_DOMAIN_TOO_LONG,
	ADDR_DOMAIN_BAD,        /* bad label: chars, length, hyphens, dots */
	ADDR_DOMAIN_NO_DOT,     /* single label: not routable on the Internet */
	ADDR_IP_LITERAL,        /* [1.2.3.4]: valid syntax, not probed */
	ADDR_IDN_BAD,           /* libidn2 refused the U-label */
	ADDR_PATH_TOO_LONG,
	ADDR_BAD_UTF8,
	ADDR__COUNT
};

#define ADDR_F_SMTPUTF8  0x01u  /* local part contains UTF-8 */
#define ADDR_F_IDN       0x02u  /* domain was converted from U-labels */

struct address {
	char local[ADDR_LOCAL_MAX * 4 + 3];  /* as given (UTF-8 allowed), quotes kept */
	char domain[ADDR_DOMAIN_MAX + 1];    /* lowercase A-label form, no trailing dot */
	char full[ADDR_PATH_MAX * 4 + 8];    /* local@domain, normalised */
	unsigned flags;                      /* ADDR_F_* */
};

/* Parse in[0..len) (need not be NUL-terminated).  Returns ADDR_OK and fills
 * *out, or an error code (out is then unspecified). */
enum addr_err address_parse(const char *in, size_t len, struct address *out);

/* Stable snake_case rule name, e.g. "local_too_long"; and a human sentence. */
const char *address_err_name(enum addr_err e);
const char *address_err_text(enum addr_err e);

#endif
