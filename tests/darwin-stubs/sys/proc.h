/* Stub: mirrors MacOSX.sdk <sys/proc.h> (the constant used). */
#ifndef DARWIN_STUB_SYS_PROC_H
#define DARWIN_STUB_SYS_PROC_H
#define SZOMB	5		/* awaiting collection by parent */
#endif
