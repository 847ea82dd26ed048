/*
 * lists.h — the reference data shipped in data/: disposable domains, role
 * local parts, free mail providers, providers whose local parts are case-
 * insensitive, and popular domains for typo suggestions.
 *
 * Files (one entry per line, lowercase; '#' starts a comment; blank lines
 * ignored; each file's header comment names its source and date):
 *   disposable_domains.txt   a domain or any subdomain of it is disposable
 *   role_locals.txt          local parts of role accounts (admin, info, ...)
 *   free_providers.txt       free mailbox providers (gmail.com, ...)
 *   case_insensitive.txt     domains whose mailboxes ignore local-part case
 *   popular_domains.txt      targets for typo suggestions
 *
 * Directory: lists_open(dir) with dir NULL uses $MXSIFT_DATA_DIR, else the
 * compile-time MXSIFT_DATADIR (the source tree's data/ directory, or the
 * installed share/mxsift).  A missing or unreadable file is an error that
 * names it: running without the data would silently drop flags.
 */
#ifndef MXSIFT_LISTS_H
#define MXSIFT_LISTS_H

#include <stddef.h>

struct lists;

/* NULL + err on failure. */
struct lists *lists_open(const char *dir, char *err, size_t errlen);
void lists_close(struct lists *l);
/* The directory lists_open(NULL) would use ($MXSIFT_DATA_DIR or the
 * compile-time default). */
const char *lists_default_dir(void);
/* The directory the lists were read from. */
const char *lists_dir(const struct lists *l);

/* domain: lowercase A-label.  A subdomain of a listed disposable domain is
 * disposable too (mailinator.com lists every x.mailinator.com). */
int lists_is_disposable(const struct lists *l, const char *domain);
int lists_is_free(const struct lists *l, const char *domain);
int lists_is_case_insensitive(const struct lists *l, const char *domain);
/* local: as given; compared lowercased, without a "+tag"
 * subaddress and ignoring quotes. */
int lists_is_role(const struct lists *l, const char *local);

/* The popular domain that domain is probably a typo of (Damerau-Levenshtein
 * distance 1, or 2 for names of 9 bytes or more, same number of labels),
 * or NULL when domain is itself listed anywhere or nothing is close. */
const char *lists_suggest(const struct lists *l, const char *domain);

/* Edit distance (Damerau: a transposition counts 1), capped: returns
 * cap + 1 as soon as the distance exceeds cap.  Exposed for tests. */
unsigned lists_distance(const char *a, const char *b, unsigned cap);

#endif
