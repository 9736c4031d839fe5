/*
 * sha256.c — SHA-256 as FIPS 180-4 §6.2 writes it, and HMAC (RFC 2104)
 * over it.  Small and slow enough: it signs a handshake, not a stream.
 */
#include <string.h>

#include "sha256.h"

static const uint32_t k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n)	(((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block(struct sha256 *c, const unsigned char *p)
{
	uint32_t	 w[64], a, b, cc, d, e, f, g, h, t1, t2, s0, s1;
	int		 i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		    (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 64; i++) {
		s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ w[i - 15] >> 3;
		s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ w[i - 2] >> 10;
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3];
	e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) +
		    ((e & f) ^ (~e & g)) + k[i] + w[i];
		t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) +
		    ((a & b) ^ (a & cc) ^ (b & cc));
		h = g; g = f; f = e; e = d + t1;
		d = cc; cc = b; b = a; a = t1 + t2;
	}
	c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
	c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

void
sha256_init(struct sha256 *c)
{
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memset(c, 0, sizeof(*c));
	memcpy(c->h, h0, sizeof(h0));
}

void
sha256_update(struct sha256 *c, const void *data, size_t len)
{
	const unsigned char	*p = data;
	size_t			 n;

	c->bytes += len;
	while (len > 0) {
		n = SHA256_BLOCK_BYTES - c->used;
		if (n > len)
			n = len;
		memcpy(c->block + c->used, p, n);
		c->used += n;
		p += n;
		len -= n;
		if (c->used == SHA256_BLOCK_BYTES) {
			sha256_block(c, c->block);
			c->used = 0;
		}
	}
}

void
sha256_final(struct sha256 *c, unsigned char out[SHA256_BYTES])
{
	uint64_t	 bits = c->bytes * 8;
	int		 i;

	c->block[c->used++] = 0x80;
	if (c->used > SHA256_BLOCK_BYTES - 8) {
		memset(c->block + c->used, 0, SHA256_BLOCK_BYTES - c->used);
		sha256_block(c, c->block);
		c->used = 0;
	}
	memset(c->block + c->used, 0, SHA256_BLOCK_BYTES - 8 - c->used);
	for (i = 0; i < 8; i++)
		c->block[SHA256_BLOCK_BYTES - 1 - i] = (unsigned char)(bits >> 8 * i);
	sha256_block(c, c->block);
	for (i = 0; i < 32; i++)
		out[i] = (unsigned char)(c->h[i / 4] >> (24 - 8 * (i % 4)));
	memset(c, 0, sizeof(*c));
}

void
sha256(const void *data, size_t len, unsigned char out[SHA256_BYTES])
{
	struct sha256	 c;

	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, out);
}

void
hmac_sha256(const void *key, size_t keylen, size_t n,
    const void *const parts[], const size_t lens[],
    unsigned char out[SHA256_BYTES])
{
	unsigned char	 k0[SHA256_BLOCK_BYTES], pad[SHA256_BLOCK_BYTES];
	unsigned char	 inner[SHA256_BYTES];
	struct sha256	 c;
	size_t		 i;

	/* RFC 2104 §2: a key longer than a block is hashed first. */
	memset(k0, 0, sizeof(k0));
	if (keylen > SHA256_BLOCK_BYTES)
		sha256(key, keylen, k0);
	else if (keylen > 0)
		memcpy(k0, key, keylen);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k0[i] ^ 0x36;
	sha256_init(&c);
	sha256_update(&c, pad, sizeof(pad));
	for (i = 0; i < n; i++)
		sha256_update(&c, parts[i], lens[i]);
	sha256_final(&c, inner);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k0[i] ^ 0x5c;
	sha256_init(&c);
	sha256_update(&c, pad, sizeof(pad));
	sha256_update(&c, inner, sizeof(inner));
	sha256_final(&c, out);
	memset(k0, 0, sizeof(k0));
	memset(pad, 0, sizeof(pad));
}

bool
sha256_equal(const void *a, const void *b, size_t len)
{
	const volatile unsigned char	*x = a, *y = b;
	unsigned char			 diff = 0;
	size_t				 i;

	for (i = 0; i < len; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

void
sha256_hex(const void *data, size_t len, char *out)
{
	static const char	 digits[] = "0123456789abcdef";
	const unsigned char	*p = data;
	size_t			 i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
sha256_unhex(const char *s, size_t slen, void *out, size_t len)
{
	unsigned char	*p = out;
	size_t		 i;
	int		 hi, lo;

	if (slen != 2 * len)
		return -1;
	for (i = 0; i < len; i++) {
		if ((hi = hexval(s[2 * i])) == -1 ||
		    (lo = hexval(s[2 * i + 1])) == -1)
			return -1;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}
