// OpenSSL 3 deprecates the EC_GROUP and EC_POINT interfaces in favour of EVP, which has no way to
// keep a table for a key; they remain supported through the 3.x series.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "CP256Tables.h"

#include <gmp.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// n, the order of P-256, for GMP: its inversion modulo n takes about 1 µs where OpenSSL's
// BN_mod_inverse takes 8-11 (the largest single step of a verification once both tables are in).
static mpz_t order;
static int orderReady = 0;
static pthread_once_t orderOnce = PTHREAD_ONCE_INIT;

static void initOrder(void) {
    // FIPS 186-4 D.1.2.3.
    orderReady = mpz_init_set_str(order, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16) == 0;
}

/// s^-1 mod n into w32 (big-endian); 0 if s has no inverse (never, for s in [1, n-1] with n prime).
static int invertModOrder(const uint8_t s32[32], uint8_t w32[32]) {
    mpz_t s, w;
    mpz_init(s);
    mpz_init(w);
    mpz_import(s, 32, 1, 1, 1, 0, s32);
    int ok = mpz_invert(w, s, order) != 0;
    memset(w32, 0, 32);
    if (ok) {
        size_t bytes = (mpz_sizeinbase(w, 2) + 7) / 8, written = 0;
        ok = bytes <= 32;
        if (ok) mpz_export(w32 + (32 - bytes), &written, 1, 1, 1, 0, w);
        ok = ok && written == bytes;
    }
    mpz_clear(s);
    mpz_clear(w);
    return ok;
}

struct medledger_p256_table {
    EC_GROUP *curve;   // P-256 as is: u1·G uses OpenSSL's built-in table for G
    EC_GROUP *withKey; // P-256 with Q as its generator, and the table precomputed for it
    BIGNUM *p;         // the field's prime
};

void medledger_p256_table_free(medledger_p256_table *table) {
    if (table == NULL) return;
    EC_GROUP_free(table->curve);
    EC_GROUP_free(table->withKey);
    BN_free(table->p);
    free(table);
}

medledger_p256_table *medledger_p256_table_new(const uint8_t point[65]) {
    medledger_p256_table *table = calloc(1, sizeof *table);
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT *q = NULL;
    int ok = table != NULL && ctx != NULL && pthread_once(&orderOnce, initOrder) == 0 && orderReady;
    if (ok) ok = (table->curve = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) != NULL;
    // The order GMP inverts modulo is the group's own.
    uint8_t n32[32];
    if (ok) ok = BN_bn2binpad(EC_GROUP_get0_order(table->curve), n32, 32) == 32;
    if (ok) {
        mpz_t n;
        mpz_init(n);
        mpz_import(n, 32, 1, 1, 1, 0, n32);
        ok = mpz_cmp(n, order) == 0;
        mpz_clear(n);
    }
    if (ok) ok = (table->p = BN_new()) != NULL;
    if (ok) ok = EC_GROUP_get_curve(table->curve, table->p, NULL, NULL, ctx) == 1;
    if (ok) ok = (q = EC_POINT_new(table->curve)) != NULL;
    // oct2point refuses bytes that are not a point of the curve; infinity is one byte, never 65.
    if (ok) ok = EC_POINT_oct2point(table->curve, q, point, 65, ctx) == 1;
    if (ok) ok = EC_POINT_is_at_infinity(table->curve, q) == 0;
    if (ok) ok = (table->withKey = EC_GROUP_dup(table->curve)) != NULL;
    // Q has the same prime order n as G (cofactor 1), so it generates the same group.
    if (ok) ok = EC_GROUP_set_generator(table->withKey, q, EC_GROUP_get0_order(table->curve), BN_value_one()) == 1;
    if (ok) ok = EC_GROUP_precompute_mult(table->withKey, ctx) == 1;
    EC_POINT_free(q);
    BN_CTX_free(ctx);
    if (!ok) {
        // What failed left its reasons on this thread's OpenSSL error queue, which others read.
        ERR_clear_error();
        medledger_p256_table_free(table);
        return NULL;
    }
    return table;
}

