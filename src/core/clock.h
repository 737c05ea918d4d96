/* Clocks: wall time in microseconds since the Unix epoch, and a monotonic clock. */
#ifndef EO_CORE_CLOCK_H
#define EO_CORE_CLOCK_H

#include <stdint.h>

int64_t eo_clock_now_us(void);  /* CLOCK_REALTIME */
int64_t eo_clock_mono_us(void); /* CLOCK_MONOTONIC */
/* Sleeps up to ms milliseconds (returns early on a signal). */
void eo_clock_sleep_ms(int64_t ms);

#endif
