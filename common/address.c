/*
 * address.c — parse, check and normalise one email address (see address.h).
 *
 * Owns the syntax rules for an address as an SMTP client will send it in
 * RCPT TO: RFC 5321 path limits, RFC 5322 dot-atom / quoted-string local
 * parts, RFC 6531 UTF-8 local parts, and RFC 5890 IDN domains (via libidn2).
 * Returns ADDR_OK and the normalised address, or the first rule the input
 * breaks.  Pure: no I/O, no globals, no allocation kept past the call.
 *
 * Order of checks (so the reported rule is predictable):
 *   control bytes anywhere → trim SP/TAB → empty → UTF-8 → split at '@'
 *   → local part → domain → whole path length.
 *
 * Decisions beyond the RFCs, taken because mailbox providers do the same:
 *   - TAB is trimmed at the ends but is a control character inside.
 *   - C1 controls (U+0080..U+009F) count as control characters too: U+0085
 *     (NEL) is a line break to some software.
 *   - An empty quoted local part ("") is ADDR_LOCAL_EMPTY.
 *   - A domain longer than ADDR_DOMAIN_RAW_MAX bytes before IDN conversion is
 *     ADDR_DOMAIN_TOO_LONG without asking libidn2 (bounds the work per row).
 *   - An all-numeric last label is ADDR_DOMAIN_BAD: no TLD is numeric, and it
 *     catches bare IPv4 addresses written without brackets.
 */
#include "address.h"

#include <idn2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* UTS #46 mapping can drop characters (soft hyphens ...), so a U-label
 * domain may be longer in bytes than its A-label form; cap it generously. */
#define ADDR_DOMAIN_RAW_MAX 1024

static const struct {
	const char *name;
	const char *text;
} address_errs[ADDR__COUNT] = {
	[ADDR_OK] = { "ok", "The address is valid." },
	[ADDR_EMPTY] = { "empty", "The address is empty." },
	[ADDR_CONTROL_CHAR] = { "control_char",
	    "The address contains a control character (CR, LF, NUL, TAB or similar)." },
	[ADDR_NO_AT] = { "no_at", "The address has no '@' sign." },
	[ADDR_LOCAL_EMPTY] = { "local_empty",
	    "The part before the '@' is empty." },
	[ADDR_LOCAL_TOO_LONG] = { "local_too_long",
	    "The part before the '@' is longer than 64 octets." },
	[ADDR_LOCAL_BAD_CHAR] = { "local_bad_char",
	    "The part before the '@' contains a character not allowed there." },
	[ADDR_LOCAL_DOTS] = { "local_dots",
	    "The part before the '@' starts or ends with a dot, or has two dots in a row." },
	[ADDR_QUOTED_BAD] = { "quoted_bad",
	    "The quoted part before the '@' is malformed." },
	[ADDR_DOMAIN_EMPTY] = { "domain_empty",
	    "The domain after the '@' is empty." },
	[ADDR_DOMAIN_TOO_LONG] = { "domain_too_long",
	    "The domain is longer than 253 octets." },
	[ADDR_DOMAIN_BAD] = { "domain_bad",
	    "The domain is not a valid host name." },
	[ADDR_DOMAIN_NO_DOT] = { "domain_no_dot",
	    "The domain has a single label and is not reachable on the Internet." },
	[ADDR_IP_LITERAL] = { "ip_literal",
	    "The domain is an IP address literal ([...]): RFC 5321 allows it, but "
	    "mailbox providers refuse such addresses and no MX applies, so it is "
	    "treated as invalid and not probed." },
	[ADDR_IDN_BAD] = { "idn_bad",
	    "The internationalised domain name cannot be converted to ASCII." },
	[ADDR_PATH_TOO_LONG] = { "path_too_long",
	    "The whole address is longer than 254 octets." },
	[ADDR_BAD_UTF8] = { "bad_utf8", "The address is not valid UTF-8." },
};

const char *
address_err_name(enum addr_err e)
{
	if ((unsigned)e >= ADDR__COUNT)
		return "unknown";
	return address_errs[e].name;
}

const char *
address_err_text(enum addr_err e)
{
	if ((unsigned)e >= ADDR__COUNT)
		return "Unknown address error.";
	return address_errs[e].text;
}

/* RFC 5322 atext, ASCII part. */
static int
address_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Decode one UTF-8 sequence at s[0..len).  Returns its length and stores the
 * code point, or 0 for an invalid sequence (overlong, surrogate, > U+10FFFF,
 * truncated).
 */
