#include "config.h"
#include "loopfile/thinread.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int lf_thin_read(struct tm_pool *p, uint64_t root, int data_fd, uint64_t data_bytes, uint64_t off, void *buf,
		 size_t len, struct dmr_err *err)
{
	uint64_t bs = (uint64_t)p->sb.data_block_size * 512u;
	unsigned char *out = buf;
	while (len > 0) {
		uint64_t vblock = off / bs, in = off % bs;
		size_t n = bs - in < len ? (size_t)(bs - in) : len;
		uint64_t dblock;
		uint32_t t;
		int r = tm_mapping_lookup(p, root, vblock, &dblock, &t, err);
		if (r == DMR_ENOENT) {
			memset(out, 0, n);
		} else if (r) {
			return r;
		} else {
			uint64_t pos = dblock * bs + in;
			if (dblock >= p->sb.data_sm.nr_blocks || pos + n > data_bytes)
				return dmr_err_set(err, DMR_ECORRUPT,
						   "virtual block %llu maps to data block %llu, beyond the data (%llu bytes)",
						   (unsigned long long)vblock, (unsigned long long)dblock,
						   (unsigned long long)data_bytes);
			size_t got = 0;
			while (got < n) {
				ssize_t k = pread(data_fd, out + got, n - got, (off_t)(pos + got));
				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					return dmr_err_set(err, DMR_EIO, "reading data block %llu: %s",
							   (unsigned long long)dblock, k < 0 ? strerror(errno) : "short read");
				got += (size_t)k;
			}
		}
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}
