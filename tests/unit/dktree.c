#include "unit.h"
#include "dktree.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

static void mkparents(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", buf, strerror(errno));
		*p = '/';
	}
}

static char *full(const char *root, const char *rel, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", root, rel);
	mkparents(buf);
	return buf;
}

int dkt_setup(void **state)
{
	const char *t = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/dmr-dk-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(path))
		return -1;
	*state = strdup(path);
	return *state ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D) {
		chmod(path, 0700);
		rmdir(path);
	} else {
		unlink(path);
	}
	return 0;
}

/* Directories made unreadable by a test get their mode back first. */
static int unlock_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_D || flag == FTW_DNR)
		chmod(path, 0700);
	else if (flag == FTW_F && !(sb->st_mode & S_IRUSR))
		chmod(path, 0600);
	return 0;
}

int dkt_teardown(void **state)
{
	char *root = *state;
	if (!root)
		return 0;
	nftw(root, unlock_one, 64, FTW_PHYS | FTW_MOUNT);
	nftw(root, rm_one, 64, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
	free(root);
	*state = NULL;
	return 0;
}

void dkt_writen(const char *root, const char *rel, const void *data, size_t len)
{
	char buf[4096];
	full(root, rel, buf, sizeof(buf));
	int fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fail_msg("open %s: %s", buf, strerror(errno));
	if (len && write(fd, data, len) != (ssize_t)len)
		fail_msg("write %s: %s", buf, strerror(errno));
	close(fd);
}

void dkt_write(const char *root, const char *rel, const char *content)
{
	dkt_writen(root, rel, content, strlen(content));
}

void dkt_sparse(const char *root, const char *rel, long long size)
{
	char buf[4096];
	full(root, rel, buf, sizeof(buf));
	int fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, size) < 0)
		fail_msg("sparse %s: %s", buf, strerror(errno));
	close(fd);
}

void dkt_mkdir(const char *root, const char *rel)
{
	char buf[4096];
	full(root, rel, buf, sizeof(buf));
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", buf, strerror(errno));
}

void dkt_symlink(const char *root, const char *rel, const char *target)
{
	char buf[4096];
	full(root, rel, buf, sizeof(buf));
	if (symlink(target, buf) < 0)
		fail_msg("symlink %s: %s", buf, strerror(errno));
}

void dkt_mkfifo(const char *root, const char *rel)
{
	char buf[4096];
	full(root, rel, buf, sizeof(buf));
	if (mkfifo(buf, 0644) < 0)
		fail_msg("mkfifo %s: %s", buf, strerror(errno));
}

void dkt_remove(const char *root, const char *rel)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s/%s", root, rel);
	nftw(buf, rm_one, 64, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
}