static size_t
address_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n, i;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2, c = s[0] & 0x1f, min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3, c = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4, c = s[0] & 0x07, min = 0x10000;
	} else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Whole-input checks: control bytes (C0, DEL, C1) and UTF-8 validity.
 * TAB is allowed here only because the caller trims it at the ends first
 * and then rejects any that remain. */
static enum addr_err
address_check_bytes(const unsigned char *s, size_t len, int allow_tab)
{
	enum addr_err utf8 = ADDR_OK;
	uint32_t cp;
	size_t i, n;

	for (i = 0; i < len; i += n) {
		if (s[i] < 0x80) {
			n = 1;
			if ((s[i] < 0x20 && !(allow_tab && s[i] == '\t')) ||
			    s[i] == 0x7f)
				return ADDR_CONTROL_CHAR;
			continue;
		}
		n = address_utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			/* Keep scanning: a control byte later wins. */
			utf8 = ADDR_BAD_UTF8;
			n = 1;
		} else if (cp >= 0x80 && cp <= 0x9f)
			return ADDR_CONTROL_CHAR;
	}
	return utf8;
}

/*
 * Quoted local part starting at s[0] == '"'.  Returns the length including
 * both quotes, or 0 when there is no closing quote or an escape is bad.
 * qcontent per RFC 5321 qtextSMTP / quoted-pairSMTP, plus UTF-8 (RFC 6531).
 */
static size_t
address_quoted_len(const unsigned char *s, size_t len, enum addr_err *err)
{
	size_t i;

	for (i = 1; i < len; i++) {
		if (s[i] == '"')
			return i + 1;
		if (s[i] == '\\') {
			if (i + 1 >= len || s[i + 1] < 0x20 || s[i + 1] > 0x7e) {
				*err = ADDR_QUOTED_BAD;
				return 0;
			}
			i++;
		}
		/* Everything else here is printable ASCII or valid UTF-8:
		 * address_check_bytes() already ran. */
	}
	*err = ADDR_QUOTED_BAD;
	return 0;
}

static enum addr_err
address_check_dot_atom(const unsigned char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] < 0x80 && s[i] != '.' && !address_is_atext(s[i]))
			return ADDR_LOCAL_BAD_CHAR;
	if (s[0] == '.' || s[len - 1] == '.')
		return ADDR_LOCAL_DOTS;
	for (i = 1; i < len; i++)
		if (s[i] == '.' && s[i - 1] == '.')
			return ADDR_LOCAL_DOTS;
	return ADDR_OK;
}

/* Checks an ASCII, lowercased domain without trailing dot. */
static enum addr_err
address_check_domain(const char *d, size_t len)
{
	size_t i, start, labels = 0;
	int numeric = 1;

	if (len == 0)
		return ADDR_DOMAIN_BAD;
	if (len > ADDR_DOMAIN_MAX)
		return ADDR_DOMAIN_TOO_LONG;
	for (start = 0, i = 0; i <= len; i++) {
		if (i < len && d[i] != '.') {
			unsigned char c = (unsigned char)d[i];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			    c == '-'))
				return ADDR_DOMAIN_BAD;
			if (!(c >= '0' && c <= '9'))
				numeric = 0;
			continue;
		}
		if (i - start < 1 || i - start > 63)
			return ADDR_DOMAIN_BAD;
		if (d[start] == '-' || d[i - 1] == '-')
			return ADDR_DOMAIN_BAD;
		labels++;
		if (i < len)
			numeric = 1;	/* only the last label's value matters */
		start = i + 1;
	}
	if (labels < 2)
		return ADDR_DOMAIN_NO_DOT;
	if (numeric)
		return ADDR_DOMAIN_BAD;
	return ADDR_OK;
}

/* IP literal "[...]": RFC 5321 dtext is %d33-90 / %d94-126. */
static enum addr_err
address_check_literal(const unsigned char *d, size_t len)
{
	size_t i;

	if (len < 3 || d[len - 1] != ']')
		return ADDR_DOMAIN_BAD;
	for (i = 1; i < len - 1; i++)
		if (d[i] < 33 || d[i] > 126 || d[i] == '[' || d[i] == ']' ||
		    d[i] == '\\')
			return ADDR_DOMAIN_BAD;
	return ADDR_IP_LITERAL;
}

/* Does any label start with the ACE prefix "xn--"? (raw is lowercase) */
static int
address_has_alabel(const char *raw)
{
	const char *p = raw;

	for (;;) {
		if (strncmp(p, "xn--", 4) == 0)
			return 1;
		if ((p = strchr(p, '.')) == NULL)
			return 0;
		p++;
	}
}

