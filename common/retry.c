/*
 * retry.c — the retry schedule and a timer queue (see retry.h).
 *
 * Owns: parsing of durations and schedules, the "is this temporary"
 * decision, and a binary min-heap of held items ordered by due time (ties
 * in insertion order) behind one libevent timer set to the earliest item.
 * The heap is bounded by its callers (the worker pauses its retry topic
 * before holding too many), so its memory is bounded too.
 *
 * Diagnostics: none besides return values; callers log.
 */
#include "retry.h"

#include "duration.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

/* ---- durations and schedules -------------------------------------------- */

/* One syntax for every duration option: duration.h. */
int
retry_parse_duration(const char *s, uint64_t *ms)
{
	return duration_parse_ms(s, ms);
}

int
retry_parse_schedule(const char *s, struct retry_policy *p, char *err, size_t errlen)
{
	char buf[512], *tok, *save = NULL;
	size_t n = 0;

	if (s == NULL || *s == '\0' || strcmp(s, "none") == 0) {
		p->nsteps = 0;
		return 0;
	}
	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "retry schedule too long");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		uint64_t ms;

		while (*tok == ' ')
			tok++;
		if (n == RETRY_MAX_STEPS) {
			snprintf(err, errlen, "retry schedule has more than %d steps",
			    RETRY_MAX_STEPS);
			return -1;
		}
		if (retry_parse_duration(tok, &ms) == -1) {
			snprintf(err, errlen, "retry schedule: bad duration '%s' (e.g. 30s, 5m, 1h)",
			    tok);
			return -1;
		}
		p->delay_ms[n++] = ms;
	}
	if (n == 0) {
		snprintf(err, errlen, "retry schedule: no durations in '%s'", s);
		return -1;
	}
	p->nsteps = n;
	return 0;
}

void
retry_policy_default(struct retry_policy *p)
{
	char err[64];

	memset(p, 0, sizeof(*p));
	(void)retry_parse_schedule(RETRY_DEFAULT_SCHEDULE, p, err, sizeof(err));
	(void)retry_parse_duration(RETRY_DEFAULT_MAX_AGE, &p->max_age_ms);
}

int
retry_verdict_temporary(const struct verdict *v)
{
	if (v->status != VS_UNKNOWN)
		return 0;
	switch (v->reason) {
	case VR_GREYLISTED:
	case VR_TEMP_FAILURE:
	case VR_TIMEOUT:
	case VR_CONNECTION_FAILED:
		return 1;
	default:
		/* e.g. a 421/450 4.7.x "try again later" classified as blocked */
		return v->smtp_code >= 400 && v->smtp_code <= 499;
	}
}

int
retry_next(const struct retry_policy *p, unsigned attempt, uint64_t first_ms, uint64_t now_ms,
    uint64_t *due_ms)
{
	uint64_t due;

	if (attempt >= p->nsteps)
		return 0;
	due = now_ms + p->delay_ms[attempt];
	if (p->max_age_ms > 0 && first_ms <= now_ms && due - first_ms > p->max_age_ms)
		return 0;
	*due_ms = due;
	return 1;
}

uint64_t
retry_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- timer queue ----------------------------------------------------------- */

struct retry_slot {
	uint64_t due, seq;
	void *item;
};

struct retry_timer {
	struct event_base *base;
	struct event *ev;
	retry_due_cb due;
	void *arg;
	struct retry_slot *heap;
	size_t n, cap;
	uint64_t seq;
	int firing;           /* inside the callback loop: re-arm at its end */
};

static int
retry_slot_less(const struct retry_slot *a, const struct retry_slot *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void
retry_heap_up(struct retry_timer *t, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		struct retry_slot tmp;

		if (!retry_slot_less(&t->heap[i], &t->heap[parent]))
			break;
		tmp = t->heap[i];
		t->heap[i] = t->heap[parent];
		t->heap[parent] = tmp;
		i = parent;
	}
}

static void
retry_heap_down(struct retry_timer *t, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct retry_slot tmp;

		if (l < t->n && retry_slot_less(&t->heap[l], &t->heap[m]))
			m = l;
		if (r < t->n && retry_slot_less(&t->heap[r], &t->heap[m]))
			m = r;
		if (m == i)
			break;
		tmp = t->heap[i];
		t->heap[i] = t->heap[m];
		t->heap[m] = tmp;
		i = m;
	}
}

static void
retry_timer_arm(struct retry_timer *t)
{
	uint64_t now, wait;
	struct timeval tv;

	if (t->firing)
		return;
	if (t->n == 0) {
		evtimer_del(t->ev);
		return;
	}
	now = retry_wall_ms();
	wait = t->heap[0].due > now ? t->heap[0].due - now : 0;
	/* The wall clock may jump; never sleep longer than a minute blind. */
	if (wait > 60000)
		wait = 60000;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)((wait % 1000) * 1000);
	evtimer_add(t->ev, &tv);
}

static void
retry_timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct retry_timer *t = arg;

	(void)fd;
	(void)what;
	t->firing = 1;
	while (t->n > 0 && t->heap[0].due <= retry_wall_ms()) {
		void *item = t->heap[0].item;

		t->heap[0] = t->heap[--t->n];
		retry_heap_down(t, 0);
		t->due(t->arg, item);   /* may add items */
	}
	t->firing = 0;
	retry_timer_arm(t);
}

struct retry_timer *
retry_timer_new(struct event_base *base, retry_due_cb due, void *arg)
{
	struct retry_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->base = base;
	t->due = due;
	t->arg = arg;
	if ((t->ev = evtimer_new(base, retry_timer_fire, t)) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

int
retry_timer_add(struct retry_timer *t, void *item, uint64_t due_ms)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct retry_slot *h = realloc(t->heap, cap * sizeof(*h));

		if (h == NULL)
			return -1;
		t->heap = h;
		t->cap = cap;
	}
	t->heap[t->n].due = due_ms;
	t->heap[t->n].seq = t->seq++;
	t->heap[t->n].item = item;
	retry_heap_up(t, t->n++);
	retry_timer_arm(t);
	return 0;
}

size_t
retry_timer_count(const struct retry_timer *t)
{
	return t->n;
}

size_t
retry_timer_remove_if(struct retry_timer *t, int (*match)(void *arg, void *item),
    void (*drop)(void *arg, void *item), void *arg)
{
	size_t kept = 0, removed = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (match(arg, t->heap[i].item)) {
			drop(arg, t->heap[i].item);
			removed++;
		} else
			t->heap[kept++] = t->heap[i];
	}
	t->n = kept;
	/* Floyd's heap construction over what is left. */
	for (size_t i = t->n / 2; i-- > 0;)
		retry_heap_down(t, i);
	retry_timer_arm(t);
	return removed;
}

void
retry_timer_free(struct retry_timer *t, void (*drop)(void *arg, void *item), void *arg)
{
	if (t == NULL)
		return;
	if (drop != NULL)
		for (size_t i = 0; i < t->n; i++)
			drop(arg, t->heap[i].item);
	event_free(t->ev);
	free(t->heap);
	free(t);
}
