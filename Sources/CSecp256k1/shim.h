#ifndef MEDLEDGER_CSECP256K1_SHIM_H
#define MEDLEDGER_CSECP256K1_SHIM_H

// Bitcoin Core's libsecp256k1 from Debian (libsecp256k1-dev 0.2.0 on Debian 12), as much of it as
// LedgerPRE uses: keys as points (parse, serialize, create, combine, tweak, compare), scalar tweaks
// modulo the group order, and the ECDH module's constant-time multiplication of an arbitrary point.
#include <secp256k1.h>
#include <secp256k1_ecdh.h>

#endif
