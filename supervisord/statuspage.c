/*
 * statuspage.c — GET /: the status page and its Content-Security-Policy.
 *
 * The page is supervisord/status.html, built in as an array by
 * contrib/html2c.sh (no file is read at run time, so it cannot vanish or
 * be swapped under a running poold).  Its one <script> and one <style>
 * are inline; the policy allows exactly them, by their SHA-256, and
 * nothing else: no other script, style, image, font or frame, and
 * connections only to poold itself.  The hashes are computed here, once,
 * from the bytes served, so an edit of the page never needs a second one
 * of the policy.
 */
#include <stdio.h>
#include <string.h>

#include "poold.h"
#include "sha256.h"

extern const unsigned char status_html[];
extern const size_t status_html_len;

#define CSP_MAX_BYTES	512

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 32 bytes in base64: 44 characters and the NUL. */
static void
hash_b64(const unsigned char h[SHA256_BYTES], char out[45])
{
	size_t i, o = 0;
	unsigned v;

	for (i = 0; i + 2 < SHA256_BYTES; i += 3) {
		v = (unsigned)h[i] << 16 | (unsigned)h[i + 1] << 8 | h[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = b64[v >> 6 & 63];
		out[o++] = b64[v & 63];
	}
	/* 32 = 3 * 10 + 2: two bytes left, one '='. */
	v = (unsigned)h[i] << 16 | (unsigned)h[i + 1] << 8;
	out[o++] = b64[v >> 18 & 63];
	out[o++] = b64[v >> 12 & 63];
	out[o++] = b64[v >> 6 & 63];
	out[o++] = '=';
	out[o] = '\0';
}

/*
 * The 'sha256-…' source of the text between open (e.g. "<script>") and
 * the matching close tag; "'none'" if the page has no such element.
 */
static void
element_hash(const char *page, const char *open, const char *close,
    char *out, size_t outlen)
{
	unsigned char h[SHA256_BYTES];
	const char *a, *b;
	char enc[45];

	if ((a = strstr(page, open)) == NULL ||
	    (b = strstr(a + strlen(open), close)) == NULL) {
		snprintf(out, outlen, "'none'");
		return;
	}
	a += strlen(open);
	sha256(a, (size_t)(b - a), h);
	hash_b64(h, enc);
	snprintf(out, outlen, "'sha256-%s'", enc);
}

const char *
status_page(size_t *len)
{
	*len = status_html_len;
	return (const char *)status_html;
}

const char *
status_csp(void)
{
	static char csp[CSP_MAX_BYTES];
	char script[64], style[64];
	const char *page = (const char *)status_html;

	if (csp[0] != '\0')
		return csp;
	element_hash(page, "<script>", "</script>", script, sizeof(script));
	element_hash(page, "<style>", "</style>", style, sizeof(style));
	snprintf(csp, sizeof(csp), "default-src 'none'; script-src %s; "
	    "style-src %s; connect-src 'self'; img-src 'none'; "
	    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	    script, style);
	return csp;
}