// SEC 1 v2 §4.1.4, the same steps as OpenSSL's and BoringSSL's ECDSA verification.
int medledger_p256_table_verify(
    const medledger_p256_table *table, const uint8_t digest[32], const uint8_t r32[32], const uint8_t s32[32]) {
    BN_CTX *ctx = BN_CTX_new();
    if (ctx == NULL) return -1;
    BN_CTX_start(ctx);
    BIGNUM *r = BN_CTX_get(ctx), *s = BN_CTX_get(ctx), *e = BN_CTX_get(ctx), *w = BN_CTX_get(ctx);
    BIGNUM *u1 = BN_CTX_get(ctx), *u2 = BN_CTX_get(ctx), *x = BN_CTX_get(ctx), *z = BN_CTX_get(ctx);
    BIGNUM *zz = BN_CTX_get(ctx), *t = BN_CTX_get(ctx);
    EC_POINT *sum = EC_POINT_new(table->curve), *keyPart = EC_POINT_new(table->curve);
    const BIGNUM *n = EC_GROUP_get0_order(table->curve);
    int result = -1;
    if (t == NULL || sum == NULL || keyPart == NULL) goto done;
    if (BN_bin2bn(r32, 32, r) == NULL || BN_bin2bn(s32, 32, s) == NULL || BN_bin2bn(digest, 32, e) == NULL) goto done;
    // r and s in [1, n-1].
    if (BN_is_zero(r) || BN_is_zero(s) || BN_cmp(r, n) >= 0 || BN_cmp(s, n) >= 0) {
        result = 0;
        goto done;
    }
    // The digest is as long as n (256 bits): e is the whole digest, reduced by the products mod n.
    uint8_t w32[32];
    if (!invertModOrder(s32, w32) || BN_bin2bn(w32, 32, w) == NULL) goto done;
    if (!BN_mod_mul(u1, e, w, n, ctx) || !BN_mod_mul(u2, r, w, n, ctx)) goto done;
    // R = u1·G + u2·Q, each from its table.
    if (!EC_POINT_mul(table->curve, sum, u1, NULL, NULL, ctx)) goto done;
    if (!EC_POINT_mul(table->withKey, keyPart, u2, NULL, NULL, ctx)) goto done;
    if (!EC_POINT_add(table->curve, sum, sum, keyPart, ctx)) goto done;
    if (EC_POINT_is_at_infinity(table->curve, sum)) {
        result = 0;
        goto done;
    }
    // x(R) mod n = r, without the field inversion (a sixth of the whole) that affine coordinates
    // take. With R = (X, Y, Z) in Jacobian coordinates x(R) = X / Z^2, and as n < p < 2n,
    // x(R) mod n = r exactly when X = r·Z^2, or X = (r + n)·Z^2 if r + n < p (mod p; BoringSSL's
    // ec_cmp_x_coordinate makes the same comparison).
    if (!EC_POINT_get_Jprojective_coordinates_GFp(table->curve, sum, x, NULL, z, ctx)) goto done;
    if (!BN_mod_sqr(zz, z, table->p, ctx) || !BN_mod_mul(t, r, zz, table->p, ctx)) goto done;
    if (BN_cmp(t, x) == 0) {
        result = 1;
        goto done;
    }
    if (!BN_add(t, r, n)) goto done;
    if (BN_cmp(t, table->p) >= 0) {
        result = 0;
        goto done;
    }
    if (!BN_mod_mul(t, t, zz, table->p, ctx)) goto done;
    result = BN_cmp(t, x) == 0 ? 1 : 0;
done:
    if (result < 0) ERR_clear_error();
    EC_POINT_free(sum);
    EC_POINT_free(keyPart);
    BN_CTX_end(ctx);
    BN_CTX_free(ctx);
    return result;
}
