#ifndef MEDLEDGER_CP256TABLES_H
#define MEDLEDGER_CP256TABLES_H

#include <stdint.h>

// ECDSA P-256 verification against one public key Q with a table of Q's multiples computed once
// (OpenSSL's fixed-base tables, the kind it keeps for the generator G), so that u2·Q costs what u1·G
// does. Verification handles public data only: nothing here needs to run in constant time.

typedef struct medledger_p256_table medledger_p256_table;

/// The table for the public key in `point` (65 bytes, uncompressed X9.63). NULL when the bytes are
/// not a point of the curve, or memory runs out. Costs about 15 ms and 150 KB.
medledger_p256_table *medledger_p256_table_new(const uint8_t point[65]);

void medledger_p256_table_free(medledger_p256_table *table);

/// 1 if (r, s) is a valid signature of the 32-byte `digest` (SHA-256 of the message) under the
/// table's key, 0 if not, -1 if OpenSSL failed (out of memory): callers treat anything but 1 as
/// "not valid". (GMP, which inverts s, aborts the process when memory runs out.)
int medledger_p256_table_verify(
    const medledger_p256_table *table, const uint8_t digest[32], const uint8_t r[32], const uint8_t s[32]);

#endif
