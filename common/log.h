/*
 * log.h — logfmt lines on stderr: ts=... level=... msg="..." key=value.
 */
#ifndef MXSIFT_LOG_H
#define MXSIFT_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level l);
enum log_level log_get_level(void);
int log_parse_level(const char *s);   /* -1 if unknown */
/* --log-addresses: may lines below debug carry email addresses?  Off by
 * default (addresses are personal data); debug lines may always. */
void log_set_addresses(int on);
int log_addresses(void);
/* fmt is the rest of the line after msg: e.g. log_msg(LOG_INFO, "connected", "host=%s", h) */
void log_msg(enum log_level l, const char *msg, const char *kvfmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, msg, __VA_ARGS__); } while (0)
#define log_info(msg, ...)  log_msg(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_msg(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(LOG_ERROR, msg, __VA_ARGS__)

#endif
