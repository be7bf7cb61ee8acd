// A test-only LD_PRELOAD library: makes pwrite(2) fail with ENOSPC on chosen files of a real
// program, as a full disk would, with no test code inside the program itself.
//
//   STATEFOLD_FAULT_PATH=/lanes/L-0001/log/   fail writes to files whose path contains this, and ends
//                                       in ".seg" (a log segment; not a .tmp being created)
//   STATEFOLD_FAULT_AFTER=20            let this many such writes through first
//   STATEFOLD_FAULT_COUNT=1             then fail this many (default 1), then let writes through
//                                       again (space was freed)
//
// The file's path is read from /proc/self/fd. Thread-safe (atomic counters).

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace {

using pwrite_fn = ssize_t (*)(int, const void*, size_t, off_t);

std::atomic<long> seen{0};
std::atomic<long> failed{0};

bool chosen(int fd) {
  const char* part = getenv("STATEFOLD_FAULT_PATH");
  if (!part || !*part) return false;
  char link[64], path[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return false;
  path[n] = '\0';
  const size_t len = static_cast<size_t>(n);
  return strstr(path, part) != nullptr && len > 4 && strcmp(path + len - 4, ".seg") == 0;
}

long env_long(const char* name, long fallback) {
  const char* v = getenv(name);
  return v && *v ? atol(v) : fallback;
}

ssize_t faulty(pwrite_fn real, int fd, const void* buf, size_t n, off_t off) {
  if (chosen(fd)) {
    const long k = ++seen;
    if (k > env_long("STATEFOLD_FAULT_AFTER", 0) && failed.load() < env_long("STATEFOLD_FAULT_COUNT", 1)) {
      ++failed;
      errno = ENOSPC;
      return -1;
    }
  }
  return real(fd, buf, n, off);
}

}  // namespace

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  static auto real = reinterpret_cast<pwrite_fn>(dlsym(RTLD_NEXT, "pwrite"));
  return faulty(real, fd, buf, n, off);
}

extern "C" ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  static auto real = reinterpret_cast<pwrite_fn>(dlsym(RTLD_NEXT, "pwrite64"));
  return faulty(real, fd, buf, n, off);
}
