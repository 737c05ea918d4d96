/* Process-wide shutdown signalling. eo_signals_block() must run in main() before any thread
 * starts, so that SIGTERM/SIGINT reach only eo_signals_wait(). */
#ifndef EO_CORE_SIGNALS_H
#define EO_CORE_SIGNALS_H

#include <stdbool.h>

void eo_signals_block(void);
/* Waits until SIGTERM or SIGINT arrives or eo_signals_request_stop() is called. Returns the
 * signal number, or 0 for a requested stop. */
int eo_signals_wait(void);
/* Asks the waiting main thread to shut down (from any thread); failed marks the exit as
 * unsuccessful. */
void eo_signals_request_stop(bool failed);
bool eo_signals_failed(void);

#endif
