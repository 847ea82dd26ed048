/*
 * mock_kafka.c — hosts librdkafka's mock Kafka cluster as its own process so
 * the coordinator and the workers talk to it over loopback TCP exactly as
 * they would talk to a real cluster.
 *
 * usage: mxsift-mock-kafka [-b brokers] [-p partitions] [-c control-fifo]
 *
 *   -b N   number of mock brokers (ids 1..N), default 3
 *   -p N   partitions of mxsift.tasks, default 8 (mxsift.retry and
 *          mxsift.dead get the same count)
 *   -c F   read control commands from the FIFO F (see below)
 *
 * Output: the bootstrap address list ("127.0.0.1:P1,127.0.0.1:P2,...") as the
 * first line on stdout, flushed, once every topic exists.  Then one line per
 * control command: "ok <command>" or "error <command>: <why>".  Diagnostics
 * go to stderr.  Runs until SIGTERM or SIGINT, then destroys the cluster and
 * exits 0.  Exit 1 on a setup failure, 2 on a usage error.
 *
 * Control commands (one per line on the FIFO; the FIFO is opened read-write
 * so that writers may come and go without us ever seeing end-of-file):
 *   ping                        no-op, just the "ok ping" acknowledgement
 *   broker-down ID              refuse connections (does NOT move leaders)
 *   broker-up ID
 *   broker-rtt ID MS            delay every response of broker ID
 *   leader TOPIC PART ID        move a partition leader (-1: leaderless)
 *   push-errors APIKEY ERR N    the next N requests of APIKEY fail with ERR
 *   clear-errors APIKEY
 *   broker-errors ID APIKEY ERR N   the next N requests of APIKEY that broker
 *                               ID serves fail with ERR (a stack per broker)
 *   error-count ID APIKEY       how many of those are still to come: the reply
 *                               is "ok error-count ID APIKEY left=N" (ID -1:
 *                               summed over the brokers), so a test can tell
 *                               that the errors it pushed were really met
 *   topic-error TOPIC ERR       Metadata reports ERR for TOPIC (0 clears)
 *   coordinator group|transaction KEY ID
 * ID -1 means every broker.  APIKEY and ERR are numbers (Produce 0, Fetch 1,
 * Metadata 3, OffsetCommit 8, ..., see the Kafka protocol API keys; ERR is an
 * rd_kafka_resp_err_t, e.g. 6 NOT_LEADER_FOR_PARTITION, -195 __TRANSPORT
 * which makes the broker drop the connection).
 *
 * Facts learned running it (librdkafka 2.0.2, Debian 12):
 *  - the brokers bind 127.0.0.1 on ephemeral ports picked by the kernel, so
 *    there is no port to configure and nothing listens beyond loopback;
 *  - CreateTopics is not implemented by the mock, topics are created here;
 *  - the mock cluster runs on its own thread; the API calls below are
 *    thread-safe requests to it, so the main thread only waits for input.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t mock_stop;
static long mock_nbrokers; /* ids 1..mock_nbrokers */

static const char *const mock_topics[] = {
	"mxsift.tasks", "mxsift.retry", "mxsift.dead"
};

static void
mock_on_signal(int sig)
{
	(void)sig;
	mock_stop = 1;
}

static void
mock_usage(void)
{
	fprintf(stderr, "usage: mxsift-mock-kafka [-b brokers] [-p partitions]"
	    " [-c control-fifo]\n");
	exit(2);
}

