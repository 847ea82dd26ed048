/* smtp_reply.c: to be written */
typedef int mx_placeholder_t;
