#ifndef MEDLEDGER_CWRITEBACK_H
#define MEDLEDGER_CWRITEBACK_H

#include <stdint.h>

// Starts writing bytes [offset, offset + count) of `fd` back to the disk without waiting for them:
// Linux's sync_file_range with SYNC_FILE_RANGE_WRITE, which Swift's Glibc module does not export
// (it is a GNU extension). Returns 0, or -1 with errno set. Elsewhere it does nothing and returns 0.
int medledger_start_writeback(int fd, int64_t offset, int64_t count);

#endif
