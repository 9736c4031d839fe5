/*
 * catalog.c — which models the folder holds.
 *
 * A model is "NAME.gguf", or the first part "NAME-00001-of-00003.gguf" of
 * a model split by gguf-split (llama-server finds the other parts itself).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "poold.h"

#define GGUF_SUFFIX	".gguf"
#define SPLIT_SUFFIX	"-00000-of-00000"	/* the shape of it */

static bool
digits5(const char *s)
{
	int	 i;

	for (i = 0; i < 5; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* base ends in "-NNNNN-of-NNNNN": its part number, else 0. */
static int
split_part(const char *base, size_t len)
{
	const char	*s;
	size_t		 slen = sizeof(SPLIT_SUFFIX) - 1;

	if (len < slen)
		return 0;
	s = base + len - slen;
	if (s[0] != '-' || !digits5(s + 1) || strncmp(s + 6, "-of-", 4) != 0 ||
	    !digits5(s + 10))
		return 0;
	return (s[1] - '0') * 10000 + (s[2] - '0') * 1000 +
	    (s[3] - '0') * 100 + (s[4] - '0') * 10 + (s[5] - '0');
}

int
catalog_model_name(const char *filename, char *name, size_t size)
{
	size_t	 len = strlen(filename), slen = sizeof(GGUF_SUFFIX) - 1;
	int	 part;

	if (filename[0] == '.' || len <= slen ||
	    strcmp(filename + len - slen, GGUF_SUFFIX) != 0)
		return -1;
	len -= slen;
	if ((part = split_part(filename, len)) > 1)
		return -1;
	if (part == 1)
		len -= sizeof(SPLIT_SUFFIX) - 1;
	if (len == 0 || len >= size)
		return -1;
	memcpy(name, filename, len);
	name[len] = '\0';
	return 0;
}

int
catalog_scan(const char *dir,
    void (*found)(void *ctx, const char *name, const char *path),
    void *ctx, char *err, size_t errlen)
{
	char		 name[NAME_MAX + 1], path[PATH_MAX];
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	int		 n;

	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "models_dir %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if (catalog_model_name(de->d_name, name, sizeof(name)) == -1)
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		/* stat, not lstat: a symlink to a model is a model */
		if (n < 0 || (size_t)n >= sizeof(path) ||
		    stat(path, &st) == -1 || !S_ISREG(st.st_mode))
			continue;
		found(ctx, name, path);
	}
	if (errno != 0) {
		snprintf(err, errlen, "models_dir %s: %s", dir,
		    strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}
