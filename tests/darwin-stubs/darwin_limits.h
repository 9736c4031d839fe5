/* Forced in first (-include): <limits.h> on macOS also gives OPEN_MAX
 * (sys/syslimits.h), which glibc's does not. */
#define OPEN_MAX	10240
