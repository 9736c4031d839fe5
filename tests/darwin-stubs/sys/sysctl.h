/* Stub: mirrors MacOSX.sdk <sys/sysctl.h> (the one call used). */
#ifndef DARWIN_STUB_SYS_SYSCTL_H
#define DARWIN_STUB_SYS_SYSCTL_H
#include <stddef.h>
int	sysctlbyname(const char *, void *, size_t *, void *, size_t);
#endif