static enum addr_err
address_parse_domain(const unsigned char *d, size_t len, struct address *out)
{
	char raw[ADDR_DOMAIN_RAW_MAX + 1];
	char *ascii = NULL;
	int nonascii = 0;
	size_t i, n;
	enum addr_err e;

	if (len == 0)
		return ADDR_DOMAIN_EMPTY;
	if (d[0] == '[')
		return address_check_literal(d, len);
	if (len > ADDR_DOMAIN_RAW_MAX)
		return ADDR_DOMAIN_TOO_LONG;
	for (i = 0; i < len; i++) {
		if (d[i] >= 0x80)
			nonascii = 1;
		raw[i] = (d[i] >= 'A' && d[i] <= 'Z') ? (char)(d[i] + 32) :
		    (char)d[i];
	}
	raw[len] = '\0';

	if (nonascii) {
		if (idn2_to_ascii_8z(raw, &ascii,
		    IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK) {
			free(ascii);
			return ADDR_IDN_BAD;
		}
		n = strlen(ascii);
		if (n > ADDR_DOMAIN_RAW_MAX) {
			free(ascii);
			return ADDR_DOMAIN_TOO_LONG;
		}
		for (i = 0; i < n; i++)
			raw[i] = (ascii[i] >= 'A' && ascii[i] <= 'Z') ?
			    (char)(ascii[i] + 32) : ascii[i];
		raw[n] = '\0';
		free(ascii);
		len = n;
		out->flags |= ADDR_F_IDN;
	}

	/* An ASCII A-label must decode: "xn--zz.com" is not a domain anyone
	 * can register, and a server would refuse it anyway. */
	if (!nonascii && address_has_alabel(raw)) {
		if (idn2_to_ascii_8z(raw, &ascii,
		    IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK) {
			free(ascii);
			return ADDR_IDN_BAD;
		}
		free(ascii);
	}

	/* One trailing dot is the DNS root: "example.com." is fully qualified. */
	if (len > 0 && raw[len - 1] == '.')
		raw[--len] = '\0';
	if ((e = address_check_domain(raw, len)) != ADDR_OK)
		return e;
	memcpy(out->domain, raw, len + 1);
	return ADDR_OK;
}

enum addr_err
address_parse(const char *in, size_t len, struct address *out)
{
	const unsigned char *s = (const unsigned char *)in;
	const unsigned char *at, *dom;
	size_t llen, dlen, i;
	enum addr_err e;

	memset(out, 0, sizeof(*out));
	if (in == NULL)
		return ADDR_EMPTY;

	/* Control bytes anywhere, even where trimming would remove them, so
	 * "a@b.com\r\n" is refused rather than quietly cleaned. */
	if ((e = address_check_bytes(s, len, 1)) == ADDR_CONTROL_CHAR)
		return e;
	while (len > 0 && (s[0] == ' ' || s[0] == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0)
		return ADDR_EMPTY;
	if (memchr(s, '\t', len) != NULL)
		return ADDR_CONTROL_CHAR;
	if (e != ADDR_OK)
		return e;

	/* Split: after a quoted local part, or at the last '@'. */
	if (s[0] == '"') {
		e = ADDR_OK;
		llen = address_quoted_len(s, len, &e);
		if (llen == 0)
			return e;
		if (llen == len)
			return ADDR_NO_AT;
		if (s[llen] != '@')
			return ADDR_QUOTED_BAD;
		at = s + llen;
	} else {
		at = NULL;
		for (i = len; i > 0; i--)
			if (s[i - 1] == '@') {
				at = s + i - 1;
				break;
			}
		if (at == NULL)
			return ADDR_NO_AT;
		llen = (size_t)(at - s);
	}
	dom = at + 1;
	dlen = len - llen - 1;

	/* Local part. */
	if (llen == 0 || (s[0] == '"' && llen == 2))
		return ADDR_LOCAL_EMPTY;
	if (llen > ADDR_LOCAL_MAX)
		return ADDR_LOCAL_TOO_LONG;
	if (s[0] != '"' && (e = address_check_dot_atom(s, llen)) != ADDR_OK)
		return e;
	for (i = 0; i < llen; i++)
		if (s[i] >= 0x80)
			out->flags |= ADDR_F_SMTPUTF8;
	memcpy(out->local, s, llen);
	out->local[llen] = '\0';

	/* Domain. */
	if ((e = address_parse_domain(dom, dlen, out)) != ADDR_OK)
		return e;

	dlen = strlen(out->domain);
	if (llen + 1 + dlen > ADDR_PATH_MAX)
		return ADDR_PATH_TOO_LONG;
	memcpy(out->full, out->local, llen);
	out->full[llen] = '@';
	memcpy(out->full + llen + 1, out->domain, dlen + 1);
	return ADDR_OK;
}