/* Parse a whole decimal number in [lo, hi]; 0 on success. */
static int
mock_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static void
mock_reply(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	if (fmt == NULL) {
		printf("ok %s\n", cmd);
	} else {
		printf("error %s: ", cmd);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	fflush(stdout);
}

static void
mock_reply_err(const char *cmd, rd_kafka_resp_err_t err)
{
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		mock_reply(cmd, NULL);
	else
		mock_reply(cmd, "%s", rd_kafka_err2str(err));
}

/*
 * Run one control command.  The line is split in place; "cmd" is a copy of
 * the original text used for the reply.
 */
static void
mock_run_command(rd_kafka_mock_cluster_t *mc, char *line)
{
	char cmd[1024];	/* as long as the control line buffer */
	char *argv[8];
	int argc = 0;
	long a, b, c, n;
	char *tok, *save = NULL;

	snprintf(cmd, sizeof(cmd), "%s", line);
	for (tok = strtok_r(line, " \t", &save); tok != NULL && argc < 8;
	    tok = strtok_r(NULL, " \t", &save))
		argv[argc++] = tok;
	if (argc == 0)
		return;

	if (strcmp(argv[0], "ping") == 0 && argc == 1) {
		mock_reply(cmd, NULL);
	} else if (strcmp(argv[0], "broker-down") == 0 && argc == 2 &&
	    mock_parse_long(argv[1], -1, INT32_MAX, &a) == 0) {
		mock_reply_err(cmd, rd_kafka_mock_broker_set_down(mc, (int32_t)a));
	} else if (strcmp(argv[0], "broker-up") == 0 && argc == 2 &&
	    mock_parse_long(argv[1], -1, INT32_MAX, &a) == 0) {
		mock_reply_err(cmd, rd_kafka_mock_broker_set_up(mc, (int32_t)a));
	} else if (strcmp(argv[0], "broker-rtt") == 0 && argc == 3 &&
	    mock_parse_long(argv[1], -1, INT32_MAX, &a) == 0 &&
	    mock_parse_long(argv[2], 0, INT_MAX, &b) == 0) {
		mock_reply_err(cmd,
		    rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b));
	} else if (strcmp(argv[0], "leader") == 0 && argc == 4 &&
	    mock_parse_long(argv[2], 0, INT32_MAX, &a) == 0 &&
	    mock_parse_long(argv[3], -1, INT32_MAX, &b) == 0) {
		mock_reply_err(cmd, rd_kafka_mock_partition_set_leader(mc,
		    argv[1], (int32_t)a, (int32_t)b));
	} else if (strcmp(argv[0], "push-errors") == 0 && argc == 4 &&
	    mock_parse_long(argv[1], 0, INT16_MAX, &a) == 0 &&
	    mock_parse_long(argv[2], INT_MIN, INT_MAX, &b) == 0 &&
	    mock_parse_long(argv[3], 1, 10000, &c) == 0) {
		rd_kafka_resp_err_t *errs;

		if ((errs = calloc((size_t)c, sizeof(*errs))) == NULL) {
			mock_reply(cmd, "out of memory");
			return;
		}
		for (long i = 0; i < c; i++)
			errs[i] = (rd_kafka_resp_err_t)b;
		rd_kafka_mock_push_request_errors_array(mc, (int16_t)a,
		    (size_t)c, errs);
		free(errs);
		mock_reply(cmd, NULL);
	} else if (strcmp(argv[0], "clear-errors") == 0 && argc == 2 &&
	    mock_parse_long(argv[1], 0, INT16_MAX, &a) == 0) {
		rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
		mock_reply(cmd, NULL);
	} else if (strcmp(argv[0], "broker-errors") == 0 && argc == 5 &&
	    mock_parse_long(argv[1], -1, mock_nbrokers, &a) == 0 && a != 0 &&
	    mock_parse_long(argv[2], 0, INT16_MAX, &b) == 0 &&
	    mock_parse_long(argv[3], INT_MIN, INT_MAX, &c) == 0 &&
	    mock_parse_long(argv[4], 1, 10000, &n) == 0) {
		rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

		for (long id = a < 0 ? 1 : a; id <= (a < 0 ? mock_nbrokers : a); id++)
			for (long i = 0; i < n && err == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
				err = rd_kafka_mock_broker_push_request_error_rtts(mc,
				    (int32_t)id, (int16_t)b, 1, (rd_kafka_resp_err_t)c, 0);
		mock_reply_err(cmd, err);
	} else if (strcmp(argv[0], "error-count") == 0 && argc == 3 &&
	    mock_parse_long(argv[1], -1, mock_nbrokers, &a) == 0 && a != 0 &&
	    mock_parse_long(argv[2], 0, INT16_MAX, &b) == 0) {
		rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
		size_t left = 0, cnt;

		for (long id = a < 0 ? 1 : a; id <= (a < 0 ? mock_nbrokers : a) &&
		    err == RD_KAFKA_RESP_ERR_NO_ERROR; id++) {
			cnt = 0;
			err = rd_kafka_mock_broker_error_stack_cnt(mc, (int32_t)id,
			    (int16_t)b, &cnt);
			left += cnt;
		}
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			mock_reply_err(cmd, err);
		else {
			printf("ok %s left=%zu\n", cmd, left);
			fflush(stdout);
		}
	} else if (strcmp(argv[0], "topic-error") == 0 && argc == 3 &&
	    mock_parse_long(argv[2], INT_MIN, INT_MAX, &a) == 0) {
		rd_kafka_mock_topic_set_error(mc, argv[1],
		    (rd_kafka_resp_err_t)a);
		mock_reply(cmd, NULL);
	} else if (strcmp(argv[0], "coordinator") == 0 && argc == 4 &&
	    (strcmp(argv[1], "group") == 0 ||
	    strcmp(argv[1], "transaction") == 0) &&
	    mock_parse_long(argv[3], -1, INT32_MAX, &a) == 0) {
		mock_reply_err(cmd, rd_kafka_mock_coordinator_set(mc, argv[1],
		    argv[2], (int32_t)a));
	} else {
		mock_reply(cmd, "unknown command or bad arguments");
	}
}

/*
 * Accumulate bytes from the control FIFO and run every complete line.
 * Returns -1 on a read error that makes the FIFO unusable.
 */
static int
mock_read_control(rd_kafka_mock_cluster_t *mc, int fd, char *buf,
    size_t cap, size_t *len)
{
	ssize_t n;
	char *nl;

	n = read(fd, buf + *len, cap - 1 - *len);
	if (n < 0)
		return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
	*len += (size_t)n;
	buf[*len] = '\0';
	while ((nl = strchr(buf, '\n')) != NULL) {
		*nl = '\0';
		if (nl > buf && nl[-1] == '\r')
			nl[-1] = '\0';
		mock_run_command(mc, buf);
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len + 1);
	}
	/* A line longer than the buffer is garbage: drop it. */
	if (*len == cap - 1)
		*len = 0;
	return 0;
}

