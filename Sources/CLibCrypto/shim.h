#ifndef MEDLEDGER_CLIBCRYPTO_SHIM_H
#define MEDLEDGER_CLIBCRYPTO_SHIM_H

// OpenSSL 3 libcrypto, as much of it as LedgerPRE uses: EC point arithmetic on secp256k1,
// BIGNUM arithmetic modulo the group order, randomness and error strings.
#include <openssl/ec.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

#endif
