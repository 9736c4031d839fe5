/*
 * sha256.h — SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the
 * peers' handshake (peer.c).  No I/O, no state beyond the context.
 */
#ifndef POOLD_SHA256_H
#define POOLD_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES		32
#define SHA256_BLOCK_BYTES	64

struct sha256 {
	uint32_t	 h[8];
	uint64_t	 bytes;			/* hashed so far */
	unsigned char	 block[SHA256_BLOCK_BYTES];
	size_t		 used;			/* bytes in block */
};

void	 sha256_init(struct sha256 *);
void	 sha256_update(struct sha256 *, const void *, size_t);
void	 sha256_final(struct sha256 *, unsigned char out[SHA256_BYTES]);
void	 sha256(const void *, size_t, unsigned char out[SHA256_BYTES]);

/* HMAC-SHA256 over the concatenation of n parts (parts[i], lens[i]). */
void	 hmac_sha256(const void *key, size_t keylen, size_t n,
	    const void *const parts[], const size_t lens[],
	    unsigned char out[SHA256_BYTES]);

/* Compares in a time that depends on len only (no early exit). */
bool	 sha256_equal(const void *a, const void *b, size_t len);
/* Lower-case hex of len bytes into out (2 * len + 1 bytes, NUL ended). */
void	 sha256_hex(const void *, size_t len, char *out);
/* Decodes exactly 2 * len hex digits of s into out; -1 if not hex. */
int	 sha256_unhex(const char *s, size_t slen, void *out, size_t len);

#endif /* POOLD_SHA256_H */
