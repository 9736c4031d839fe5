/*
 * sockdir.c — the socket's folder: made for poold, or checked.
 *
 * Someone who can write in the folder, or swap it, can put a socket of
 * their own in poold's place and read every client's requests; so poold
 * makes the folder with a mode no wider than the socket's, and refuses a
 * folder of another user, a shared one (/tmp) or one others may write in.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

/* A folder everyone may write in, made safe by the sticky bit: /tmp. */
static bool
is_shared_dir(const struct stat *st)
{
	return (st->st_mode & S_ISVTX) && (st->st_mode & S_IWOTH);
}

/* The folder lets in whom the socket's mode and group let in. */
static mode_t
socket_dir_mode(const struct config *conf)
{
	mode_t mode = S_IRWXU;

	if ((conf->socket_mode & 0070) || conf->socket_group != NULL)
		mode |= S_IRGRP | S_IXGRP;
	if (conf->socket_mode & 0007)
		mode |= S_IROTH | S_IXOTH;
	return mode;
}

static bool
group_can_enter(const struct config *conf, const struct stat *st)
{
	return (st->st_mode & S_IXOTH) ||
	    (st->st_gid == conf->socket_gid && (st->st_mode & S_IXGRP));
}

/* A link its owner could point elsewhere once poold has checked it. */
static int
check_link(const char *dir, char *err, size_t len)
{
	struct stat st;

	if (lstat(dir, &st) == -1 || !S_ISLNK(st.st_mode) ||
	    st.st_uid == geteuid() || st.st_uid == 0)
		return 0;
	snprintf(err, len, "%s, the socket's folder, is a symbolic link of "
	    "uid %u: use a folder of poold's own", dir, (unsigned)st.st_uid);
	return -1;
}

/*
 * Someone who can write in the folder, or swap it, can put a socket of
 * their own in poold's place and read every client's requests.
 */
static int
check_socket_dir(const struct config *conf, const char *dir, char *err,
    size_t len)
{
	struct stat st;
	uid_t me = geteuid();

	if (check_link(dir, err, len) == -1)
		return -1;
	if (stat(dir, &st) == -1) {
		snprintf(err, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, len, "%s, the socket's folder, is not a "
		    "directory", dir);
		return -1;
	}
	if (is_shared_dir(&st)) {
		snprintf(err, len, "%s is shared by every user: put the socket "
		    "in a folder of its own, such as %s/poold-%u/poold.sock",
		    dir, dir, (unsigned)me);
		return -1;
	}
	if (st.st_uid != me) {
		snprintf(err, len, "%s, the socket's folder, belongs to uid "
		    "%u, not to poold's user (uid %u): use a folder of "
		    "poold's own", dir, (unsigned)st.st_uid, (unsigned)me);
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, len, "%s, the socket's folder, may be written by "
		    "others (mode %04o): run chmod go-w %s", dir,
		    (unsigned)(st.st_mode & 07777), dir);
		return -1;
	}
	/* A folder that exists is the user's: poold checks it, never changes
	 * it, but says why the group will not get in. */
	if (conf->socket_group != NULL && !group_can_enter(conf, &st))
		log_warnx("%s: group %s cannot enter the socket's folder; run "
		    "chgrp %s %s && chmod g+x %s", dir, conf->socket_group,
		    conf->socket_group, dir, dir);
	return 0;
}

/* Made for poold: the group first, then the mode, so it is never wider. */
static int
make_socket_dir(const struct config *conf, const char *dir, char *err,
    size_t len)
{
	if (conf->socket_group != NULL &&
	    chown(dir, (uid_t)-1, conf->socket_gid) == -1) {
		snprintf(err, len, "cannot give %s to group %s: %s", dir,
		    conf->socket_group, strerror(errno));
		return -1;
	}
	if (chmod(dir, socket_dir_mode(conf)) == -1) {
		snprintf(err, len, "chmod %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
control_socket_dir(const struct config *conf, char *err, size_t len)
{
	char buf[PATH_MAX];
	const char *slash;
	struct stat st;
	size_t n;
	int saved;

	/* dirname(3) may modify its argument and differs between systems. */
	if ((slash = strrchr(conf->socket, '/')) == NULL)
		snprintf(buf, sizeof(buf), ".");
	else {
		n = slash == conf->socket ? 1 : (size_t)(slash - conf->socket);
		snprintf(buf, sizeof(buf), "%.*s", (int)n, conf->socket);
	}
	if (mkdir(buf, S_IRWXU) == 0)
		return make_socket_dir(conf, buf, err, len);
	saved = errno;
	if (stat(buf, &st) == -1) {
		snprintf(err, len, "cannot make %s for the socket: %s", buf,
		    strerror(saved));
		return -1;
	}
	return check_socket_dir(conf, buf, err, len);
}