int
main(int argc, char **argv)
{
	char errstr[512], ctlbuf[1024];
	size_t ctllen = 0;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_resp_err_t err;
	struct sigaction sa;
	const char *ctlpath = NULL;
	long brokers = 3, partitions = 8;
	int ch, ctlfd = -1, repl;

	while ((ch = getopt(argc, argv, "b:p:c:")) != -1) {
		switch (ch) {
		case 'b':
			if (mock_parse_long(optarg, 1, 64, &brokers) != 0)
				mock_usage();
			break;
		case 'p':
			if (mock_parse_long(optarg, 1, 1024, &partitions) != 0)
				mock_usage();
			break;
		case 'c':
			ctlpath = optarg;
			break;
		default:
			mock_usage();
		}
	}
	if (optind != argc)
		mock_usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mock_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/*
	 * The mock cluster needs an rd_kafka_t for its bookkeeping only; this
	 * producer never connects anywhere (no bootstrap.servers).
	 */
	conf = rd_kafka_conf_new();
	/* log_level 4 hides the "No bootstrap.servers" notice, which is expected. */
	if (rd_kafka_conf_set(conf, "client.id", "mxsift-mock-kafka", errstr,
	    sizeof(errstr)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "4", errstr,
	    sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "mxsift-mock-kafka: %s\n", errstr);
		return 1;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		fprintf(stderr, "mxsift-mock-kafka: rd_kafka_new: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	conf = NULL;	/* owned by rk now */

	mock_nbrokers = brokers;
	if ((mc = rd_kafka_mock_cluster_new(rk, (int)brokers)) == NULL) {
		fprintf(stderr, "mxsift-mock-kafka: cannot create mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	repl = brokers < 3 ? (int)brokers : 3;
	for (size_t i = 0; i < sizeof(mock_topics) / sizeof(mock_topics[0]); i++) {
		err = rd_kafka_mock_topic_create(mc, mock_topics[i],
		    (int)partitions, repl);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "mxsift-mock-kafka: create topic %s: %s\n",
			    mock_topics[i], rd_kafka_err2str(err));
			rd_kafka_mock_cluster_destroy(mc);
			rd_kafka_destroy(rk);
			return 1;
		}
	}

	if (ctlpath != NULL) {
		/* O_RDWR: we hold a writer ourselves, so no EOF between clients. */
		ctlfd = open(ctlpath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (ctlfd == -1) {
			fprintf(stderr, "mxsift-mock-kafka: open %s: %s\n", ctlpath,
			    strerror(errno));
			rd_kafka_mock_cluster_destroy(mc);
			rd_kafka_destroy(rk);
			return 1;
		}
	}

	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	fprintf(stderr, "mxsift-mock-kafka: brokers=%ld partitions=%ld "
	    "replication=%d bootstrap=%s\n", brokers, partitions, repl,
	    rd_kafka_mock_cluster_bootstraps(mc));

	while (!mock_stop) {
		struct pollfd pfd = { .fd = ctlfd, .events = POLLIN };

		/* poll() ignores a negative fd: then this is a plain sleep. */
		if (poll(&pfd, 1, 200) > 0 && (pfd.revents & POLLIN)) {
			if (mock_read_control(mc, ctlfd, ctlbuf, sizeof(ctlbuf),
			    &ctllen) == -1) {
				fprintf(stderr, "mxsift-mock-kafka: control: %s\n",
				    strerror(errno));
				close(ctlfd);
				ctlfd = -1;
			}
		}
	}

	if (ctlfd != -1)
		close(ctlfd);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	fprintf(stderr, "mxsift-mock-kafka: stopped\n");
	return 0;
}
