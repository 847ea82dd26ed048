/*
 * clock.h — the monotonic clock (CLOCK_MONOTONIC), in the unit each user
 * counts in: deadlines and timers in ms, the engine's token buckets and the
 * DNS window's RTTs in us, Redis write latency in ns.  Never wall-clock
 * time: what is written to Redis or logs as a date comes from time(2) or
 * retry_wall_ms().
 */
#ifndef MXSIFT_CLOCK_H
#define MXSIFT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
clock_mono_us(void)
{
	return clock_mono_ns() / 1000u;
}

static inline uint64_t
clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000u;
}

#endif
